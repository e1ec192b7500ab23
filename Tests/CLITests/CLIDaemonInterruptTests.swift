import Foundation
import Testing

/// A `backup` or `save` that a daemon carries out stops when the command is interrupted
/// (Ctrl-C) or killed (kill -9) while the daemon copies: its connection closes, the daemon
/// stops at its next step, removes its hidden half-copy and says so in its events, and goes
/// on answering (PROTOCOL.md §10.7). Without a daemon: CLIErrorTests' interrupted backup and
/// save.
@Suite("bookswarm interrupted through a daemon", .serialized, .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"))
struct CLIDaemonInterruptTests {
    /// A file of 60 MB: the daemon's copy takes long enough (a store snapshot checked and
    /// synced; 229 parts hashed, written and synced) to be caught half-way.
    static let size = 60_000_000

    /// Starts `bookswarm ARGS` as `member`, waits until `begun` says the daemon's copy is
    /// under way (its hidden output is there), runs `interruption` on the command, and
    /// returns how the command ended once it has.
    static func interrupt(_ member: Member, _ arguments: [String], by interruption: (Process) async -> Void,
                          once begun: () -> Bool) async throws -> (began: Bool, reason: Process.TerminationReason, status: Int32) {
        let command = try member.launch(arguments)
        var began = false
        let deadline = ContinuousClock.now + .seconds(20)
        while command.isRunning && ContinuousClock.now < deadline {
            if begun() { began = true; break }
            try await Task.sleep(for: .milliseconds(1))
        }
        await interruption(command)
        command.waitUntilExit()
        return (began, command.terminationReason, command.terminationStatus)
    }

    /// The interruption of a person at the keyboard (SIGINT), of `kill` (SIGTERM), of kill -9.
    static func sending(_ signal: Int32) -> (Process) async -> Void {
        { command in kill(command.processIdentifier, signal) }
    }

    /// The details of the daemon's `cancelled` events (`inspect`).
    static func cancellations(_ member: Member) async throws -> [String] {
        let report = try await member.run(["inspect", "--json"]).json as? [String: Any]
        let events = report?["events"] as? [[String: Any]] ?? []
        return events.filter { $0["kind"] as? String == "cancelled" }.compactMap { $0["detail"] as? String }
    }

    static func expectInterrupted(_ ended: (began: Bool, reason: Process.TerminationReason, status: Int32), by signal: Int32,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(ended.began, "the daemon's copy was not seen under way", sourceLocation: sourceLocation)
        if signal == SIGKILL {
            #expect(ended.reason == .uncaughtSignal && ended.status == SIGKILL, "\(ended)", sourceLocation: sourceLocation)
        } else {
            // As without a daemon: 128 + the signal.
            #expect(ended.reason == .exit && ended.status == 128 + signal, "\(ended)", sourceLocation: sourceLocation)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aDaemonsBackupStopsWhenItsCommandIsInterruptedOrKilled() async throws {
        let scratch = Scratch()
        let (bob, _) = try await CLIErrorTests.vaultWithAFile(scratch, size: Self.size)
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let daemon = try #require(bob.daemon)
        let copy = scratch.dir("copy")
        // The daemon's hidden directory: it holds the secret key.
        let staging = scratch.dir(".copy.partial-\(daemon.pid)")
        func leftovers() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: scratch.root).filter { $0.hasPrefix(".copy") || $0 == "copy" }
        }
        for (round, signal) in [SIGINT, SIGKILL, SIGTERM].enumerated() {
            let ended = try await Self.interrupt(bob, ["backup", copy], by: Self.sending(signal)) {
                FileManager.default.fileExists(atPath: staging)
            }
            Self.expectInterrupted(ended, by: signal)
            // The daemon stops at its next step and says so; then nothing is left.
            var stopped: [String] = []
            #expect(try await eventually { stopped = try await Self.cancellations(bob); return stopped.count == round + 1 },
                    "signal \(signal): \(stopped)\n\(daemon.log)")
            #expect(stopped.last?.hasPrefix("the backup to \(copy) was stopped") == true, "\(stopped)")
            #expect(stopped.last?.hasSuffix("(its client went away)") == true, "\(stopped)")
            let left = try leftovers()
            #expect(left.isEmpty, "signal \(signal): \(left)")
        }
        #expect(daemon.isRunning)
        let done = try #require(try await bob.run(["backup", copy, "--json"]).json as? [String: Any], "\(daemon.log)")
        #expect(done["path"] as? String == copy && done["books"] as? Int == 1, "\(done)")
        #expect(try leftovers() == ["copy"])
        #expect(FileManager.default.fileExists(atPath: copy + "/identity.key"))
        // A daemon that stops (SIGTERM) while at a backup stops it too, and removes its
        // hidden directory before it exits; the command says it went away.
        try FileManager.default.removeItem(atPath: copy)
        let ended = try await Self.interrupt(bob, ["backup", copy], by: { _ in await bob.stop() }) {
            FileManager.default.fileExists(atPath: staging)
        }
        #expect(ended.began && ended.reason == .exit && ended.status == 1, "\(ended)")
        let left = try leftovers()
        #expect(left.isEmpty, "\(left)")
    }

    @Test(.timeLimit(.minutes(2)))
    func aDaemonsSaveStopsWhenItsCommandIsInterruptedOrKilled() async throws {
        let scratch = Scratch()
        let (bob, task) = try await CLIErrorTests.vaultWithAFile(scratch, size: Self.size)
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let daemon = try #require(bob.daemon)
        let out = scratch.dir("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func inOut() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: out) }
        for (round, signal) in [SIGINT, SIGKILL, SIGTERM].enumerated() {
            let ended = try await Self.interrupt(bob, ["save", task.id, "filler.bin", out], by: Self.sending(signal)) {
                // The daemon's hidden file (`.ID.partial-PID-N`), with some bytes in it.
                (try? inOut())?.contains { name in
                    name.hasPrefix(".") && ((try? FileManager.default.attributesOfItem(atPath: out + "/" + name)[.size]) as? Int ?? 0) > 0
                } ?? false
            }
            Self.expectInterrupted(ended, by: signal)
            var stopped: [String] = []
            #expect(try await eventually { stopped = try await Self.cancellations(bob); return stopped.count == round + 1 },
                    "signal \(signal): \(stopped)\n\(daemon.log)")
            #expect(stopped.last?.hasPrefix("saving filler.bin to \(out)/filler.bin was stopped") == true, "\(stopped)")
            let left = try inOut()
            #expect(left.isEmpty, "signal \(signal): \(left)")
        }
        #expect(daemon.isRunning)
        try await bob.ok(["save", task.id, "filler.bin", out])
        #expect(try inOut() == ["filler.bin"])
        #expect(FileManager.default.contents(atPath: out + "/filler.bin") == FileManager.default.contents(atPath: scratch.dir("filler.bin")))
    }
}
