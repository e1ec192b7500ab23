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
        let (bob, ana) = Member.bobAndAna(scratch)
        try await bob.start()
        try await ana.start()
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

    func start(_ name: String, _ argv: [String]) throws {
        let command = argv.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        try tmux(["new-session", "-d", "-s", name, "-x", "120", "-y", "30", command], capture: false)
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
