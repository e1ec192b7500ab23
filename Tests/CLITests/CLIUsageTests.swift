import BookswarmTestSupport
import Foundation
import Testing

/// Mistakes a person makes on the way to a command, and what the CLI says meanwhile: each
/// message one line on stderr, with the exit code of its kind (64 for the command line).
@Suite("bookswarm usage", .serialized, .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"))
struct CLIUsageTests {
    static func expectUsageError(_ result: CLI.Result, _ line: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 64, "\(result)", sourceLocation: sourceLocation)
        #expect(result.stderr == "bookswarm: \(line)\n", "\(result)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, "\(result)", sourceLocation: sourceLocation)
    }

    /// A mistyped command was reported as its first option being unknown (`Unknown option
    /// '--dir'`), or as an unexpected argument; `help` of one showed the main help, exit 0.
    @Test func aMistypedCommandIsNamedWithTheOneMeant() async throws {
        let scratch = Scratch()
        let dir = scratch.dir("x")
        for (arguments, line) in [
            (["taks", "--dir", dir], "unknown command \"taks\" (did you mean tasks?)"),
            (["taks"], "unknown command \"taks\" (did you mean tasks?)"),
            (["task", "nwe", "x", "--dir", dir], "unknown command \"task nwe\" (did you mean task new?)"),
            (["task", "remov", "t", "--dir", dir], "unknown command \"task remov\" (did you mean task remove?)"),
            (["ta", "--dir", dir], "unknown command \"ta\" (did you mean task or tasks?)"),
            (["frob", "--dir", dir], "unknown command \"frob\" (see: bookswarm --help)"),
            (["task", "frob"], "unknown command \"task frob\" (see: bookswarm task --help)"),
            (["help", "taks"], "unknown command \"taks\" (did you mean tasks?)"),
            (["help", "task", "nwe"], "unknown command \"task nwe\" (did you mean task new?)"),
            (["--dir", dir, "taks"], "unknown command \"taks\" (did you mean tasks?)"),
        ] {
            Self.expectUsageError(try await CLI.run(arguments), line)
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
        // Help of a command that is there is still help.
        let help = try await CLI.run(["help", "task", "new"])
        #expect(help.ok && help.stdout.contains("USAGE: bookswarm task new") && help.stderr.isEmpty, "\(help)")
    }

    @Test func optionsBeforeTheCommandAreSaidToGoAfterIt() async throws {
        let scratch = Scratch()
        let dir = scratch.dir("my vault")
        for (arguments, line) in [
            (["--dir", dir, "tasks"], "options go after the command: bookswarm tasks --dir '\(dir)'"),
            (["--json", "--dir", dir, "log", "t"], "options go after the command: bookswarm log t --json --dir '\(dir)'"),
            (["task", "--dir", dir, "new", "Fix it"], "options go after the command: bookswarm task new 'Fix it' --dir '\(dir)'"),
            (["--dir", dir], "options go after the command: bookswarm COMMAND --dir '\(dir)' (see: bookswarm --help)"),
        ] {
            Self.expectUsageError(try await CLI.run(arguments), line)
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    /// `task remove --help` showed runs of 13 spaces mid-sentence (its discussion had lost
    /// the `\` that joins a multi-line string's lines); `task`'s summary named only some of
    /// its commands.
    @Test func helpTextsReadAsProse() async throws {
        let commands = ["", "id", "name", "task", "task new", "task leave", "task remove", "task compile", "task check", "join",
                        "tasks", "send", "attach", "files", "save", "log", "chat", "daemon", "inspect", "backup", "bootstrap"]
        for command in commands {
            let help = try await CLI.run(command.split(separator: " ").map(String.init) + ["--help"])
            #expect(help.ok, "\(command): \(help)")
            // Prose lines (the option and command lists are indented, in columns).
            let prose = help.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") }
            #expect(!prose.contains { $0.contains("   ") }, "\(command): \(help.stdout)")
        }
        let task = try await CLI.run(["task", "--help"])
        #expect(task.stdout.hasPrefix("OVERVIEW: Create, leave, move on (remove members) and compile tasks; check\ncompiled books."),
                "\(task.stdout)")
    }

    /// A join whose creator is offline waited --wait seconds (15 by default) without a word:
    /// it now says so on stderr when it starts waiting, once, and not when the creator
    /// answers at once. With and without a daemon of the joining vault.
    @Test(.timeLimit(.minutes(1)))
    func aJoinThatWaitsForTheCreatorSaysSo() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        let task = try await bob.newTask("Fix the roof")
        try await ana.ok(["id"])
        let waiting = "bookswarm: joined; waiting up to 2 s for the task's creator to send the title (Ctrl-C stops waiting; the task is kept)\n"
        let offline = try await ana.run(["join", task.invite, "--wait", "2"])
        #expect(offline.ok && offline.stderr == waiting, "\(offline)")
        #expect(offline.stdout.contains("the creator was not reached yet"), "\(offline)")
        let carol = Member("carol", scratch: scratch, discoveryPort: bob.discoveryPort)
        try await carol.start()
        defer { if let d = carol.daemon { kill(d.pid, SIGKILL) } }
        let throughDaemon = try await carol.run(["join", task.invite, "--wait", "2"])
        #expect(throughDaemon.ok && throughDaemon.stderr == waiting, "\(throughDaemon)")
        await carol.stop()
        // The creator online: the title comes at once, and nothing is said about waiting.
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        let dan = Member("dan", scratch: scratch, discoveryPort: bob.discoveryPort)
        try await dan.ok(["id"])
        let online = try await dan.run(["join", task.invite])
        #expect(online.ok && online.stdout.contains("Fix the roof") && online.stderr.isEmpty, "\(online)")
        await bob.stop()
    }

    /// A mistyped --dir made a new vault, a new identity, without a word for the commands a
    /// newcomer starts with; a daemon refused for an --interface that is not there left one
    /// behind, and exited 1.
    @Test func aNewVaultIsSaidAndADaemonWithoutItsInterfaceMakesNone() async throws {
        let scratch = Scratch()
        let port = testDiscoveryPort()
        for command in [["id"], ["name", "Ana"], ["task", "new", "t"]] {
            let place = scratch.dir(command[0])
            let options = ["--dir", place, "--interface", "lo", "--discovery-port", "\(port)"]
            let made = try await CLI.run(command + options)
            #expect(made.ok && made.stderr == "bookswarm: note: created a new vault in \(place) (a new identity)\n", "\(command): \(made)")
            let again = try await CLI.run(command + options)
            #expect(again.ok && again.stderr.isEmpty, "\(command): \(again)")
        }
        let typo = scratch.dir("typo")
        for interface in ["lo0", "10.255.255.254"] {
            let daemon = try await CLI.run(["daemon", "--dir", typo, "--interface", interface, "--discovery-port", "\(port)"],
                                           timeout: .seconds(10))
            let line = interface == "lo0" ? "no interface lo0 exists here (see: ip link)" : "no interface holds 10.255.255.254 here (see: ip -4 addr)"
            Self.expectUsageError(daemon, line)
            #expect(!FileManager.default.fileExists(atPath: typo), "\(interface)")
        }
        // A vault that is there is left as it was, and the exit is the same.
        let existing = try await CLI.run(["daemon", "--dir", scratch.dir("id"), "--interface", "lo0", "--discovery-port", "\(port)"],
                                         timeout: .seconds(10))
        Self.expectUsageError(existing, "no interface lo0 exists here (see: ip link)")
    }

    static func expectError(_ result: CLI.Result, _ line: String, status: Int32 = 1, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status && result.stderr == "bookswarm: \(line)\n" && result.stdout.isEmpty, "\(result)",
                sourceLocation: sourceLocation)
    }

    /// Messages that said less than they could, or said it wrongly: a short invite code's
    /// length in bytes ("1 bytes"), an invite code given as a task without how to join it,
    /// a destination directory that "is no directory here", a file over the limit in bytes.
    @Test func messagesSayWhatAPersonNeeds() async throws {
        let scratch = Scratch()
        let (bob, ana) = Member.bobAndAna(scratch)
        let task = try await bob.newTask("t")
        // The characters of a code after `bsw1-` (InviteCode.bodyCharacters).
        #expect(task.invite.dropFirst(5).filter { $0 != "-" }.count == 85, "\(task.invite)")
        Self.expectError(try await bob.run(["join", "bsw1-ab"]),
                         "invalid invite code: it has 2 characters after bsw1- instead of 85: part of it is missing", status: 64)
        Self.expectError(try await bob.run(["join", task.invite + "-abcdef"]),
                         "invalid invite code: it has 91 characters after bsw1- instead of 85: part of it is repeated", status: 64)
        let other = try await ana.newTask("elsewhere")
        Self.expectError(try await bob.run(["log", other.invite]), "unknown task \"\(other.invite)\" (to join it: bookswarm join CODE)")
        Self.expectError(try await bob.run(["send", other.invite, "hi"]), "unknown task \"\(other.invite)\" (to join it: bookswarm join CODE)")
        // 65 MiB (a sparse file: nothing to write).
        let big = scratch.dir("big.bin")
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        try FileHandle(forWritingAtPath: big).map { try $0.truncate(atOffset: 65 * 1024 * 1024); try $0.close() }
        Self.expectError(try await bob.run(["attach", task.id, big]), "\(big) is 65.0 MiB; files of at most 64 MiB can be attached")
        let small = scratch.dir("small.txt")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: small))
        try await bob.ok(["attach", task.id, small])
        Self.expectError(try await bob.run(["save", task.id, "small.txt", scratch.dir("no/sub/")]),
                         "\(scratch.dir("no/sub"))/ does not exist: create it first, or choose another destination")
        Self.expectError(try await bob.run(["save", task.id, "small.txt", small + "/"]),
                         "\(small) is not a directory: choose another destination")
        #expect(try await bob.run(["save", task.id, "small.txt", scratch.dir("copy.txt")]).ok)
    }

    /// "2 tasks are titled "Fix the roof"; use the id" left the ids to be looked up.
    @Test func tasksOfOneTitleAreListedByTheirIds() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let first = try await bob.newTask("Fix the roof")
        let second = try await bob.newTask("Fix the roof")
        let ids = [first.id, second.id].map { String($0.prefix(8)) }.sorted()
        let line = "2 tasks are titled \"Fix the roof\"; use the id: \(ids[0]) or \(ids[1])"
        Self.expectError(try await bob.run(["send", "Fix the roof", "hi"]), line)
        // Through a daemon, the same.
        try await bob.start()
        defer { if let d = bob.daemon { kill(d.pid, SIGKILL) } }
        Self.expectError(try await bob.run(["log", "Fix the roof"]), line)
        try await bob.ok(["send", ids[0], "by id"])
        await bob.stop()
    }

    /// `send Roof "-oh no"` printed send's help (`-o -h`), exit 0, and sent nothing; `-5
    /// degrees outside` was a missing argument. A message, title or name that begins with a
    /// dash is the text it is; options stay options wherever they stand.
    @Test func textThatBeginsWithADashIsText() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("-roof-")
        #expect(try await bob.ok(["name", "-Bob-"]) == "-Bob-\n")
        try await bob.ok(["send", task.id, "-oh no"])
        try await bob.ok(["send", "-roof-", "-1 for this idea"])
        let between = try await CLI.run(["send", task.id, "--dir", bob.directory, "-5 degrees outside", "--json"])
        #expect(between.ok && between.stdout.contains("-5 degrees outside"), "\(between)")
        #expect(try await CLI.run(["send", task.id, "--dir", bob.directory, "--", "--> look here"]).ok)
        let log = try await bob.ok(["log", task.id])
        #expect(log.split(separator: "\n").map { $0.split(separator: ": ", maxSplits: 1).last.map(String.init) ?? "" }
                == ["-oh no", "-1 for this idea", "-5 degrees outside", "--> look here"], "\(log)")
        // The help is still the help.
        let help = try await bob.run(["send", task.id, "-h"])
        #expect(help.ok && help.stdout.contains("USAGE: bookswarm send"), "\(help)")
    }

    /// A name, title, message or invite code that cannot be one exited 1, like a failure,
    /// and some said only "(got 3 bytes)" of a name of three spaces: each is a mistake on the
    /// command line (exit 64) that says what is wrong, with a daemon or without.
    @Test(.timeLimit(.minutes(1)))
    func aMistakeInWhatWasTypedExits64() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        let task = try await bob.newTask("roof")
        let cases: [([String], String)] = [
            (["name", ""], "a name is 1…64 bytes of text on one line, without control characters (got nothing)"),
            (["name", "   "], "a name is 1…64 bytes of text on one line, without control characters (got nothing but spaces)"),
            (["name", "Ana\u{202E}"], "a name is 1…64 bytes of text on one line, without control characters (got U+202E, an invisible control character)"),
            (["name", String(repeating: "x", count: 65)], "a name is 1…64 bytes of text on one line, without control characters (got 65 bytes)"),
            (["task", "new", "a\nb"], "a task title is 1…256 bytes of text on one line, without control characters (got a line break)"),
            (["send", task.id, " "], "the message is empty (nothing but white space): nothing sent"),
            (["join", "hello"], "not a Bookswarm invite code: it should start with \"bsw1-\""),
        ]
        for daemon in [false, true] {
            if daemon { try await bob.start() }
            for (arguments, line) in cases {
                let run = try await bob.run(arguments)
                Self.expectError(run, line, status: 64)
            }
            let remove = try await bob.run(["task", "remove", task.id])
            #expect(remove.status == 64 && remove.stderr.hasPrefix("bookswarm: name the members to leave out"), "\(remove)")
        }
        if let d = bob.daemon { kill(d.pid, SIGKILL) }
        #expect(try await bob.texts(task.id).isEmpty)
    }

    /// The README's daemon line showed `peer 83b63c43…`: the daemon prints the whole id.
    /// Its first lines, for a new vault, against the README's walkthrough, in shape.
    @Test(.timeLimit(.minutes(1)))
    func theReadmeShowsTheDaemonsLinesAsTheyAre() async throws {
        let scratch = Scratch()
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort())
        // Up for two seconds, then SIGTERM: a daemon stops cleanly on it.
        let run = try await CLI.run(bob.arguments(["daemon"]),
                                    prefix: ["/bin/bash", "-c", "\"$0\" \"$@\" & p=$!; sleep 2; kill $p; wait $p"])
        let note = #/^bookswarm: note: created a new vault in (\S+) \(a new identity\)$/#
        let ready = #/^bookswarm daemon: peer [0-9a-f]{64} at udp \S+, discovery on [^,]+, control (\S+)$/#
        #expect(run.ok, "\(run)")
        #expect(run.stderr.split(separator: "\n").map(String.init).first.flatMap { try? note.wholeMatch(in: $0) }?.1 == bob.directory[...],
                "\(run)")
        #expect(run.stdout.split(separator: "\n").map(String.init).first.flatMap { try? ready.wholeMatch(in: $0) } != nil, "\(run)")
        let readme = try String(contentsOf: RepoScript.url("README.md"), encoding: .utf8)
        let lines = readme.split(separator: "\n").map(String.init)
        let start = try #require(lines.firstIndex(of: "bob$ bookswarm daemon &"))
        #expect((try? note.wholeMatch(in: lines[start + 1])) != nil, "\(lines[start + 1])")
        #expect((try? ready.wholeMatch(in: lines[start + 2])) != nil, "\(lines[start + 2])")
    }
}
