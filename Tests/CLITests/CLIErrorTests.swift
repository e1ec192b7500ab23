import Foundation
import Testing

/// Every failure a person can cause gives one line on stderr, a non-zero exit, and leaves
/// what was stored as it was (issue 6 acceptance).
@Suite("bookswarm errors", .serialized, .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"))
struct CLIErrorTests {
    /// One line, prefixed, nothing on stdout, non-zero.
    static func expectOneLineError(_ result: CLI.Result, mentioning needle: String? = nil,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!result.ok, "\(result)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1 && lines[0].hasPrefix("bookswarm: "), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, "stdout: \(result.stdout)", sourceLocation: sourceLocation)
        if let needle { #expect(result.stderr.contains(needle), "stderr: \(result.stderr)", sourceLocation: sourceLocation) }
    }

    @Test func invalidAndMistypedInviteCodes() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        try await bob.ok(["send", task.id, "kept"])
        Self.expectOneLineError(try await bob.run(["join", "hello"]), mentioning: "bsw1-")
        // One symbol changed, anywhere: the checksum catches it.
        var chars = Array(task.invite)
        let i = chars.count - 7
        chars[i] = chars[i] == "a" ? "b" : "a"
        Self.expectOneLineError(try await bob.run(["join", String(chars)]), mentioning: "invite code")
        Self.expectOneLineError(try await bob.run(["join", String(task.invite.dropLast(4))]), mentioning: "invite code")
        #expect(try await bob.texts(task.id) == ["kept"])
    }

    @Test func leavingATaskWantsYes() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("Keep me")
        try await bob.ok(["send", task.id, "kept"])
        Self.expectOneLineError(try await bob.run(["task", "leave", task.id]), mentioning: "--yes")
        #expect(try await bob.texts(task.id) == ["kept"], "nothing deleted without --yes")
        let left = try await bob.ok(["task", "leave", "Keep me", "--yes"])
        #expect(left.hasPrefix("left    \(task.id)  Keep me: 1 message and 1 book deleted"), "\(left)")
        Self.expectOneLineError(try await bob.run(["log", task.id]), mentioning: "unknown task")
        Self.expectOneLineError(try await bob.run(["task", "leave", task.id, "--yes"]), mentioning: "unknown task")
    }

    @Test func whatOthersWroteCannotDriveTheTerminal() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        // A forged second message line, a carriage return and erase-line, a window title,
        // a bell, a right-to-left override.
        let text = "innocent\n[21:40:00] da21d13d: I agree to pay\r\u{1b}[2K\u{1b}]0;owned\u{07}\u{202e}txt"
        try await bob.ok(["send", task.id, text])
        let out = try await bob.ok(["log", task.id])
        let lines = out.split(separator: "\n")
        #expect(lines.count == 2, "\(out)")
        #expect(lines.last?.hasPrefix("    | [21:40:00] da21d13d") == true, "\(out)")
        let unsafe = out.unicodeScalars.filter {
            ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E
        }
        #expect(unsafe.isEmpty, "\(unsafe.map { String($0.value, radix: 16) })")
        #expect(out.contains("\\u{d}\\u{1b}[2K\\u{1b}]0;owned\\u{7}\\u{202e}txt"), "\(out)")
        // The stored message is the text as sent (`--json` shows it whole).
        #expect(try await bob.texts(task.id) == [text])
    }

    @Test func aReaderThatGoesAwayEndsTheOutputQuietly() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        // More than a pipe holds (64 KiB), so writes after `head` left fail with EPIPE.
        for i in 0..<3 { try await bob.ok(["send", task.id, String(repeating: "\(i)", count: 60_000)]) }
        let piped = try await CLI.run(["log", task.id, "--dir", bob.directory],
                                      prefix: ["/bin/bash", "-c", "set -o pipefail; \"$0\" \"$@\" | head -c 10 >/dev/null"])
        #expect(piped.status == 0, "\(piped)")
        #expect(piped.stderr.isEmpty, "\(piped)")
        let full = try await CLI.run(["id", "--dir", bob.directory], prefix: ["/bin/bash", "-c", "\"$0\" \"$@\" >/dev/full"])
        Self.expectOneLineError(full, mentioning: "cannot write the output")
        #expect(full.status == 74)
    }

    @Test func joinWaitMustBeASensibleNumberOfSeconds() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        for wait in ["inf", "nan", "1e17", "86401"] {
            let result = try await CLI.run(["join", task.invite, "--wait", wait, "--dir", scratch.dir("ana")])
            #expect(result.status == 64, "--wait \(wait): \(result)")
            #expect(result.stderr.contains("--wait takes seconds"), "--wait \(wait): \(result)")
        }
    }

    @Test func inviteCodesRetypedWithSpacesOrWithoutDashesJoin() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        let spaced = task.invite.replacingOccurrences(of: "-", with: " ")
        let bare = task.invite.replacingOccurrences(of: "-", with: "").uppercased()
        for (name, code) in [("ana", spaced), ("carol", bare)] {
            let member = Member(name, scratch: scratch, discoveryPort: bob.discoveryPort)
            let joined = try await member.run(["join", code, "--wait", "0"])
            #expect(joined.ok && joined.stdout.contains(task.id), "\(code): \(joined)")
        }
    }

    @Test func mistakesAroundTheVaultAndTheNetworkOptions() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        try await bob.ok(["send", task.id, "kept"])
        Self.expectOneLineError(try await bob.run(["send", task.id, " \n\t "]), mentioning: "empty")
        // The key lost, the store still there: no new key is made up.
        let key = bob.directory + "/identity.key"
        try FileManager.default.moveItem(atPath: key, toPath: key + ".saved")
        Self.expectOneLineError(try await bob.run(["tasks"]), mentioning: "restore identity.key")
        #expect(!FileManager.default.fileExists(atPath: key))
        try FileManager.default.createDirectory(atPath: key, withIntermediateDirectories: false)
        Self.expectOneLineError(try await bob.run(["tasks"]), mentioning: "is not a file")
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.moveItem(atPath: key + ".saved", toPath: key)
        #expect(try await bob.texts(task.id) == ["kept"])
        let zero = try await CLI.run(["id", "--dir", bob.directory, "--discovery-port", "0"])
        #expect(zero.status == 64 && zero.stderr.contains("--discovery-port"), "\(zero)")
        Self.expectOneLineError(try await CLI.run(["join", task.invite, "--dir", scratch.dir("dan"), "--wait", "0",
                                                   "--bootstrap", "127.0.0.1:0"]), mentioning: "a port from 1 to 65535, an IPv6 address in brackets), not \"127.0.0.1:0\"")
        // A join whose network cannot come up keeps the task, says so in its one error line,
        // and the task is listed as waiting for its title, not as untitled.
        let eve = Member("eve", scratch: scratch, interface: "no-such-if0", discoveryPort: testDiscoveryPort())
        let offline = try await eve.run(["join", task.invite, "--wait", "0"])
        #expect(!offline.ok && offline.stdout.hasPrefix("joined  \(task.id)  (title not received yet)"), "\(offline)")
        // (Eve's vault is new: the note that says so, then the one error line.)
        let offlineLines = offline.stderr.split(separator: "\n")
        #expect(offlineLines.count == 2 && offlineLines[0] == "bookswarm: note: created a new vault in \(eve.directory) (a new identity)"
                && offlineLines[1].contains("no interface no-such-if0") && offlineLines[1].contains("the task is kept"), "\(offline)")
        let listed = try await CLI.run(["tasks", "--dir", eve.directory])
        #expect(listed.ok && listed.stdout.contains("\(task.id.prefix(8))  (title not received yet)"), "\(listed)")
    }

    @Test func commandLineMistakesAreOneLineWithWhereTheHelpIs() async throws {
        for (arguments, needle) in [(["join"], "Missing expected argument '<code>' (see: bookswarm join --help)"),
                                    (["frob"], "unknown command \"frob\" (see: bookswarm --help)"),
                                    (["tasks", "--bogus"], "Unknown option '--bogus' (see: bookswarm tasks --help)"),
                                    (["join", "x", "--wait", "99999"], "--wait takes seconds from 0 to 86400"),
                                    // A negative number was read as a missing value ("Missing value for '--wait <wait>'").
                                    (["join", "x", "--wait", "-1"], "--wait takes seconds from 0 to 86400, not -1"),
                                    (["backup", ""], "the backup's destination is empty"),
                                    // Checked as written, whatever the command (a running daemon ignores it).
                                    (["tasks", "--bootstrap", "nonsense"], "--bootstrap takes HOST:PORT"),
                                    (["send", "t", "x", "--bootstrap", "node.example:0"], "not \"node.example:0\""),
                                    // A sleep that long trapped the node (`Duration.components` overflowed).
                                    (["bootstrap", "--port", "1", "--bind", "127.0.0.1", "--stats-interval", "\(Int.max)"],
                                     "--stats-interval takes seconds from 0 to 86400")] {
            let result = try await CLI.run(arguments)
            #expect(result.status == 64, "\(arguments): \(result)")
            Self.expectOneLineError(result, mentioning: needle)
        }
        // Help is still help: on stdout, exit 0.
        let help = try await CLI.run(["join", "--help"])
        #expect(help.ok && help.stdout.contains("USAGE: bookswarm join") && help.stderr.isEmpty, "\(help)")
    }

    /// A title is one line of text, like a name: a pasted line break or an escape sequence
    /// is refused when the task is made (it could only ever be shown escaped, and typed by
    /// nobody to name the task).
    @Test func aTaskTitleIsOneLineOfText() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        try await bob.ok(["id"])
        for title in ["Fix\nthe roof", "Fix \u{1b}[2Jthe roof", "roof\u{202e}fix", "a\u{2028}b", ""] {
            Self.expectOneLineError(try await bob.run(["task", "new", title]), mentioning: "a task title is 1…256 bytes")
        }
        #expect(try await bob.ok(["tasks"]).hasPrefix("no tasks yet"))
        #expect(try await bob.ok(["task", "new", "  Fix the roof — 屋根 🏠  "]).contains("Fix the roof — 屋根 🏠\n"))
    }

    @Test func unknownTask() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        try await bob.ok(["send", task.id, "kept"])
        Self.expectOneLineError(try await bob.run(["send", "no-such-task", "hi"]), mentioning: "unknown task")
        Self.expectOneLineError(try await bob.run(["log", "ffff0000"]), mentioning: "unknown task")
        Self.expectOneLineError(try await bob.run(["chat", "nope"]), mentioning: "unknown task")
        #expect(try await bob.texts(task.id) == ["kept"])
    }

    @Test func secondDaemonOnTheSameDirectory() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let pid = try #require(bob.daemon?.pid)
        let task = try await bob.newTask("t")
        try await bob.ok(["send", task.id, "kept"])
        let second = try await bob.run(["daemon"], timeout: .seconds(10))
        Self.expectOneLineError(second, mentioning: "pid \(pid)")
        // The first one is unharmed and still answers.
        #expect(bob.daemon?.isRunning == true)
        #expect(try await bob.texts(task.id) == ["kept"])
        await bob.stop()
    }

    /// A vault held by a command that brought the network up itself (`log --follow`, `chat`
    /// or `join` without a daemon): another command is told the holder in full, to stop it,
    /// and that a daemon started then is the way to use the vault from several commands at
    /// once (not to run one now: the daemon is refused the vault too while the holder runs).
    @Test(.timeLimit(.minutes(1)))
    func aVaultHeldByAFollowWithoutADaemon() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        let follow = try bob.launch(["log", task.id, "--follow"])
        defer { kill(follow.processIdentifier, SIGKILL) }
        #expect(await eventually(.seconds(10)) {
            (try? String(contentsOfFile: bob.directory + "/lock", encoding: .utf8))?.contains("log --follow") == true
        })
        // (Said at once: only a daemon's lock is waited on, its socket about to answer.)
        Self.expectOneLineError(try await bob.run(["tasks"]),
                                mentioning: "is in use by a bookswarm log --follow (pid \(follow.processIdentifier)); "
                                    + "stop it first (then `bookswarm daemon` lets several commands use the vault at once)")
        let daemon = try await bob.run(["daemon"], timeout: .seconds(10))
        Self.expectOneLineError(daemon, mentioning: "is in use by a bookswarm log --follow (pid \(follow.processIdentifier)); stop it first or use another --dir")
    }

    @Test func corruptStoreIsRefusedAndLeftAsItWas() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        try await bob.ok(["send", task.id, "kept"])
        let file = bob.directory + "/store/books.sqlite"
        let original = try #require(FileManager.default.contents(atPath: file))
        var damaged = original
        for i in 0..<16 { damaged[i] = 0x5a }  // the SQLite header
        try damaged.write(to: URL(fileURLWithPath: file))
        for command in [["tasks"], ["send", task.id, "lost?"], ["daemon"], ["log", task.id]] {
            Self.expectOneLineError(try await bob.run(command, timeout: .seconds(10)), mentioning: "books.sqlite")
            #expect(FileManager.default.contents(atPath: file) == damaged, "\(command) changed the damaged file")
        }
        // Repaired by hand, everything stored before is there.
        try original.write(to: URL(fileURLWithPath: file))
        #expect(try await bob.texts(task.id) == ["kept"])
    }

    @Test func unusableDirectories() async throws {
        let scratch = Scratch()
        try FileManager.default.createDirectory(atPath: scratch.root, withIntermediateDirectories: true)
        let notADirectory = scratch.dir("file")
        _ = FileManager.default.createFile(atPath: notADirectory, contents: Data("x".utf8))
        Self.expectOneLineError(try await CLI.run(["tasks", "--dir", notADirectory]), mentioning: "not a directory")
        Self.expectOneLineError(try await CLI.run(["id", "--dir", notADirectory + "/sub"]), mentioning: notADirectory)
    }

    /// A mistyped `--dir` is no new vault: the commands that only read or add to a vault
    /// refuse a place without one (and leave it as it was); those a newcomer starts with
    /// (`id`, `name`, `task new`, `join`, `daemon`) make it.
    @Test func aPlaceWithoutAVaultIsNotMadeOneByCommandsThatNeedOne() async throws {
        let scratch = Scratch()
        try FileManager.default.createDirectory(atPath: scratch.dir("empty"), withIntermediateDirectories: true)
        for place in [scratch.dir("typo"), scratch.dir("empty")] {
            for command in [["tasks"], ["log", "t"], ["log", "t", "--follow"], ["chat", "t"], ["send", "t", "hi"], ["files", "t"],
                            ["save", "t", "f", scratch.root], ["inspect"], ["backup", scratch.dir("copy")], ["task", "leave", "t", "--yes"]] {
                let result = try await CLI.run(command + ["--dir", place, "--interface", "lo"])
                Self.expectOneLineError(result, mentioning: "no vault in \(place)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.root).sorted() == ["empty"], "\(place)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.dir("empty")).isEmpty, "\(place)")
        }
        // A relative --dir is named whole, from where the command ran.
        let relative = try await CLI.run(["tasks", "--dir", "./typo/../typo"], directory: scratch.root)
        Self.expectOneLineError(relative, mentioning: "no vault in \(scratch.dir("typo")):")
        let made = try await CLI.run(["id", "--dir", scratch.dir("typo")])
        #expect(made.ok && made.stdout.count == 65, "\(made)")
        let listed = try await CLI.run(["tasks", "--dir", scratch.dir("typo")])
        #expect(listed.ok && listed.stdout.hasPrefix("no tasks yet"), "\(listed)")
    }

    /// `log --follow` through a daemon that stops does not end as if all were well: one line
    /// says the daemon went away, and the exit is non-zero.
    @Test(.timeLimit(.minutes(1)))
    func followThroughADaemonThatStops() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let task = try await bob.newTask("t")
        try await bob.ok(["send", task.id, "before the stop"])
        async let following = bob.run(["log", task.id, "--follow"])
        try await Task.sleep(for: .seconds(2))
        await bob.stop()
        let result = try await following
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout.contains("you: before the stop"), "\(result)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("bookswarm: the daemon of \(bob.directory) stopped"), "\(result)")
    }

    /// Bob's vault (no daemon) with a task holding a file of `size` (24 MB) random bytes,
    /// `filler.bin` in `scratch`, which takes a backup or a save a while to write.
    static func vaultWithAFile(_ scratch: Scratch, size: Int = 24_000_000) async throws -> (bob: Member, task: (id: String, invite: String)) {
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        let file = scratch.dir("filler.bin")
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        try random.readData(ofLength: size).write(to: URL(fileURLWithPath: file))
        try await bob.ok(["attach", task.id, file])
        return (bob, task)
    }

    /// A backup interrupted (Ctrl-C, SIGTERM) while this process writes it leaves no hidden
    /// half-copy of the vault — secret key included — beside the destination, and one that a
    /// killed backup left is removed by the next backup to the same place.
    @Test(.timeLimit(.minutes(1)))
    func anInterruptedBackupLeavesNoHalfCopy() async throws {
        let scratch = Scratch()
        // A store of some megabytes, so that the copy takes a while.
        let (bob, _) = try await Self.vaultWithAFile(scratch)
        // What a backup killed with SIGKILL left: the staging directory of a process gone.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let abandoned = scratch.dir(".copy.partial-\(gone.processIdentifier)")
        try FileManager.default.createDirectory(atPath: abandoned + "/store", withIntermediateDirectories: true)
        func leftovers() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: scratch.root).filter { $0.hasPrefix(".copy.partial-") }
        }
        let copy = scratch.dir("copy")
        for (signal, delay) in [(SIGINT, 20), (SIGTERM, 40), (SIGINT, 60), (SIGTERM, 90), (SIGINT, 130)] {
            try? FileManager.default.removeItem(atPath: copy)
            let backup = Process()
            backup.executableURL = URL(fileURLWithPath: CLI.binary!)
            backup.arguments = ["backup", copy, "--dir", bob.directory]
            backup.standardOutput = FileHandle.nullDevice
            backup.standardError = FileHandle.nullDevice
            try backup.run()
            try await Task.sleep(for: .milliseconds(delay))
            kill(backup.processIdentifier, signal)
            backup.waitUntilExit()
            let left = try leftovers()
            #expect(left.filter { $0 != (abandoned as NSString).lastPathComponent }.isEmpty, "signal \(signal) after \(delay) ms: \(left)")
        }
        try? FileManager.default.removeItem(atPath: copy)
        try await bob.ok(["backup", copy])
        let left = try leftovers()
        #expect(left.isEmpty, "\(left)")
    }

    /// `save` interrupted while this process writes the file (no daemon) leaves no hidden
    /// partial file (up to 64 MiB) in the destination directory.
    @Test(.timeLimit(.minutes(1)))
    func anInterruptedSaveLeavesNoHiddenFile() async throws {
        let scratch = Scratch()
        let (bob, task) = try await Self.vaultWithAFile(scratch)
        let out = scratch.dir("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for (signal, delay) in [(SIGINT, 30), (SIGTERM, 60), (SIGINT, 100), (SIGTERM, 150), (SIGINT, 200)] {
            try? FileManager.default.removeItem(atPath: out + "/filler.bin")
            let save = Process()
            save.executableURL = URL(fileURLWithPath: CLI.binary!)
            save.arguments = ["save", task.id, "filler.bin", out, "--dir", bob.directory]
            save.standardOutput = FileHandle.nullDevice
            save.standardError = FileHandle.nullDevice
            try save.run()
            try await Task.sleep(for: .milliseconds(delay))
            kill(save.processIdentifier, signal)
            save.waitUntilExit()
            let hidden = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix(".") }
            #expect(hidden.isEmpty, "signal \(signal) after \(delay) ms: \(hidden)")
        }
        // What a save killed with SIGKILL (a daemon's, say) left is removed by the next save
        // of that file there; one of a process still running is not.
        let files = try #require(try await bob.run(["files", task.id, "--json"]).json as? [[String: Any]])
        let id = try #require((files.first?["entry"] as? [String: Any])?["id"] as? String)
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let abandoned = out + "/.\(id).partial-\(gone.processIdentifier)-7"
        let running = out + "/.\(id).partial-\(getpid())-7"
        for leftover in [abandoned, running] { #expect(FileManager.default.createFile(atPath: leftover, contents: Data("x".utf8))) }
        try? FileManager.default.removeItem(atPath: out + "/filler.bin")
        try await bob.ok(["save", task.id, "filler.bin", out])
        #expect(!FileManager.default.fileExists(atPath: abandoned) && FileManager.default.fileExists(atPath: running))
    }

    /// A full disk is said as such, with the file: without a daemon (the store cannot be
    /// opened for writing: SQLite's shared-memory file cannot grow) and with one (a write
    /// fails). It was "SQLite error 4874: disk I/O error". In a mount namespace of the test's
    /// own: a small tmpfs nobody else sees. (Commands that only read still work without a
    /// daemon: CLIFullDiskTests.)
    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                   "needs root and unshare for a full file system of the test's own"),
          .timeLimit(.minutes(1)))
    func aFullDiskIsNamedAsSuch() async throws {
        let scratch = Scratch()
        let place = scratch.dir("small")
        try FileManager.default.createDirectory(atPath: place, withIntermediateDirectories: true)
        let script = """
            set -u
            mount -t tmpfs -o size=700k tmpfs "$0" || exit 99
            "$1" task new t --dir "$0/v" >/dev/null || exit 98
            head -c 2000000 /dev/zero >"$0/filler" 2>/dev/null
            "$1" send t "x" --dir "$0/v" --interface lo --discovery-port "$2" 2>"$0/../offline.err"
            rm "$0/filler"
            "$1" daemon --dir "$0/v" --interface lo --discovery-port "$2" >/dev/null 2>&1 &
            daemon=$!
            for i in $(seq 100); do [ -S "$0/v/control.sock" ] && break; sleep 0.05; done
            head -c 2000000 /dev/zero >"$0/filler" 2>/dev/null
            "$1" send t "$(head -c 30000 /dev/zero | tr '\\0' a)" --dir "$0/v" 2>"$0/../daemon.err"
            kill "$daemon"; wait "$daemon"
            exit 0
            """
        let run = try await CLI.run([], prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, place,
                                                 CLI.binary!, "\(testDiscoveryPort())"])
        #expect(run.status == 0, "\(run)")
        for (file, action) in [("offline.err", "nothing was changed"), ("daemon.err", "bookswarm: the disk is full")] {
            let text = try String(contentsOfFile: scratch.dir(file), encoding: .utf8)
            let lines = text.split(separator: "\n")
            #expect(lines.count == 1 && text.contains("the disk is full") && text.contains(action)
                    && text.contains(place + "/v/store/books.sqlite"), "\(file): \(text)")
        }
    }

    /// A daemon that goes away between taking a request and answering it (a crash, kill -9)
    /// gives a line that names it and says the request may have been carried out. Played by
    /// a socket that accepts and closes.
    @Test(.timeLimit(.minutes(1)))
    func aDaemonThatGoesAwayWithoutAnswering() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("t")
        // Says "ready" once it listens: a command before that would find no daemon and
        // open the vault itself.
        let mute = Process()
        mute.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        mute.arguments = ["-c", "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen()\n"
                          + "print('ready', flush=True)\nwhile True:\n    s.accept()[0].close()\n", bob.directory + "/control.sock"]
        let ready = Pipe()
        mute.standardOutput = ready
        mute.standardError = FileHandle.nullDevice
        try mute.run()
        // SIGKILL: the test runner's children may inherit SIGTERM ignored.
        defer { kill(mute.processIdentifier, SIGKILL) }
        let line = ready.fileHandleForReading.availableData
        try #require(String(decoding: line, as: UTF8.self).hasPrefix("ready"), "the stand-in daemon did not start")
        let went = "the daemon of \(bob.directory) went away without answering"
        Self.expectOneLineError(try await bob.run(["send", task.id, "hi"], timeout: .seconds(15)), mentioning: went)
        Self.expectOneLineError(try await bob.run(["send", task.id, "hi"], timeout: .seconds(15)), mentioning: "the request may have been carried out")
        Self.expectOneLineError(try await bob.run(["log", task.id, "--follow"], timeout: .seconds(15)), mentioning: went)
    }

    /// A vault whose control socket's path would not fit a Unix socket address: one line
    /// that says so before anything starts (it was the socket library's case name, after
    /// the network was up).
    @Test func daemonInAVaultWhosePathIsTooLong() async throws {
        let scratch = Scratch()
        let place = scratch.dir(String(repeating: "d", count: 100))
        let result = try await CLI.run(["daemon", "--dir", place, "--interface", "lo", "--discovery-port", "\(testDiscoveryPort())"])
        Self.expectOneLineError(result, mentioning: "too long for its control socket")
        #expect(!FileManager.default.fileExists(atPath: place))
    }

    /// The help says each default once, and where the network options count.
    @Test func helpTextOfTheSharedOptions() async throws {
        let help = try await CLI.run(["daemon", "--help"])
        #expect(help.ok && help.stdout.contains("any free port") && !help.stdout.contains("(default: 0)"), "\(help)")
        let tasks = try await CLI.run(["tasks", "--help"])
        #expect(tasks.ok && tasks.stdout.contains("other commands ignore them"), "\(tasks)")
    }

    /// A directory this user cannot read: run as `nobody` on a directory only root may use.
    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                   "needs root and setpriv to run a command as another user"))
    func unreadableDirectory() async throws {
        let scratch = Scratch()
        let owner = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await owner.newTask("t")
        try await owner.ok(["send", task.id, "kept"])
        chmod(owner.directory, 0o700)
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        // The binary must be reachable by nobody; otherwise this machine cannot show the case.
        let probe = try await CLI.run(["--help"], prefix: asNobody)
        try #require(probe.ok, "nobody cannot run \(CLI.binary!) here (\(probe.stderr)); a parent directory is not world-executable")
        // The scratch root must be traversable for the message to be about the vault itself.
        chmod(scratch.root, 0o755)
        let result = try await CLI.run(["tasks", "--dir", owner.directory], prefix: asNobody)
        Self.expectOneLineError(result, mentioning: owner.directory)
        #expect(try await owner.texts(task.id) == ["kept"])
    }
}
