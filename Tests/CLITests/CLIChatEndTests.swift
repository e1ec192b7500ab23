import Foundation
import Testing

/// How `chat` and `log --follow` end: a chat whose input ends at once (piped lines) shows
/// the history and every line it sent before it leaves; `log --follow` stopped with SIGTERM
/// without a daemon shows nothing of its own network going down.
@Suite("bookswarm chat and log --follow ending", .serialized,
       .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"))
struct CLIChatEndTests {
    /// `printf LINES | bookswarm chat TASK` for `member`: its stdout.
    static func pipedChat(_ member: Member, _ task: String, lines: String) async throws -> CLI.Result {
        // CLI.run puts the binary after the prefix: it is the script's $0.
        try await CLI.run(member.arguments(["chat", task]), prefix: ["/bin/sh", "-c", "printf '\(lines)' | \"$0\" \"$@\""])
    }

    @Test("piped lines: the history and each line sent are shown, with a daemon and without", .timeLimit(.minutes(2)))
    func pipedChatShowsEverything() async throws {
        let scratch = Scratch()
        let (bob, _) = Member.bobAndAna(scratch)
        let task = try await bob.newTask("roof")
        for i in 1...50 { try await bob.ok(["send", task.id, "m\(i)"]) }
        let history = (1...50).map { "you: m\($0)" }
        func shows(_ result: CLI.Result, _ texts: [String]) -> Bool {
            let lines = result.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("[") }
            return lines.map { $0.split(separator: "] ", maxSplits: 1).last.map(String.init) ?? "" } == texts
        }
        // Run after run (it was 1 to 13 lines of 10, by a race with the end of the input).
        for round in 1...3 {
            let quit = try await Self.pipedChat(bob, task.id, lines: "/quit\\n")
            #expect(quit.ok && shows(quit, history), "without a daemon, round \(round): \(quit)")
        }
        let sent = try await Self.pipedChat(bob, task.id, lines: "typed here\\n")
        #expect(sent.ok && shows(sent, history + ["you: typed here"]), "\(sent)")

        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        for round in 1...3 {
            let quit = try await Self.pipedChat(bob, task.id, lines: "/quit\\n")
            #expect(quit.ok && shows(quit, history + ["you: typed here"]), "with a daemon, round \(round): \(quit)")
        }
        let again = try await Self.pipedChat(bob, task.id, lines: "and here\\n")
        #expect(again.ok && shows(again, history + ["you: typed here", "you: and here"]), "\(again)")
    }

    @Test("log --follow without a daemon, stopped with SIGTERM: no member is shown leaving", .timeLimit(.minutes(1)))
    func followEndsQuietly() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        let task = try await bob.newTask("roof")
        try await bob.ok(["send", task.id, "before"])
        try await ana.start()
        defer { if let d = ana.daemon { kill(d.pid, SIGKILL) } }
        // Bob follows from his own process (no daemon), Ana joins: her daemon is seen arriving.
        let out = scratch.dir("follow.out")
        #expect(FileManager.default.createFile(atPath: out, contents: nil))
        let follow = Process()
        follow.executableURL = URL(fileURLWithPath: CLI.binary!)
        follow.arguments = bob.arguments(["log", task.id, "--follow"])
        follow.standardInput = FileHandle.nullDevice
        follow.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        follow.standardError = FileHandle.nullDevice
        try follow.run()
        func printed() -> String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        // Its history printed, it is following (it subscribed before reading it): a session
        // that came up before then would show no arrival.
        #expect(await eventually(.seconds(20)) { printed().contains("you: before") })
        try await ana.ok(["join", task.invite])
        #expect(await eventually(.seconds(20)) { printed().contains(" is here") })
        kill(follow.processIdentifier, SIGTERM)
        follow.waitUntilExit()
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(follow.terminationStatus == 0, "\(text)")
        #expect(!text.contains(" left"), "\(text)")
        // Presence lines carry their time, like every other line.
        let presence = text.split(separator: "\n").filter { $0.contains(" is here") }
        #expect(!presence.isEmpty && presence.allSatisfy { $0.hasPrefix("[") }, "\(text)")
    }
}
