import Foundation

/// A line typed at `chat`'s prompt: a message, or one of its commands (`/help` lists them).
/// A line that begins with `/` is a command, never sent: an unknown one is an error line.
/// To send a message that begins with a slash, type two: `//etc` sends `/etc`.
/// `/quit` never gets here: the terminal ends the chat on it (`ChatTerminal.lines`).
enum ChatInput: Equatable {
    case message(String)
    /// `/attach PATH [caption...]`: the caption is the rest of the line as typed.
    case attach(path: String, caption: String?)
    case files
    /// `/save FILE [DEST]`.
    case save(file: String, destination: String?)
    /// `/withdraw FILE`: one of this peer's files.
    case withdraw(file: String)
    case help
    /// A command line that cannot run: the one line to show.
    case mistake(String)

    static let helpLines = [
        "/attach PATH [CAPTION]  share a file (at most 64 MiB; PATH relative to where chat started)",
        "/files                  the task's files, and whether each is here whole",
        "/save FILE [DEST]       write a file out: FILE its id (or beginning) or name; DEST a new file",
        "                        or a directory (default: where chat started); never replaces a file",
        "/withdraw FILE          withdraw a file you attached: the log shows it without name or caption,",
        "                        nobody can save it any more (a copy saved before stays)",
        "/help                   this list",
        "/quit                   leave (or Ctrl-C, or Ctrl-D on an empty line)",
        "//text                  sends \"/text\": a line that begins with // goes with one /",
        "A path or name with spaces goes in quotes: /save \"roof photo.jpg\"",
    ]

    /// nil for a line with nothing but white space (nothing to send).
    init?(parsing line: String) {
        if line.allSatisfy(\.isWhitespace) { return nil }
        guard line.hasPrefix("/") else { self = .message(line); return }
        if line.hasPrefix("//") { self = .message(String(line.dropFirst())); return }
        let body = line.dropFirst()
        let command = String(body.prefix { !$0.isWhitespace })
        let rest = body.dropFirst(command.count)
        do {
            switch command {
            case "attach":
                // The path, then the caption as typed (its own spaces and quotes kept).
                let (words, after) = try Self.words(rest, upTo: 1)
                guard let path = words.first else { self = .mistake("usage: /attach PATH [CAPTION]"); return }
                let caption = after.trimmingCharacters(in: .whitespaces)
                self = .attach(path: path, caption: caption.isEmpty ? nil : caption)
            case "files":
                self = rest.allSatisfy(\.isWhitespace) ? .files : .mistake("usage: /files (nothing after it)")
            case "save":
                let words = try Self.words(rest)
                guard (1...2).contains(words.count) else { self = .mistake("usage: /save FILE [DEST]"); return }
                self = .save(file: words[0], destination: words.count == 2 ? words[1] : nil)
            case "withdraw":
                let words = try Self.words(rest)
                guard words.count == 1 else { self = .mistake("usage: /withdraw FILE"); return }
                self = .withdraw(file: words[0])
            case "help":
                self = .help
            default:
                self = .mistake("unknown command /\(Format.shown(command, continuation: nil)) (/help lists them; "
                                + "a line that begins with // is sent with one /)")
            }
        } catch {
            self = .mistake("\((error as? Unclosed)?.message ?? "\(error)") (/help lists the commands)")
        }
    }

    struct Unclosed: Error { let message: String }

    /// `text` cut into words at white space; a word in double or single quotes may hold
    /// white space (the quotes are not part of it).
    static func words(_ text: Substring) throws -> [String] { try words(text, upTo: Int.max).words }

    /// The first `limit` words, and the text after them.
    static func words(_ text: Substring, upTo limit: Int) throws -> (words: [String], rest: Substring) {
        var words: [String] = []
        var rest = text
        while words.count < limit {
            rest = rest.drop { $0.isWhitespace }
            guard let first = rest.first else { break }
            if first == "\"" || first == "'" {
                let inside = rest.dropFirst()
                guard let close = inside.firstIndex(of: first) else { throw Unclosed(message: "a \(first) is not closed") }
                words.append(String(inside[..<close]))
                rest = inside[inside.index(after: close)...]
            } else {
                let word = rest.prefix { !$0.isWhitespace }
                words.append(String(word))
                rest = rest.dropFirst(word.count)
            }
        }
        return (words, rest)
    }

    /// How to type `/save` for a file of this name: the name, in quotes if it holds white
    /// space, else (a name with both kinds of quote, or beginning with one) its id's first
    /// 8 hex digits.
    static func saveHint(name: String, id: String) -> String {
        let plain = !name.contains(where: { $0.isWhitespace }) && !name.hasPrefix("\"") && !name.hasPrefix("'")
        if plain { return "/save \(Format.shown(name, continuation: nil))" }
        if !name.contains("\"") { return "/save \"\(Format.shown(name, continuation: nil))\"" }
        if !name.contains("'") { return "/save '\(Format.shown(name, continuation: nil))'" }
        return "/save \(id.prefix(8))"
    }
}
