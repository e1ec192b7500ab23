import Foundation
import Testing

/// Withdrawing a file (PROTOCOL.md §10.2 Withdrawn files) with real `bookswarm` processes on
/// loopback: through the daemons, and without one (offline, replicated later).
extension CLIProcessTests {
    @Test("withdraw: Ana withdraws a file Bob saved — log, files and save show it at both, Bob's follow is told, his copy stays; offline too; errors are one line",
          .timeLimit(.minutes(2)))
    func withdraw() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        try await bob.start()
        try await ana.start()
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        try await ana.ok(["name", "Ana"])
        let task = try await bob.newTask("Fix the roof")
        try await ana.ok(["join", task.invite])
        let anaID = String(try await ana.id.prefix(8))

        let files = scratch.dir("ana-files")
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let bytes = try #require(FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: 300_000))
        try bytes.write(to: URL(fileURLWithPath: files + "/roof.jpg"))
        #expect(try await ana.run(["attach", task.id, "roof.jpg", "--text", "above the window"], in: files).ok)
        func reports(_ m: Member) async throws -> [[String: Any]] {
            (try await m.run(["files", task.id, "--json"]).json as? [[String: Any]]) ?? []
        }
        #expect(try await eventually(.seconds(30)) { try await reports(bob).first?["whole"] as? Bool == true })
        let out = scratch.dir("bob-out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(try await bob.run(["save", task.id, "roof.jpg"], in: out).ok)
        let follower = try Follower(bob, task: task.id)
        defer { follower.stop() }
        #expect(await follower.waitFor("above the window", timeout: .seconds(10)) != nil)
        let id = try #require((try await reports(bob).first?["entry"] as? [String: Any])?["id"] as? String)

        // Only its author withdraws a file.
        let theirs = try await bob.run(["withdraw", task.id, "roof.jpg"])
        CLIErrorTests.expectOneLineError(theirs, mentioning: "only its author can withdraw a file")
        #expect(theirs.status == 1)

        let withdrawn = try await ana.ok(["withdraw", task.id, "roof.jpg"])
        #expect(withdrawn.hasPrefix("withdrew roof.jpg (300 KB), file \(id.prefix(8)): "), "\(withdrawn)")
        #expect(try await eventually(.seconds(30)) { try await bob.ok(["log", task.id]).contains("] Ana (\(anaID)) withdrew a file\n") })
        let log = try await bob.ok(["log", task.id])
        #expect(!log.contains("roof.jpg") && !log.contains("above the window"), "\(log)")
        #expect(try await ana.ok(["log", task.id]).contains("] you withdrew a file\n"))
        let listed = try await bob.ok(["files", task.id])
        #expect(listed == "\(id.prefix(8))  \(listed.dropFirst(10).prefix(16))  Ana (\(anaID))  withdrawn by its author\n", "\(listed)")
        let entry = try #require(try await reports(bob).first?["entry"] as? [String: Any])
        #expect(entry["withdrawn"] as? Bool == true && entry["file"] == nil && entry["text"] as? String == "", "\(entry)")
        let event = await follower.waitForLine(containing: #""event":"withdrawn""#, timeout: .seconds(10))
        #expect(event?.contains(id) == true && event?.contains("roof.jpg") == false, "\(String(describing: event))")

        // Bob's save is refused; the copy he saved before stays. Withdrawing again is refused.
        for (m, arguments, needle) in [(bob, ["save", task.id, id, out + "/again.jpg"], "was withdrawn by its author"),
                                       (ana, ["withdraw", task.id, String(id.prefix(6))], "was withdrawn already"),
                                       (ana, ["withdraw", task.id, "nope.jpg"], "no file \"nope.jpg\"")] {
            let result = try await m.run(arguments)
            CLIErrorTests.expectOneLineError(result, mentioning: needle)
            #expect(result.status == 1, "\(arguments): \(result)")
        }
        #expect(FileManager.default.contents(atPath: out + "/roof.jpg") == bytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out) == ["roof.jpg"])
        let usage = try await ana.run(["withdraw", task.id])
        #expect(usage.status == 64 && usage.stderr.contains("(see: bookswarm "), "\(usage)")

        // Without a daemon (offline): attached and withdrawn, both replicated once Ana is back.
        await ana.stop()
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: files + "/quote.pdf"))
        #expect(try await ana.run(["attach", task.id, "quote.pdf"], in: files).ok)
        #expect(try await ana.ok(["withdraw", task.id, "quote.pdf"]).hasPrefix("withdrew quote.pdf (3 bytes), file "))
        try await ana.start()
        #expect(try await eventually(.seconds(30)) {
            let all = try await reports(bob)
            return all.count == 2 && all.allSatisfy { ($0["entry"] as? [String: Any])?["withdrawn"] as? Bool == true }
        })
        let tasks = try #require(try await bob.run(["tasks", "--json"]).json as? [[String: Any]])
        #expect(tasks.first?["messages"] as? Int == 2, "a withdrawn file is still a message: \(tasks)")
        await ana.stop()
        await bob.stop()
    }
}
