import BookswarmTestSupport
import Foundation
import Testing

/// PROTOCOL.md's claim that an outsider can write a compatible peer from it, tested for the
/// disk format and the messenger pages: Tests/Interop/bookswarm_reader.py, written from
/// PROTOCOL.md alone (Python's sqlite3 and hashlib, PyNaCl), reads the vaults real `bookswarm`
/// daemons left behind, re-checks every hash, tree node and signed root (§3, §4), decodes
/// every messenger page (§10.2) and computes each task's log (§10.3), which must equal
/// `bookswarm log TASK --json` on the same vault, entry for entry.
@Suite("an independent reader of the store and the messenger pages (Python, from PROTOCOL.md)", .serialized,
       .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"),
       .enabled(if: Python.readerAvailable, "python3 with PyNaCl is missing: interop skipped"))
struct ProtocolInteropTests {
    @Test("three people, names, multi-byte and large messages, files, one offline, a compiled book: the reader agrees with every vault",
          .timeLimit(.minutes(3)))
    func readerAgreesWithTheStore() async throws {
        let scratch = Scratch()
        let (bob, ana, carol) = try await Member.bobAnaAndCarolStarted(scratch)
        defer { for m in [bob, ana, carol] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }

        // The reader refuses a store that a daemon holds open (§4.1's lock).
        let busy = try await Python.reader([bob.directory])
        #expect(busy.status == 1 && busy.stderr.contains("stop the daemon first"), "\(busy)")

        try await bob.ok(["name", "Bob"])
        try await carol.ok(["name", "卡罗尔 🏠"])
        let task = try await bob.newTask("Fix the roof — 屋根")
        var sent = 0
        func send(_ m: Member, _ text: String) async throws {
            try await m.ok(["send", task.id, text])
            sent += 1
        }
        try await send(bob, "The roof leaks. Ça coûte cher — 屋根が漏れる 🌧️")
        try await ana.ok(["join", task.invite])
        try await carol.ok(["join", task.invite])
        // Ana chooses her name after joining: a `name` page appended to books that exist.
        try await send(ana, "I have a ladder 🪜")
        try await ana.ok(["name", "Ana Lívia"])
        // Over 16 KiB: larger than an SQLite page of the store (§4.1), so it overflows.
        try await send(bob, String(repeating: "Große Straße — 大きな屋根. ", count: 600))
        // Over 1024 bytes (the page row carries its leaf, §4.4), and the boundary itself: a
        // chat page of a journal is 137 bytes + the text (index < 128, a 24-digit id, a time
        // of 6 varint bytes), so 887 bytes of text make a page of exactly 1024 bytes, 888 of 1025.
        try await send(carol, String(repeating: "ü", count: 750))
        try await send(ana, String(repeating: "a", count: 887))
        try await send(ana, String(repeating: "b", count: 888))
        // A file of three parts (§10.2 Files), with a caption: a message like a chat.
        let files = scratch.dir("files")
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        try Data((0..<600_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }).write(to: URL(fileURLWithPath: files + "/roof.jpg"))
        try await ana.ok(["attach", task.id, files + "/roof.jpg", "--text", "the leak — 屋根"])
        sent += 1
        // A file attached and withdrawn (§10.2 Withdrawn files): still a message, shown
        // without name or caption, not compiled.
        try Data("not for the task".utf8).write(to: URL(fileURLWithPath: files + "/private.txt"))
        try await ana.ok(["attach", task.id, files + "/private.txt", "--text", "oops"])
        try await ana.ok(["withdraw", task.id, "private.txt"])
        sent += 1
        #expect(try await converged([bob, ana, carol], task.id, sent), "before Carol leaves")

        // Carol goes offline; Bob writes more than one request's worth (256 KiB, §9.5), so the
        // first answer she gets holds some of the pages and proves the rest with nodes that
        // go to the `node` table (§4.4). She writes offline too.
        await carol.stop()
        for i in 1...5 { try await send(bob, String(repeating: "\(i)é", count: 20_000)) }
        try await send(ana, "while Carol is away")
        try await send(carol, "written offline by Carol ✍️")
        // A file attached offline, with a name in several scripts, no caption.
        try Data("a quote, 1 200 €\n".utf8).write(to: URL(fileURLWithPath: files + "/quote.txt"))
        try await carol.ok(["attach", task.id, files + "/quote.txt", "--name", "Devis — 見積書 (2).txt"])
        sent += 1
        try await carol.start()
        #expect(try await converged([bob, ana, carol], task.id, sent, timeout: .seconds(30)), "after Carol is back")

        // A new name: every later `name` page wins (§10.2, newest by time).
        try await bob.ok(["name", "Bob the Builder"])
        try await send(carol, "back — 戻りました")
        #expect(try await converged([bob, ana, carol], task.id, sent), "at the end")
        for m in [ana, carol] {
            #expect(try await eventually { try await memberNames(m, task.id).contains("Bob the Builder") }, "\(m.name)")
        }
        let compiled = try #require(try await carol.run(["task", "compile", task.id, "minutes", "--json"]).json as? [String: Any])
        #expect(compiled["copied"] as? Int == sent - 1, "the withdrawn file is not copied: \(compiled)")
        // Bob moves the task on without Carol (§10.2 Successors): Ana follows by herself.
        let carolID = try await carol.id
        let moved = try #require(try await bob.run(["task", "remove", task.id, String(carolID.prefix(8)), "--json"]).json as? [String: Any])
        let successor = try #require((moved["successor"] as? [String: Any])?["id"] as? String)
        #expect(try await eventually { try await ana.ok(["tasks"]).contains("moved on to \(successor.prefix(8))") }, "Ana followed")
        for m in [ana, carol] {
            #expect(try await eventually { try await m.ok(["log", task.id]).contains("moved the task on") }, "\(m.name) sees the move")
        }
        for m in [bob, ana, carol] { await m.stop() }

        var totals: [String: Int] = [:]
        for m in [bob, ana, carol] {
            let logged = try await m.run(["log", task.id, "--json"])
            try #require(logged.ok, "\(m.name): \(logged)")
            let expected = try #require(logged.json as? [[String: Any]])
            // The messages and files, Ana's and Carol's joins (§10.3) and Bob's move, at every member.
            #expect(expected.count == sent + 3, "\(m.name)")
            #expect(expected.filter { $0["kind"] as? String == "successor" }.count == 1, "\(m.name)")
            #expect(expected.filter { $0["kind"] as? String == "file" }.count == 3, "\(m.name)")
            #expect(expected.filter { $0["withdrawn"] as? Bool == true }.map { $0["text"] as? String } == [""], "\(m.name)")
            let joins = expected.filter { $0["kind"] as? String == "join" }
            #expect(joins.count == 2 && joins.allSatisfy { $0["text"] as? String == "" }, "\(m.name): \(joins)")
            let reader = try await Python.reader([m.directory, "--task", task.id])
            try #require(reader.status == 0, "\(m.name): \(reader.stderr)")
            let lines = reader.stdout.split(separator: "\n")
            let entries = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect((entries as NSArray).isEqual(to: expected), "\(m.name): the reader's log differs from `bookswarm log`:\n\(diff(entries, expected))")
            let counts = try #require(reader.checked, "\(m.name): \(reader.stderr)")
            print("interop: \(m.name)'s vault: \(counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))")
            for (k, v) in counts { totals[k, default: 0] += v }
            #expect(counts["malformed pages"] == 0 && counts["wrong previous (shown)"] == 0, "\(m.name): \(counts)")
            #expect(counts["files"] == 3 && counts["files intact"] == 3, "\(m.name): the files put together and checked: \(counts)")
            // The invite sealed to Ana opens with her key alone, and she followed it.
            #expect(counts["successor invites opened"] == (m === ana ? 1 : 0) && counts["successors followed"] == (m === ana ? 1 : 0),
                    "\(m.name): \(counts)")
            // roof.jpg's three parts are pages of 64 KiB and more: their tails are stored once
            // per store (§4.9) — at Ana, for her journal and her two pairwise books.
            #expect(counts["pages stored once (blob)", default: 0] >= (m === ana ? 9 : 3), "\(m.name): \(counts)")
            #expect(counts["blob rows"] == 3, "\(m.name): \(counts)")
            if m === carol {
                #expect(counts["copies verified"] == sent - 1, "every copy of the compiled book verified: \(counts)")
                #expect(counts["node rows", default: 0] > 0, "Carol's catch-up left nodes in the `node` table: \(counts)")
            }
        }
        #expect(totals["pages of 1024 bytes", default: 0] > 0 && totals["pages of 1025 bytes", default: 0] > 0, "\(totals)")
        #expect(totals["pages > 1024 bytes", default: 0] > 0 && totals["roots recomputed"] == totals["signed roots"], "\(totals)")

        // The reader is no rubber stamp: each single change to Carol's store is found.
        try await tamperedStoresAreRefused(carol.directory, scratch: scratch)
        // And the other direction: a book written by Python from PROTOCOL.md, read by both.
        try await craftedGenerationIsReadAlike(ana: ana.directory, bob: bob.directory, task: task.id, scratch: scratch)
    }

    /// Tests/Interop/bookswarm_craft.py writes generation 1 of Bob's book for Ana into a copy of
    /// her vault (§3.7 key, §3.4 signature, §4.4 tree, §10.2 pages probing the reader rules).
    /// The binary must verify it, and its log must equal the Python reader's: generation 0's
    /// copy of a duplicate message wins (§10.3), a chat that is not UTF-8 or whose head is not
    /// where it was found is hidden, a wrong head.previous is not, and of two names of the
    /// same time the newer generation's wins (§10.2); a join shows, one whose data is not its
    /// author's id is hidden, and a chat with a join's id is an entry of its own.
    func craftedGenerationIsReadAlike(ana: String, bob: String, task: String, scratch: Scratch) async throws {
        let before = try #require(try await CLI.run(["log", task, "--json", "--dir", ana]).json as? [[String: Any]])
        let vault = scratch.dir("ana-crafted")
        try FileManager.default.copyItem(atPath: ana, toPath: vault)
        let crafted = try await Python.run([Python.craftScript.path, vault, bob, task, "1"])
        try #require(crafted.status == 0, "\(crafted)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(crafted.stdout.utf8)) as? [String: Any])
        let book = try #require(plan["book"] as? String), duplicate = try #require(plan["duplicate"] as? String)

        let books = try #require(try await CLI.run(["inspect", "verify", "--json", "--dir", vault]).json as? [[String: Any]])
        let report = books.first { $0["id"] as? String == book }
        #expect(report?["verified"] as? Bool == true && report?["length"] as? Int == plan["length"] as? Int,
                "the binary verifies the crafted book: \(String(describing: report))")

        let logged = try await CLI.run(["log", task, "--json", "--dir", vault])
        let expected = try #require(logged.json as? [[String: Any]], "\(logged)")
        let reader = try await Python.reader([vault, "--task", task])
        try #require(reader.status == 0, "\(reader.stderr)")
        let entries = try reader.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect((entries as NSArray).isEqual(to: expected), "crafted generation: the reader's log differs:\n\(diff(entries, expected))")
        #expect(reader.checked?["malformed pages"] == 8 && reader.checked?["wrong previous (shown)"] == 1, "\(reader.stderr)")

        let ids = expected.compactMap { $0["id"] as? String }
        let originalBook = before.first { $0["id"] as? String == duplicate }?["book"] as? String
        #expect(expected.first { $0["id"] as? String == duplicate }?["book"] as? String == originalBook, "generation 0's copy wins")
        #expect(ids.filter { $0 == duplicate }.count == 1)
        for hidden in plan["hidden"] as? [String] ?? [] { #expect(!ids.contains(hidden), "\(hidden) is hidden") }
        for shown in plan["shown"] as? [String] ?? [] { #expect(ids.contains(shown), "\(shown) is shown") }
        #expect(expected.count == before.count + 6, "2 chats, a join, a chat with the join's id, 2 files")
        // The crafted files as the binary sees them: one whole, saved (its hash checked), one not.
        let files = try #require(plan["files"] as? [String: Any])
        let reports = try #require(try await CLI.run(["files", task, "--json", "--dir", vault]).json as? [[String: Any]])
        func whole(_ id: Any?) -> Bool? {
            let wanted = id as? String
            let found = reports.first { ($0["entry"] as? [String: Any])?["id"] as? String == wanted }
            return found?["whole"] as? Bool
        }
        #expect(whole(files["whole"]) == true && whole(files["partial"]) == false, "\(reports)")
        #expect(reader.checked?["files whole"] == (reader.checked?["files"] ?? 0) - 1, "\(reader.stderr)")
        let out = scratch.dir("crafted-out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let saved = try await CLI.run(["save", task, try #require(files["whole"] as? String), out + "/crafted.txt", "--dir", vault])
        #expect(saved.ok && (try? FileManager.default.attributesOfItem(atPath: out + "/crafted.txt")[.size] as? Int) == files["size"] as? Int, "\(saved)")
        let partial = try await CLI.run(["save", task, try #require(files["partial"] as? String), out, "--dir", vault])
        #expect(partial.status == 1 && partial.stderr.contains("not here whole yet"), "\(partial)")
        let fromCrafted = expected.filter { $0["book"] as? String == book }
        #expect(fromCrafted.filter { $0["id"] as? String == String(repeating: "e", count: 24) }.map { $0["kind"] as? String ?? "chat" } == ["join", "chat"],
                "a join and a chat of one id: two entries, the join first (its index is lower)")
        let bobNames = Set(expected.filter { $0["book"] as? String == originalBook }.compactMap { $0["name"] as? String })
        #expect(bobNames == [plan["name"] as? String ?? "?"], "\(bobNames)")
    }

    @Test("the fixture stores (§4.6): a sparse copy, node rows, pages over 1024 bytes, 4 KiB SQLite pages (v1), a page stored once (v2), a copy's pages in the page file (v3)",
          arguments: [1, 2, 3])
    func readerChecksTheFixture(version: Int) async throws {
        let secret = (0..<32).map { String(format: "%02x", ($0 + 42 * 31) % 256) }.joined()
        let result = try await Python.reader(["--store", RepoScript.url("Tests/BooksTests/Fixtures/store-v\(version)/books.sqlite").path,
                                              "--master-secret", secret])
        #expect(result.status == 0, "\(result)")
        let counts = try #require(result.checked, "\(result)")
        #expect(counts["books"] == 2 + version && counts["keys derived"] == (version == 1 ? 2 : 3), "\(counts)")
        #expect(counts["node rows", default: 0] > 0 && counts["roots recomputed"] == counts["signed roots"], "\(counts)")
        #expect(counts["pages stored once (blob)"] == (version >= 2 ? 2 : 0) && counts["blob rows"] == (version >= 2 ? 1 : 0), "\(counts)")
        #expect(counts["pages in the page file"] == (version == 3 ? 5 : 0), "\(counts)")
    }

    /// One change per copy of the vault, by SQL on the copy; the reader must exit 1 saying so.
    func tamperedStoresAreRefused(_ vault: String, scratch: Scratch) async throws {
        let cases: [(what: String, sql: String, reason: String)] = [
            ("a page's data stored as text", "UPDATE page SET data = 'text' WHERE key = (SELECT min(key) FROM page)", "not blobs"),
            ("a page's data", "UPDATE page SET data = CAST(data || x'00' AS BLOB) WHERE key = (SELECT max(key) FROM page WHERE length(data) < 1000)", ""),
            ("a parent hash in a tree column",
             "UPDATE page SET tree = zeroblob(32) WHERE key = (SELECT max(key) FROM page WHERE length(tree) = 32 AND length(data) <= 1024)", ""),
            ("the leaf of a page over 1024 bytes",
             "UPDATE page SET tree = CAST(substr(tree, 33) AS BLOB) WHERE key = (SELECT max(key) FROM page WHERE length(data) > 1024)", "tree column"),
            ("a signature in a page row",
             // The last byte changed (to 0, or to 1 where it was 0): it is the top byte of S (< 2^253), 0 about one time in 16.
             "UPDATE page SET root = CAST(substr(root, 1, 95) || CASE WHEN substr(root, 96) = x'00' THEN x'01' ELSE x'00' END AS BLOB) "
                + "WHERE key = (SELECT max(key) FROM page WHERE root IS NOT NULL)",
             "does not verify"),
            ("a root hash in the root table",
             "UPDATE root SET hash = zeroblob(32) WHERE (book, length) = (SELECT book, length FROM root LIMIT 1)", "does not verify"),
            ("a hash in the node table", "UPDATE node SET hash = zeroblob(32) WHERE (book, idx) = (SELECT book, idx FROM node LIMIT 1)", ""),
            ("the bytes of a large page (§4.9)", "UPDATE blob SET data = CAST(data || x'00' AS BLOB) WHERE id = (SELECT min(id) FROM blob)", ""),
            ("a large page's bytes removed", "DELETE FROM blob WHERE id = (SELECT min(id) FROM blob)", "not there"),
        ]
        let edit = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); n = db.execute(sys.argv[2]).rowcount; "
            + "db.commit(); db.close(); print(n)"
        for (n, c) in cases.enumerated() {
            let copy = scratch.dir("tampered-\(n)")
            try FileManager.default.copyItem(atPath: vault, toPath: copy)
            let edited = try await Python.run(["-c", edit, copy + "/store/books.sqlite", c.sql])
            try #require(edited.status == 0 && edited.stdout == "1\n", "tampering with \(c.what): \(edited)")
            let result = try await Python.reader([copy])
            #expect(result.status == 1 && result.stderr.hasPrefix("mismatch: ") && (c.reason.isEmpty || result.stderr.contains(c.reason)),
                    "\(c.what): \(result)")
            print("interop: tampered with \(c.what) → \(result.stderr.trimmingCharacters(in: .newlines))")
        }
    }

    /// Polls until every member's log of the task has `count` messages. `tasks --json`, not
    /// `log`: its answer stays small however large the messages are.
    func converged(_ members: [Member], _ task: String, _ count: Int, timeout: Duration = .seconds(15)) async throws -> Bool {
        try await eventually(timeout) {
            for m in members {
                let tasks = try await m.run(["tasks", "--json"]).json as? [[String: Any]]
                guard tasks?.first(where: { $0["id"] as? String == task })?["messages"] as? Int == count else { return false }
            }
            return true
        }
    }

    func memberNames(_ m: Member, _ task: String) async throws -> [String] {
        let tasks = try await m.run(["tasks", "--json"]).json as? [[String: Any]]
        let members = tasks?.first { $0["id"] as? String == task }?["members"] as? [[String: Any]] ?? []
        return members.compactMap { $0["name"] as? String }
    }

    func diff(_ a: [[String: Any]], _ b: [[String: Any]]) -> String {
        func short(_ e: [String: Any]) -> String {
            e.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(describing: $0.value).prefix(24))" }.joined(separator: " ")
        }
        var lines: [String] = []
        for i in 0..<max(a.count, b.count) {
            // Compared as values (a nested object's description has no fixed key order; as
            // arrays: two dictionaries holding the same JSON `true` differ on Linux).
            if i < a.count, i < b.count, ([a[i]] as NSArray).isEqual(to: [b[i]]) { continue }
            var x = i < a.count ? short(a[i]) : "—", y = i < b.count ? short(b[i]) : "—"
            if x == y { (x, y) = ("\(a[i])", "\(b[i])") }
            lines.append("#\(i) reader: \(x)\n#\(i) binary: \(y)")
        }
        return lines.joined(separator: "\n")
    }
}

/// python3 as a child process, run off the cooperative pool (it reads whole stores).
enum Python {
    static let readerScript = RepoScript.url("Tests/Interop/bookswarm_reader.py")
    static let craftScript = RepoScript.url("Tests/Interop/bookswarm_craft.py")

    /// Whether python3 with PyNaCl is present (Tools/test installs it; CI has it).
    static let readerAvailable: Bool = {
        guard let result = try? run(["-c", "import nacl.signing, sqlite3"]) as Result else { return false }
        if result.status != 0 { print("interop: python3 with pynacl not available: reader tests skipped") }
        return result.status == 0
    }()

    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var description: String { "exit \(status); stdout: \(stdout.prefix(500)); stderr: \(stderr)" }
        /// The reader's `checked: {…}` line.
        var checked: [String: Int]? {
            guard let line = stderr.split(separator: "\n").last(where: { $0.hasPrefix("checked: ") }) else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.dropFirst("checked: ".count).utf8)) as? [String: Int]
        }
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read stderr beside stdout, so that neither pipe fills while the other is drained.
        let errData = Collected()
        let errThread = Thread { errData.data = err.fileHandleForReading.readDataToEndOfFile(); errData.done.signal() }
        errThread.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errData.done.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.data, as: UTF8.self))
    }

    static func run(_ arguments: [String]) async throws -> Result {
        try await offPool { try run(arguments) }
    }

    static func reader(_ arguments: [String]) async throws -> Result {
        try await run([readerScript.path] + arguments)
    }

    private final class Collected: @unchecked Sendable {
        var data = Data()
        let done = DispatchSemaphore(value: 0)
    }
}
