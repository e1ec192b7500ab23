import Testing
@testable import BookswarmCLI

/// What a line typed at `chat`'s prompt means (`ChatInput`): a message, or a command.
@Suite struct ChatInputTests {
    @Test("a line is a message unless it begins with /; // sends one /; a blank line is nothing")
    func messages() {
        #expect(ChatInput(parsing: "hello") == .message("hello"))
        #expect(ChatInput(parsing: "  a / b ") == .message("  a / b "))
        #expect(ChatInput(parsing: "//etc/hosts is full") == .message("/etc/hosts is full"))
        #expect(ChatInput(parsing: "//") == .message("/"))
        #expect(ChatInput(parsing: "///x") == .message("//x"))
        #expect(ChatInput(parsing: "   ") == nil)
        #expect(ChatInput(parsing: "") == nil)
    }

    @Test("/attach PATH [caption]: the caption is the rest as typed; a quoted path may hold spaces")
    func attach() {
        #expect(ChatInput(parsing: "/attach roof.jpg") == .attach(path: "roof.jpg", caption: nil))
        #expect(ChatInput(parsing: "/attach  roof.jpg   above the  window ") == .attach(path: "roof.jpg", caption: "above the  window"))
        #expect(ChatInput(parsing: "/attach \"roof photo.jpg\" it's 'here'") == .attach(path: "roof photo.jpg", caption: "it's 'here'"))
        #expect(ChatInput(parsing: "/attach '/tmp/a \"b\".pdf'") == .attach(path: "/tmp/a \"b\".pdf", caption: nil))
        #expect(ChatInput(parsing: "/attach") == .mistake("usage: /attach PATH [CAPTION]"))
        #expect(ChatInput(parsing: "/attach \"roof photo.jpg") == .mistake("a \" is not closed (/help lists the commands)"))
    }

    @Test("/files, /save FILE [DEST], /help; anything else after / is an unknown command, never a message")
    func commands() {
        #expect(ChatInput(parsing: "/files") == .files)
        #expect(ChatInput(parsing: "/files  ") == .files)
        #expect(ChatInput(parsing: "/files x") == .mistake("usage: /files (nothing after it)"))
        #expect(ChatInput(parsing: "/save roof.jpg") == .save(file: "roof.jpg", destination: nil))
        #expect(ChatInput(parsing: "/save 1a2b3c4d out/") == .save(file: "1a2b3c4d", destination: "out/"))
        #expect(ChatInput(parsing: "/save \"roof photo.jpg\" 'my dir'") == .save(file: "roof photo.jpg", destination: "my dir"))
        #expect(ChatInput(parsing: "/save") == .mistake("usage: /save FILE [DEST]"))
        #expect(ChatInput(parsing: "/save a b c") == .mistake("usage: /save FILE [DEST]"))
        #expect(ChatInput(parsing: "/withdraw roof.jpg") == .withdraw(file: "roof.jpg"))
        #expect(ChatInput(parsing: "/withdraw \"roof photo.jpg\" ") == .withdraw(file: "roof photo.jpg"))
        #expect(ChatInput(parsing: "/withdraw") == .mistake("usage: /withdraw FILE"))
        #expect(ChatInput(parsing: "/withdraw a b") == .mistake("usage: /withdraw FILE"))
        #expect(ChatInput(parsing: "/help") == .help)
        for line in ["/nope", "/nope with words", "/etc/hosts", "/", "/ x", "/Files"] {
            guard case let .mistake(text) = ChatInput(parsing: line) else {
                Issue.record("\(line) is not refused")
                continue
            }
            #expect(text.hasPrefix("unknown command /"), "\(text)")
            #expect(text.contains("(/help lists them"), "\(text)")
        }
        // A command's name is shown escaped: it cannot drive the terminal.
        guard case let .mistake(text) = ChatInput(parsing: "/x\u{1b}[2J") else { Issue.record("not refused"); return }
        #expect(!text.contains("\u{1b}"), "\(text)")
    }

    @Test("the /save hint of a file: its name, in quotes if it holds spaces, else its id")
    func saveHint() {
        let id = "0123456789abcdef01234567"
        #expect(ChatInput.saveHint(name: "roof.jpg", id: id) == "/save roof.jpg")
        #expect(ChatInput.saveHint(name: "it's.pdf", id: id) == "/save it's.pdf")
        #expect(ChatInput.saveHint(name: "roof photo.jpg", id: id) == "/save \"roof photo.jpg\"")
        #expect(ChatInput.saveHint(name: "a \"b\".pdf", id: id) == "/save 'a \"b\".pdf'")
        #expect(ChatInput.saveHint(name: "a \"b\" it's", id: id) == "/save 01234567")
        // Each hint, typed, names the file.
        for name in ["roof.jpg", "it's.pdf", "roof photo.jpg", "a \"b\".pdf"] {
            #expect(ChatInput(parsing: ChatInput.saveHint(name: name, id: id)) == .save(file: name, destination: nil))
        }
    }
}
