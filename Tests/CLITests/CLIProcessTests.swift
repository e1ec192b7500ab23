import Foundation
import Testing

/// The demo scenario with real `bookswarm` processes on loopback (issue 6 acceptance), plus
/// offline delivery. Discovery runs on `lo` with a port of this run's own.
@Suite("bookswarm processes on loopback", .serialized,
       .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"))
struct CLIProcessTests {
    @Test("Bob, Ana and Carol: invite, join, chat, kill -9 and restart, catch up", .timeLimit(.minutes(2)))
    func demoScenario() async throws {
        let scratch = Scratch()
        let (bob, ana, carol) = try await Member.bobAnaAndCarolStarted(scratch)
        defer { for m in [bob, ana, carol] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }

        let task = try await bob.newTask("Fix the roof")
        try await bob.ok(["send", task.id, "The roof leaks."])
        let joinStart = ContinuousClock.now
        let joined = try await ana.ok(["join", task.invite])
        #expect(joined.contains("Fix the roof"), "\(joined)")
        #expect(try await eventually { try await ana.texts(task.id) == ["The roof leaks."] })
        print("join → first message (loopback, processes): \(ContinuousClock.now - joinStart)")
        try await carol.ok(["join", task.invite])

        // A connected reader gets a message within a second of `send` returning.
        let follower = try Follower(ana, task: task.id)
        defer { follower.stop() }
        #expect(await follower.waitFor("The roof leaks.", timeout: .seconds(10)) != nil)
        try await bob.ok(["send", task.id, "Who has a ladder?"])
        let sent = ContinuousClock.now
        let arrived = await follower.waitFor("Who has a ladder?", timeout: .seconds(10))
        #expect(arrived != nil)
        if let arrived { #expect(arrived - sent < .seconds(1), "send → reader took \(arrived - sent)") }

        try await ana.ok(["send", task.id, "I do."])
        try await carol.ok(["send", task.id, "I'll bring tiles."])
        let all = ["The roof leaks.", "Who has a ladder?", "I do.", "I'll bring tiles."]
        for m in [bob, ana, carol] { #expect(try await eventually { Set(try await m.texts(task.id)) == Set(all) }, "\(m.name)") }

        // Carol is killed; the others write; Carol restarts and catches up, no duplicates.
        await carol.stop(SIGKILL)
        try await ana.ok(["send", task.id, "While Carol was away."])
        try await bob.ok(["send", task.id, "Saturday then."])
        try await carol.start()
        let everything = Set(all + ["While Carol was away.", "Saturday then."])
        #expect(try await eventually { Set(try await carol.texts(task.id)) == everything })
        let orders = try await [bob.texts(task.id), ana.texts(task.id), carol.texts(task.id)]
        #expect(orders[0] == orders[1] && orders[1] == orders[2], "\(orders)")
        #expect(orders[2].count == everything.count)
        // Joins (PROTOCOL.md §10.3): each member's `log` shows Ana's and Carol's, in order with
        // the messages — after Bob's first message, before his second — and its own as "you".
        let (anaID, carolID) = (String(try await ana.id.prefix(8)), String(try await carol.id.prefix(8)))
        for m in [bob, ana, carol] {
            let lines = try await m.ok(["log", task.id]).split(separator: "\n").map(String.init)
            func at(_ suffix: String) -> Int? { lines.firstIndex { $0.hasSuffix(suffix) } }
            let anaJoined = at(m === ana ? "] * you joined" : "] * \(anaID) joined")
            let carolJoined = at(m === carol ? "] * you joined" : "] * \(carolID) joined")
            let (first, second) = (at(": The roof leaks."), at(": Who has a ladder?"))
            #expect(lines.count == everything.count + 2, "\(m.name): \(lines)")
            #expect(first != nil && anaJoined != nil && carolJoined != nil && second != nil, "\(m.name): \(lines)")
            if let first, let anaJoined, let carolJoined, let second {
                #expect(first < anaJoined && anaJoined < carolJoined && carolJoined < second, "\(m.name): \(lines)")
            }
        }

        // Six pairwise books and three journals; every book verifies everywhere.
        for m in [bob, ana, carol] {
            let report = try #require(try await m.run(["inspect", "--json"]).json as? [String: Any])
            let books = report["books"] as? [[String: Any]] ?? []
            #expect(books.count == 5, "\(m.name): \(books.map { $0["name"] ?? "" })")
            #expect(try await m.run(["inspect", "verify"]).ok)
        }
        // Bookkeeping: Carol compiles the conversation; every copy verifies against its author.
        let compiled = try #require(try await carol.run(["task", "compile", task.id, "minutes", "--json"]).json as? [String: Any])
        #expect(compiled["copied"] as? Int == everything.count, "\(compiled)")
        let checks = try #require(try await carol.run(["task", "check", "minutes", "--json"]).json as? [[String: Any]])
        #expect(checks.count == everything.count && checks.allSatisfy { $0["authentic"] as? Bool == true })
        for m in [bob, ana, carol] { await m.stop() }
    }

    @Test("messages sent while the reader is offline arrive when it comes back", .timeLimit(.minutes(1)))
    func offlineDelivery() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let task = try await bob.newTask("offline")
        // Ana joins without a daemon: `join` brings the network up for its own duration.
        let joined = try await ana.ok(["join", task.invite])
        #expect(joined.contains("offline"), "\(joined)")
        try await bob.ok(["send", task.id, "sent while Ana is away"])
        try await ana.ok(["send", task.id, "written offline by Ana"])
        #expect(try await ana.texts(task.id) == ["written offline by Ana"])
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await bob.texts(task.id) == ["sent while Ana is away"])
        try await ana.start()
        defer { if let d = ana.daemon { kill(d.pid, SIGKILL) } }
        let both = Set(["sent while Ana is away", "written offline by Ana"])
        #expect(try await eventually { Set(try await ana.texts(task.id)) == both })
        #expect(try await eventually { Set(try await bob.texts(task.id)) == both })
        // Unread: Bob's message counted until Ana reads the log.
        let tasks = try #require(try await ana.run(["tasks", "--json"]).json as? [[String: Any]])
        #expect(tasks.first?["unread"] as? Int == 0, "the log above marked everything read: \(tasks)")
        await ana.stop()
        await bob.stop()
    }

    /// `bookswarm backup` while the daemon runs and a member keeps writing: the copy is a
    /// vault of its own — the same peer, every book verifying, a log that is a prefix of the
    /// original's; a second backup to the same place is refused in one line; without a
    /// daemon the command backs the vault up itself.
    @Test("backup: a running vault copied whole, usable as a vault", .timeLimit(.minutes(1)))
    func backupWhileRunning() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        try await bob.start()
        try await ana.start()
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        let task = try await bob.newTask("records")
        try await ana.ok(["join", task.invite])
        for i in 0..<5 { try await ana.ok(["send", task.id, "early \(i)"]) }
        #expect(try await eventually { try await bob.texts(task.id).count == 5 })
        // Ana goes on writing while Bob's daemon copies his vault.
        let writing = Task { for i in 0..<20 { _ = try? await ana.run(["send", task.id, "late \(i)"]) } }
        let copy = scratch.dir("bob-backup")
        let answer = try #require(try await bob.run(["backup", copy, "--json"]).json as? [String: Any])
        #expect(answer["path"] as? String == copy && (answer["books"] as? Int ?? 0) >= 3, "\(answer)")
        let again = try await bob.run(["backup", copy])
        #expect(again.status == 1 && again.stderr.contains("exists already") && again.stderr.split(separator: "\n").count == 1, "\(again)")
        await writing.value
        #expect(try await eventually { try await bob.texts(task.id).count == 25 })
        let original = try await bob.texts(task.id)
        let bobID = try await bob.id
        await bob.stop()
        await ana.stop()

        let restored = Member("bob-backup", scratch: scratch, discoveryPort: bob.discoveryPort)
        #expect(try await restored.id == bobID)
        let copied = try await restored.texts(task.id)
        #expect(copied.count >= 5 && copied == Array(original.prefix(copied.count)), "\(copied)")
        let verified = try await restored.run(["inspect", "verify"])
        #expect(verified.ok && !verified.stdout.contains("FAIL"), "\(verified)")
        // No daemon: the command opens the vault and backs it up itself.
        let offline = try await bob.run(["backup", scratch.dir("bob-offline-backup")])
        #expect(offline.ok && offline.stdout.hasPrefix("backed up to "), "\(offline)")
        #expect(try await Member("bob-offline-backup", scratch: scratch, discoveryPort: bob.discoveryPort).texts(task.id) == original)
    }

    /// Files (PROTOCOL.md §10.2 Files, §10.7): `attach` through Ana's daemon, `files` and
    /// `save` at Bob's; the log line; every refusal one line on stderr, exit 1 (64 for usage).
    @Test("files: attach, files, save between two daemons; errors are one line", .timeLimit(.minutes(2)))
    func files() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        try await bob.start()
        try await ana.start()
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        try await ana.ok(["name", "Ana"])
        let task = try await bob.newTask("Fix the roof")
        try await ana.ok(["join", task.invite])
        let anaID = String(try await ana.id.prefix(8))

        // 10 MB from Ana, attached by a relative path; Bob saves it once it is whole.
        let files = scratch.dir("ana-files")
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let bytes = try #require(FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: 10_000_000))
        try bytes.write(to: URL(fileURLWithPath: files + "/roof.jpg"))
        let started = ContinuousClock.now
        let attached = try await ana.run(["attach", task.id, "roof.jpg", "--text", "above the window"], in: files)
        let attachTook = ContinuousClock.now - started
        #expect(attached.ok && attached.stdout.hasPrefix("attached roof.jpg (10.0 MB) as file "), "\(attached)")
        func report(_ m: Member) async throws -> [String: Any]? {
            (try await m.run(["files", task.id, "--json"]).json as? [[String: Any]])?.first
        }
        #expect(try await eventually(.seconds(30)) { try await report(bob)?["whole"] as? Bool == true })
        let out = scratch.dir("bob-out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let saved = try await bob.run(["save", task.id, "roof.jpg"], in: out)
        let savedAfter = ContinuousClock.now - started
        #expect(saved.ok && saved.stdout == "saved \(out)/roof.jpg (10.0 MB)\n", "\(saved)")
        #expect(FileManager.default.contents(atPath: out + "/roof.jpg") == bytes, "byte-identical")
        print("a 10 MB file over loopback (debug build, two daemons): attach \(attachTook), attach → saved at the other member \(savedAfter)")

        // How it shows: the log line, the listing, the JSON entry.
        let log = try await bob.ok(["log", task.id])
        #expect(log.contains("] Ana (\(anaID)) attached roof.jpg (10.0 MB): above the window\n"), "\(log)")
        #expect(try await ana.ok(["log", task.id]).contains("] you attached roof.jpg (10.0 MB): above the window\n"))
        let listed = try await bob.ok(["files", task.id])
        #expect(listed.hasSuffix("  Ana (\(anaID))  roof.jpg  10.0 MB  whole\n") && listed.split(separator: "\n").count == 1, "\(listed)")
        let entry = try #require(try await report(bob)?["entry"] as? [String: Any])
        let file = try #require(entry["file"] as? [String: Any])
        #expect(entry["kind"] as? String == "file" && entry["text"] as? String == "above the window")
        #expect(file["name"] as? String == "roof.jpg" && file["size"] as? Int == 10_000_000 && file["parts"] as? Int == 39)
        let tasks = try #require(try await bob.run(["tasks", "--json"]).json as? [[String: Any]])
        #expect(tasks.first?["messages"] as? Int == 1, "a file counts as a message: \(tasks)")
        let id = try #require(entry["id"] as? String)

        // By id prefix, to a new file name; the same again is refused (never replaced).
        let copy = out + "/copy.jpg"
        #expect(try await bob.ok(["save", task.id, String(id.prefix(6)), copy]) == "saved \(copy) (10.0 MB)\n")
        #expect(FileManager.default.contents(atPath: copy) == bytes)
        let refusals: [(Member, [String], String)] = [
            (bob, ["save", task.id, id, copy], "exists already"),
            (bob, ["save", task.id, "nope.jpg", out], "no file \"nope.jpg\""),
            (bob, ["save", task.id, id, out + "/missing/dir/x.jpg"], "missing/dir does not exist: create it first"),
            // A trailing slash means a directory: none there is an error, not a file of that name.
            (bob, ["save", task.id, id, out + "/new.jpg/"], "new.jpg/ does not exist: create it first"),
            (bob, ["save", task.id, id, copy + "/x.jpg"], "copy.jpg is not a directory"),
            (ana, ["attach", task.id, files + "/missing.jpg"], "No such file"),
            (ana, ["attach", task.id, files], "a directory"),
            (ana, ["attach", task.id, files + "/roof.jpg", "--name", "../etc"], "cannot name"),
            (ana, ["attach", "no such task", files + "/roof.jpg"], "unknown task"),
        ]
        let large = files + "/large.bin"
        #expect(FileManager.default.createFile(atPath: large, contents: nil) && truncate(large, 64 * 1024 * 1024 + 1) == 0)
        for (m, arguments, needle) in refusals + [(ana, ["attach", task.id, large], "is 64 MiB and 1 byte; files of at most 64 MiB can be attached")] {
            let result = try await m.run(arguments)
            CLIErrorTests.expectOneLineError(result, mentioning: needle)
            #expect(result.status == 1, "\(arguments): \(result)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["copy.jpg", "roof.jpg"], "nothing else written")
        for arguments in [["attach", task.id], ["save", task.id], ["files"]] {
            let usage = try await bob.run(arguments)
            #expect(usage.status == 64 && usage.stderr.hasPrefix("bookswarm: ") && usage.stderr.contains("(see: bookswarm "), "\(usage)")
        }
        let own = try await report(ana)
        #expect(own?["whole"] as? Bool == true && own?["held"] as? Int == 10_000_000, "\(String(describing: own))")
        await ana.stop()
        await bob.stop()
    }

    /// `attach` streams the file (PROTOCOL.md §10.2 Files): Ana's daemon writes 60 MB into her
    /// journal and her two pairwise books a part (256 KiB) at a time, so its peak memory rises
    /// by a few parts and the store's buffers, not by the file. `/proc/PID/clear_refs` (5)
    /// resets the daemon's VmHWM to its resident size just before; RssAnon (heap and stacks)
    /// and RssFile (mapped files: the store's memory map among them) are sampled every 5 ms
    /// meanwhile. Reading the parts back from the store instead of the file would show there,
    /// a file's worth of mapped pages.
    @Test("attach through a daemon in a task of three: the daemon's peak memory rises by far less than the file", .timeLimit(.minutes(3)))
    func attachMemory() async throws {
        let scratch = Scratch()
        let (bob, ana, carol) = try await Member.bobAnaAndCarolStarted(scratch)
        defer { for m in [bob, ana, carol] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        let task = try await bob.newTask("Fix the roof")
        try await ana.ok(["join", task.invite])
        try await carol.ok(["join", task.invite])
        // Ana writes for Bob and Carol: her journal and two pairwise books take the file.
        func writesToBoth() async throws -> Bool {
            let report = try await ana.run(["inspect", "--json"]).json as? [String: Any]
            let members = ((report?["tasks"] as? [[String: Any]])?.first?["members"] as? [[String: Any]]) ?? []
            return members.count == 2 && members.allSatisfy { $0["writesTo"] as? Bool == true }
        }
        #expect(try await eventually(.seconds(30)) { try await writesToBoth() })
        let files = scratch.dir("ana-files")
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let size = 60_000_000
        try #require(FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: size)).write(to: URL(fileURLWithPath: files + "/site.mov"))

        let pid = try #require(ana.daemon?.pid)
        func status(_ field: String) -> Int {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix(field + ":") }
            return (line?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
        }
        try "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
        let (resident, anonymous) = (status("VmRSS"), status("RssAnon"))
        let fileBacked = status("RssFile")
        let sampled = Task {
            var peak = (anonymous, fileBacked)
            while !Task.isCancelled {
                peak = (max(peak.0, status("RssAnon")), max(peak.1, status("RssFile")))
                try? await Task.sleep(for: .milliseconds(5))
            }
            return peak
        }
        let started = ContinuousClock.now
        let attached = try await ana.run(["attach", task.id, files + "/site.mov"], timeout: .seconds(120))
        let took = ContinuousClock.now - started
        sampled.cancel()
        let (highWater, (anonymousPeak, filePeak)) = (status("VmHWM"), await sampled.value)
        #expect(attached.ok && attached.stdout.hasPrefix("attached site.mov (60.0 MB) as file "), "\(attached)")
        let (rise, anonymousRise) = (highWater - resident, anonymousPeak - anonymous)
        print("attaching 60 MB in a task of three (debug build): \(took); the daemon's VmHWM rose by \(rise / 1_000_000) MB "
              + "(VmRSS \(resident / 1_000_000) → VmHWM \(highWater / 1_000_000) MB); sampled peaks: RssAnon +\(anonymousRise / 1_000_000) MB, "
              + "RssFile +\((filePeak - fileBacked) / 1_000_000) MB")
        // Before the file was streamed the rise was the file itself (62–64 MB); a bound of a
        // quarter of it leaves room for the store's caches and a busy machine, and none for a copy.
        #expect(rise < size / 4, "VmHWM rose by \(rise) bytes attaching \(size)")
        #expect(anonymousRise < size / 4, "RssAnon rose by \(anonymousRise) bytes attaching \(size)")
        for m in [ana, bob, carol] { await m.stop() }
    }

    @Test("task remove: Bob moves the task on without Carol; Ana's daemon follows by itself, Carol sees the move; errors are one line",
          .timeLimit(.minutes(2)))
    func removeAMember() async throws {
        let scratch = Scratch()
        let (bob, ana, carol) = try await Member.bobAnaAndCarolStarted(scratch)
        defer { for m in [bob, ana, carol] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        let task = try await bob.newTask("roof")
        try await ana.ok(["join", task.invite])
        try await carol.ok(["join", task.invite])
        try await bob.ok(["send", task.id, "hello"])
        for m in [ana, carol] { #expect(try await eventually { try await m.texts(task.id) == ["hello"] }) }
        #expect(try await eventually { try await bob.ok(["tasks"]).contains("members: 2") })
        let carolID = try await carol.id
        // The move's lines name Carol by the name she chose, beside her id.
        try await carol.ok(["name", "Carol"])
        for m in [bob, ana] { #expect(try await eventually { try await m.ok(["tasks"]).contains("Carol") }) }

        for (arguments, error) in [([String](), "name the members to leave out"), (["nobody"], "no member of this task is named"),
                                    ([try await bob.id], "you cannot leave yourself out")] {
            let refused = try await bob.run(["task", "remove", task.id] + arguments)
            #expect(!refused.ok && refused.stderr.hasPrefix("bookswarm: ") && refused.stderr.contains(error)
                    && refused.stderr.filter { $0 == "\n" }.count == 1 && refused.stdout.isEmpty, "\(refused)")
        }
        let moved = try await bob.ok(["task", "remove", task.id, String(carolID.prefix(8))])
        let lines = moved.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("task    ") && lines[1] == "without Carol (\(carolID.prefix(8))); 1 member taken along (they join it by themselves)", "\(moved)")
        let successor = String(lines[0].dropFirst(8).prefix(32))
        // The same command again is refused in one line pointing at the new task: a second
        // move would make a second task of the same title.
        let again = try await bob.run(["task", "remove", task.id, String(carolID.prefix(8))])
        #expect(!again.ok && again.stdout.isEmpty && again.stderr.filter { $0 == "\n" }.count == 1
                && again.stderr.hasPrefix("bookswarm: task \(task.id.prefix(8)) was moved on already (you moved it on) to \(successor.prefix(8))"),
                "\(again)")
        // Ana's daemon joins the new task by itself; Bob and Ana talk there.
        #expect(try await eventually { try await ana.ok(["tasks"]).contains(successor.prefix(8) + "  roof") })
        try await bob.ok(["send", successor, "just us"])
        #expect(try await eventually { try await ana.texts(successor) == ["just us"] })
        #expect(try await ana.ok(["tasks"]).contains("moved on to \(successor.prefix(8))"))
        #expect(try await eventually { try await ana.ok(["log", task.id]).contains("moved the task on to a new one without Carol (\(carolID.prefix(8)))") })
        // Carol sees the move in the old task's log, and has no new task.
        #expect(try await eventually { try await carol.ok(["log", task.id]).contains("moved the task on to a new one without you") })
        #expect(try await !carol.ok(["tasks"]).contains(successor.prefix(8)))
        for m in [bob, ana, carol] { await m.stop() }
    }

    @Test("names: chosen with `bookswarm name`, shown to the other member beside the peer id", .timeLimit(.minutes(1)))
    func names() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        try await bob.start()
        try await ana.start()
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
        #expect(try await bob.ok(["name"]).contains("no name chosen yet"))
        #expect(try await bob.ok(["name", "Bob the Builder"]) == "Bob the Builder\n")
        let bobID = try await bob.ok(["id", "--json"])
        #expect(bobID.contains("\"name\" : \"Bob the Builder\""), "\(bobID)")
        let task = try await bob.newTask("names")
        try await bob.ok(["send", task.id, "hello"])
        try await ana.ok(["join", task.invite])
        let bobPeer = try #require((try await bob.run(["id", "--json"]).json as? [String: Any])?["peer"] as? String)
        #expect(try await eventually { try await ana.ok(["log", task.id]).contains("Bob the Builder (\(bobPeer.prefix(8))): hello") })
        // Ana names herself after joining; Bob sees it among the members.
        try await ana.ok(["name", "Ana"])
        #expect(try await eventually { try await bob.ok(["tasks"]).contains("Ana (") })
        // A name that could disguise itself on a terminal is refused in one line.
        let bad = try await ana.run(["name", "Ana\u{1b}[2J"])
        #expect(!bad.ok && bad.stderr.hasPrefix("bookswarm: a name is") && bad.stdout.isEmpty, "\(bad)")
        #expect(try await ana.ok(["name"]) == "Ana\n")
        await ana.stop()
        await bob.stop()
    }
}

/// `bookswarm log --follow --json` in the background, recording when each line arrives.
final class Follower: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var arrivals: [(text: String, at: ContinuousClock.Instant)] = []
    /// Every line, as it came.
    private var lines: [String] = []
    private var partial = ""

    init(_ member: Member, task: String) throws {
        let argv = member.prefix + [CLI.binary!, "log", task, "--follow", "--json", "--dir", member.directory]
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            self?.take(data)
        }
        try process.run()
    }

    private func take(_ data: Data) {
        let now = ContinuousClock.now
        lock.withLock {
            partial += String(decoding: data, as: UTF8.self)
            while let newline = partial.firstIndex(of: "\n") {
                let line = String(partial[..<newline])
                partial = String(partial[partial.index(after: newline)...])
                lines.append(line)
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let entry = object["entry"] as? [String: Any], let text = entry["text"] as? String {
                    arrivals.append((text, now))
                }
            }
        }
    }

    func waitFor(_ text: String, timeout: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let hit = lock.withLock({ arrivals.first { $0.text == text }?.at }) { return hit }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// The first line that holds `text`, once there is one (nil after `timeout`).
    func waitForLine(containing text: String, timeout: Duration) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = lock.withLock({ lines.first { $0.contains(text) } }) { return line }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }
}
