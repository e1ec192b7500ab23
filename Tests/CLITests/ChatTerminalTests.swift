import Foundation
import Testing

/// `bookswarm chat` in real terminals (tmux) for two peers: each sees the other's lines,
/// an incoming line never garbles the prompt line being typed, members' comings and goings
/// are shown, and /quit leaves.
@Suite("bookswarm chat in tmux", .serialized,
       .enabled(if: CLI.available && Tmux.available, "needs the bookswarm build and tmux (apt-get install tmux)"))
struct ChatTerminalTests {
    @Test(.timeLimit(.minutes(1)))
    func twoPeersChat() async throws {
        let scratch = Scratch()
        let (bob, ana) = try await Member.bobAndAnaStarted(scratch)
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        let task = try await bob.newTask("Roof")
        try await bob.ok(["send", task.id, "history before the chat"])
        try await ana.ok(["join", task.invite])
        let (bobID, anaID) = (String(try await bob.id.prefix(8)), String(try await ana.id.prefix(8)))

        let tmux = Tmux(socket: "bsw-\(getpid())-\(UInt16.random(in: 0...UInt16.max))")
        defer { tmux.killServer() }
        try tmux.start("bob", [CLI.binary!, "chat", task.id, "--dir", bob.directory])
        try tmux.start("ana", [CLI.binary!, "chat", task.id, "--dir", ana.directory])
        #expect(await tmux.waitFor("ana", "history before the chat"), "\(tmux.screen("ana"))")
        #expect(await tmux.waitFor("bob", "\(bobID)>"), "\(tmux.screen("bob"))")
        // Ana's join is in the history, after Bob's message, on both sides.
        #expect(await tmux.waitFor("bob", "* \(anaID) joined"), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("ana", "* you joined"), "\(tmux.screen("ana"))")

        // Ana is half-way through a line when Bob's message arrives.
        try tmux.type("ana", "half typ")
        #expect(await tmux.waitFor("ana", "\(anaID)> half typ"))
        try tmux.type("bob", "hello from Bob")
        try tmux.enter("bob")
        #expect(await tmux.waitFor("ana", "\(bobID): hello from Bob"), "\(tmux.screen("ana"))")
        // The incoming line sits above the prompt, and the prompt line is intact.
        let screen = tmux.screen("ana")
        let lines = screen.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(lines.last == "\(anaID)> half typ", "\(screen)")
        #expect(lines.dropLast().last?.hasSuffix("\(bobID): hello from Bob") == true, "\(screen)")
        #expect(!screen.contains("half typ[") && !screen.contains("half typhello"), "\(screen)")

        try tmux.type("ana", "ed line")
        try tmux.enter("ana")
        #expect(await tmux.waitFor("bob", "\(anaID): half typed line"), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("ana", "you: half typed line"), "\(tmux.screen("ana"))")
        #expect(try await bob.texts(task.id) == ["history before the chat", "hello from Bob", "half typed line"])

        // Editing with the keys of a terminal: arrows, Home, history, Ctrl-U; wide characters.
        try tmux.type("ana", "helo wrld")
        try tmux.keys("ana", ["Left", "Left", "Left"])
        try tmux.type("ana", "o")
        try tmux.keys("ana", ["Home", "Right", "Right", "Right"])
        try tmux.type("ana", "l")
        #expect(await tmux.waitFor("ana", "\(anaID)> hello world"), "\(tmux.screen("ana"))")
        try tmux.keys("ana", ["End"])
        try tmux.enter("ana")
        #expect(await tmux.waitFor("bob", "\(anaID): hello world"), "\(tmux.screen("bob"))")
        try tmux.keys("ana", ["Up"])
        #expect(await tmux.waitFor("ana", "\(anaID)> hello world"), "the line entered before: \(tmux.screen("ana"))")
        try tmux.keys("ana", ["C-u"])
        try tmux.type("ana", "日本語 ok")
        try tmux.enter("ana")
        #expect(await tmux.waitFor("bob", "\(anaID): 日本語 ok"), "\(tmux.screen("bob"))")
        #expect(!tmux.screen("ana").contains("[D") && !tmux.screen("ana").contains("[A"), "\(tmux.screen("ana"))")
        #expect(try await bob.texts(task.id).suffix(2) == ["hello world", "日本語 ok"])

        // Ana's peer goes away: Bob's chat says so; /quit ends Ana's chat.
        try tmux.type("ana", "/quit")
        try tmux.enter("ana")
        #expect(await tmux.waitFor(gone: "ana"), "ana's chat did not end: \(tmux.screen("ana"))")
        await ana.stop()
        #expect(await tmux.waitFor("bob", "* \(anaID) left"), "\(tmux.screen("bob"))")
        try tmux.type("bob", "/quit")
        try tmux.enter("bob")
        #expect(await tmux.waitFor(gone: "bob"))
        await bob.stop()
    }
}

/// Files in `chat` (tmux), through Bob's daemon and with the vault opened by the chat itself:
/// /attach (relative to the chat's directory, with a caption), /files, /save, /withdraw, /help, an
/// unknown command, `//`, and errors that leave the chat running. Ana has a daemon and
/// uses the commands: what Bob attaches in his chat she saves byte-identical with
/// `bookswarm save`, and a file she attaches shows in his chat once it is here whole.
@Suite("bookswarm chat: files and commands in tmux", .serialized,
       .enabled(if: CLI.available && Tmux.available, "needs the bookswarm build and tmux (apt-get install tmux)"))
struct ChatFilesTests {
    @Test(.timeLimit(.minutes(2)), arguments: [true, false])
    func filesInChat(throughDaemon: Bool) async throws {
        let scratch = Scratch()
        let (bob, ana) = try await Member.bobAndAnaStarted(scratch)
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        let task = try await bob.newTask("Roof")
        try await ana.ok(["join", task.invite])
        let (bobID, anaID) = (String(try await bob.id.prefix(8)), String(try await ana.id.prefix(8)))

        // Bob's chat runs in `here`, which holds the file he attaches; Ana's files elsewhere.
        let here = scratch.dir("bob-here"), anaFiles = scratch.dir("ana-files"), anaOut = scratch.dir("ana-out")
        for dir in [here + "/out", anaFiles, anaOut] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let notes = Data((0..<700_000).map { _ in UInt8.random(in: 0...255) })
        let photo = Data((0..<600_001).map { _ in UInt8.random(in: 0...255) })
        try notes.write(to: URL(fileURLWithPath: here + "/notes.bin"))
        try photo.write(to: URL(fileURLWithPath: anaFiles + "/photo.jpg"))

        var chat = [CLI.binary!, "chat", task.id, "--dir", bob.directory]
        if !throughDaemon {
            // The chat opens the vault itself and brings the network up.
            await bob.stop()
            chat += ["--interface", "lo", "--discovery-port", "\(bob.discoveryPort)"]
        }
        let tmux = Tmux(socket: "bsw-\(getpid())-\(UInt16.random(in: 0...UInt16.max))")
        defer { tmux.killServer() }
        try tmux.start("bob", chat, directory: here)
        #expect(await tmux.waitFor("bob", "\(bobID)>"), "\(tmux.screen("bob"))")
        func line(_ text: String) throws {
            try tmux.type("bob", text)
            try tmux.enter("bob")
        }

        try line("/help")
        #expect(await tmux.waitFor("bob", "/attach PATH [CAPTION]"), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "/save FILE [DEST]"), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "//text"), "\(tmux.screen("bob"))")
        try line("/nope at all")
        #expect(await tmux.waitFor("bob", "! unknown command /nope (/help lists them"), "\(tmux.screen("bob"))")
        try line("//etc/hosts is full")
        #expect(await tmux.waitFor("bob", "you: /etc/hosts is full"), "\(tmux.screen("bob"))")

        // A file that is not there: one error line, and the chat goes on.
        try line("/attach missing.bin look")
        #expect(await tmux.waitFor("bob", "! not attached: "), "\(tmux.screen("bob"))")
        #expect(tmux.screen("bob").contains("No such file"), "\(tmux.screen("bob"))")
        #expect(tmux.alive("bob"))

        // A path relative to the chat's directory, with a caption.
        try line("/attach notes.bin the notes, page 2")
        #expect(await tmux.waitFor("bob", "attached notes.bin (700 KB) as file "), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "you attached notes.bin (700 KB): the notes, page 2"), "\(tmux.screen("bob"))")
        // Ana saves it with `bookswarm save`: byte-identical.
        let saved = await eventually(.seconds(30)) { (try? await ana.run(["save", task.id, "notes.bin", anaOut]))?.ok == true }
        if !saved { Issue.record("Ana could not save notes.bin: \(try await ana.run(["files", task.id]))") }
        #expect(FileManager.default.contents(atPath: anaOut + "/notes.bin") == notes)
        // Bob's own file is never announced as arrived.
        #expect(!tmux.screen("bob").contains("notes.bin (700 KB) from"), "\(tmux.screen("bob"))")

        // Ana attaches a file (its name with a space): Bob's chat shows it, and once it is
        // here whole says so with the /save to type.
        try await ana.ok(["attach", task.id, anaFiles + "/photo.jpg", "--name", "roof photo.jpg", "--text", "from Ana"])
        #expect(await tmux.waitFor("bob", "\(anaID) attached roof photo.jpg (600 KB): from Ana", timeout: .seconds(30)), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "* roof photo.jpg (600 KB) from \(anaID) is here — /save \"roof photo.jpg\""), "\(tmux.screen("bob"))")

        try line("/files")
        #expect(await tmux.waitFor("bob", "  you  notes.bin  700 KB  whole"), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "  \(anaID)  roof photo.jpg  600 KB  whole"), "\(tmux.screen("bob"))")

        try line("/save \"roof photo.jpg\" out")
        #expect(await tmux.waitFor("bob", "saved \(here)/out/roof photo.jpg (600 KB)"), "\(tmux.screen("bob"))")
        #expect(FileManager.default.contents(atPath: here + "/out/roof photo.jpg") == photo)
        // Saved again to the same place: refused, nothing replaced, the chat goes on.
        try line("/save \"roof photo.jpg\" out")
        #expect(await tmux.waitFor("bob", "! not saved: "), "\(tmux.screen("bob"))")
        #expect(tmux.screen("bob").contains("exists already"), "\(tmux.screen("bob"))")
        try line("/save nothing.pdf")
        #expect(await tmux.waitFor("bob", "! not saved: no file \"nothing.pdf\""), "\(tmux.screen("bob"))")

        // Withdrawing: Ana's file is hers to withdraw, not Bob's; once she does, his chat says
        // so. His own he withdraws from the prompt; /files lists both as withdrawn.
        try line("/withdraw \"roof photo.jpg\"")
        #expect(await tmux.waitFor("bob", "! not withdrawn: file "), "\(tmux.screen("bob"))")
        #expect(tmux.screen("bob").contains("only its author can withdraw a file"), "\(tmux.screen("bob"))")
        try await ana.ok(["withdraw", task.id, "roof photo.jpg"])
        #expect(await tmux.waitFor("bob", "* \(anaID) withdrew a file attached at ", timeout: .seconds(30)), "\(tmux.screen("bob"))")
        try line("/withdraw notes.bin")
        #expect(await tmux.waitFor("bob", "withdrew notes.bin (700 KB), file "), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "* you withdrew a file attached at "), "\(tmux.screen("bob"))")
        try line("/files")
        #expect(await tmux.waitFor("bob", "  you  withdrawn by its author"), "\(tmux.screen("bob"))")
        #expect(await tmux.waitFor("bob", "  \(anaID)  withdrawn by its author"), "\(tmux.screen("bob"))")

        try line("still here")
        #expect(await tmux.waitFor("bob", "you: still here"), "\(tmux.screen("bob"))")
        try line("/quit")
        #expect(await tmux.waitFor(gone: "bob"), "\(tmux.screen("bob"))")
        // Of all those lines only two were messages; no command went out as one.
        let sent = ["/etc/hosts is full", "still here"]
        #expect(try await bob.texts(task.id) == sent)
        let arrived = await eventually { (try? await ana.texts(task.id)) == sent }
        if !arrived { Issue.record("Ana's messages: \(try await ana.texts(task.id))") }
        await ana.stop()
        await bob.stop()
    }
}

extension ChatTerminalTests {
    /// A chat through a daemon that dies does not stay open showing nothing (and sending
    /// unseen once the daemon is back): it ends with one line that says why, exit 1.
    @Test(.timeLimit(.minutes(1)))
    func chatEndsWhenItsDaemonDies() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let task = try await bob.newTask("Roof")
        try await bob.ok(["send", task.id, "history before the chat"])
        let bobID = String(try await bob.id.prefix(8))
        let tmux = Tmux(socket: "bsw-\(getpid())-\(UInt16.random(in: 0...UInt16.max))")
        defer { tmux.killServer() }
        // The shell stays after the chat, to show its last line and exit status.
        try tmux.start("bob", ["/bin/sh", "-c", "\"$0\" \"$@\"; echo \"exit $?\"; sleep 60",
                               CLI.binary!, "chat", task.id, "--dir", bob.directory])
        #expect(await tmux.waitFor("bob", "\(bobID)>"), "\(tmux.screen("bob"))")
        try tmux.type("bob", "half typed")
        await bob.stop(SIGKILL)
        #expect(await tmux.waitFor("bob", "exit 1"), "\(tmux.screen("bob"))")
        let screen = tmux.screen("bob")
        #expect(screen.contains("bookswarm: the daemon of \(bob.directory) stopped: the chat ended"), "\(screen)")
    }
}

/// A private tmux server (its own socket) driving terminal sessions.
struct Tmux {
    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") }

    let socket: String

    /// Runs a tmux client command. Only commands that print are given a pipe: the server
    /// that `new-session` starts would otherwise inherit it and keep it open forever.
    @discardableResult
    func tmux(_ arguments: [String], capture: Bool = true) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tmux")
        process.arguments = ["-L", socket] + arguments
        let out = Pipe()
        process.standardOutput = capture ? out : FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = capture ? out.fileHandleForReading.readDataToEndOfFile() : Data()
        // Polled rather than `waitUntilExit`, which can miss the exit of a client whose
        // server child lives on; bounded.
        for _ in 0..<5000 where process.isRunning { usleep(2000) }
        return String(decoding: data, as: UTF8.self)
    }

    /// Starts `argv` in a new session `name` (in the working directory `directory`, if given).
    func start(_ name: String, _ argv: [String], directory: String? = nil) throws {
        let command = argv.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        try tmux(["new-session", "-d", "-s", name, "-x", "120", "-y", "30"] + (directory.map { ["-c", $0] } ?? []) + [command], capture: false)
    }

    func type(_ name: String, _ text: String) throws { try tmux(["send-keys", "-t", name, "-l", text], capture: false) }
    func enter(_ name: String) throws { try tmux(["send-keys", "-t", name, "Enter"], capture: false) }
    /// Keys by tmux's names ("Left", "Home", "C-u", …).
    func keys(_ name: String, _ keys: [String]) throws { try tmux(["send-keys", "-t", name] + keys, capture: false) }
    func screen(_ name: String) -> String { (try? tmux(["capture-pane", "-p", "-t", name])) ?? "" }
    func alive(_ name: String) -> Bool { (try? tmux(["list-sessions", "-F", "#{session_name}"]))?.split(separator: "\n").contains { $0 == name } ?? false }
    func killServer() { _ = try? tmux(["kill-server"], capture: false) }

    func waitFor(_ name: String, _ text: String, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if screen(name).contains(text) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    func waitFor(gone name: String, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !alive(name) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
