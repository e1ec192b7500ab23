import Foundation
import Testing

/// A vault whose disk is full, or whose file system is read-only, with no daemon: the
/// commands that only read show what it holds — the messages a killed daemon left in the
/// store's WAL included — and say once, on stderr, that the vault is read without writing;
/// a command that writes fails with one line naming the store's file and changes nothing;
/// once space is freed everything works as before. On a small tmpfs in a mount namespace of
/// the test's own (`unshare -m`, root), as `aFullDiskIsNamedAsSuch` does.
@Suite("bookswarm on a full disk", .serialized,
       .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"),
       .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                "needs root and unshare for a file system of the test's own"))
struct CLIFullDiskTests {
    enum Scenario: String, CaseIterable, CustomTestStringConvertible {
        /// The vault closed (its WAL copied back) before the disk filled.
        case closed
        /// A daemon killed with SIGKILL after a send: the message is only in the WAL. The
        /// store may open for writing here (SQLite rebuilds the WAL index in the space it
        /// frees first); either way the message shows.
        case killed
        /// The same, with the WAL index (`-shm`) gone: the store cannot open for writing and
        /// is read from its WAL.
        case killedWithoutIndex

        var testDescription: String { rawValue }
    }

    /// Runs `body` (shell lines) in a private mount namespace with `$place` (a tmpfs of 2 MiB
    /// mounted there), `$v` (the vault in it), `$out` (outside it, for the results), the
    /// functions `b ARGS…` (bookswarm on the vault, on loopback) and `run NAME ARGS…` (the same,
    /// its stdout, stderr and status kept in `$out/NAME.{out,err,rc}`), and `$1` the scenario.
    static func inNamespace(_ body: String, scenario: String, scratch: Scratch,
                            timeout: Duration = .seconds(30)) async throws -> [String: String] {
        let place = scratch.dir("small"), out = scratch.dir("out")
        for dir in [place, out] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let script = """
            set -u
            place=$0 bin=$1 port=$2 out=$3 v="$0/v"
            shift 3
            mount -t tmpfs -o size=2m tmpfs "$place" || exit 99
            b() { "$bin" "$@" --dir "$v" --interface lo --discovery-port "$port"; }
            run() { name=$1; shift; b "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }
            # The store's files and the read markers, as checksums.
            sums() { (cd "$v" && for f in store/books.sqlite store/books.sqlite-wal messenger-state.json; do [ -s $f ] && cksum $f; done); }
            b task new Roof >/dev/null && b send Roof one && b send Roof two || exit 98
            \(body)
            exit 0
            """
        let run = try await CLI.run([], prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, place,
                                                 CLI.binary!, "\(testDiscoveryPort())", out, scenario], timeout: timeout)
        try #require(run.status == 0, "\(run)")
        var results: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: out) {
            results[name] = try String(contentsOfFile: out + "/" + name, encoding: .utf8)
        }
        return results
    }

    /// Starts a daemon, sends through it, kills it with SIGKILL: the message stays in the WAL.
    static let killDaemonAfterASend = """
        "$bin" daemon --dir "$v" --interface lo --discovery-port "$port" >/dev/null 2>&1 &
        daemon=$!
        for i in $(seq 200); do [ -S "$v/control.sock" ] && break; sleep 0.05; done
        b send Roof "only in the WAL" || exit 97
        kill -9 $daemon; wait $daemon 2>/dev/null
        [ -s "$v/store/books.sqlite-wal" ] || exit 96
        """

    @Test(.timeLimit(.minutes(2)), arguments: Scenario.allCases)
    func readingWorksAndWritingSaysTheDiskIsFull(_ scenario: Scenario) async throws {
        let scratch = Scratch()
        let results = try await Self.inNamespace("""
            if [ "$1" != closed ]; then
                \(Self.killDaemonAfterASend)
                [ "$1" = killedWithoutIndex ] && { rm "$v/store/books.sqlite-shm" || exit 95; }
            fi
            head -c 4000000 /dev/zero >"$place/filler" 2>/dev/null
            sums >"$out/before"
            run tasks tasks
            run log log Roof
            run inspect inspect
            run files files Roof
            # A chat without a daemon: online all the same (on loopback), writing nothing.
            printf '/quit\n' | b chat Roof >"$out/chat.out" 2>"$out/chat.err"; echo $? >"$out/chat.rc"
            run backup backup "$out/../copy"
            "$bin" log Roof --dir "$out/../copy" --interface lo --discovery-port "$port" >"$out/copyLog.out" 2>"$out/copyLog.err"
            run send send Roof three
            run logAfterSend log Roof
            sums >"$out/after"
            rm "$place/filler"
            run freedSend send Roof "space again"
            run freedLog log Roof
            run freedTasks tasks
            """, scenario: scenario.rawValue, scratch: scratch)
        let store = scratch.dir("small") + "/v/store/books.sqlite"
        func out(_ name: String) -> String { results[name + ".out"] ?? "" }
        func err(_ name: String) -> String { results[name + ".err"] ?? "" }
        func ok(_ name: String) -> Bool { results[name + ".rc"]?.trimmingCharacters(in: .whitespacesAndNewlines) == "0" }
        let texts = ["one", "two"] + (scenario == .closed ? [] : ["only in the WAL"])
        func logShows(_ name: String, _ texts: [String]) -> Bool {
            out(name).split(separator: "\n").map { $0.split(separator: ": ", maxSplits: 1).last.map(String.init) ?? "" } == texts
        }

        // The commands that only read: what the vault holds, and a note that it is read
        // without writing (once per command: `log` opens the vault twice).
        for name in ["tasks", "log", "inspect", "files", "backup"] {
            #expect(ok(name), "\(name): \(out(name)) \(err(name))")
            let note = err(name)
            let noted = note.hasPrefix("bookswarm: note: the disk is full") && note.contains(store)
                && note.split(separator: "\n").count == 1
            #expect(noted || (scenario == .killed && note.isEmpty), "\(name) stderr: \(note)")
        }
        #expect(out("tasks").contains("Roof  \(texts.count) messages"), "\(out("tasks"))")
        #expect(logShows("log", texts), "\(out("log"))")
        #expect(ok("chat") && texts.allSatisfy { out("chat").contains(": " + $0) }, "chat: \(out("chat")) \(err("chat"))")
        #expect(err("chat").hasPrefix("bookswarm: note: the disk is full") && err("chat").contains("online without writing to the vault")
                || (scenario == .killed && err("chat").isEmpty), "chat stderr: \(err("chat"))")
        #expect(out("inspect").contains("journal of task") && out("inspect").contains("verified"), "\(out("inspect"))")
        // A backup to another disk: a vault of its own, with everything the full one holds.
        #expect(logShows("copyLog", texts) && err("copyLog").isEmpty, "\(out("copyLog"))\(err("copyLog"))")

        // A command that writes: one line, naming the store's file; nothing changed.
        #expect(!ok("send") && out("send").isEmpty)
        let line = err("send")
        #expect(line.hasPrefix("bookswarm: the disk is full") && line.contains(store) && line.split(separator: "\n").count == 1, "\(line)")
        #expect(logShows("logAfterSend", texts), "\(out("logAfterSend"))")
        if scenario != .killed { #expect(results["before"] == results["after"], "the vault's files changed") }

        // Space again: as before.
        #expect(ok("freedSend") && err("freedSend").isEmpty, "\(err("freedSend"))")
        #expect(logShows("freedLog", texts + ["space again"]) && err("freedLog").isEmpty, "\(out("freedLog"))\(err("freedLog"))")
        #expect(ok("freedTasks") && err("freedTasks").isEmpty && out("freedTasks").contains("\(texts.count + 1) messages"))
    }

    /// The same on a file system mounted read-only, after a daemon was killed: reading works
    /// (the WAL's message included), writing is one line. With the WAL index (`-shm`) gone
    /// too, none can be created there: the WAL is read without one (PROTOCOL.md §4.1).
    @Test(.timeLimit(.minutes(2)), arguments: [false, true])
    func aReadOnlyFileSystemIsReadToo(withoutIndex: Bool) async throws {
        let scratch = Scratch()
        let results = try await Self.inNamespace("""
            \(Self.killDaemonAfterASend)
            [ "$1" = withoutIndex ] && { rm "$v/store/books.sqlite-shm" || exit 95; }
            mount -o remount,ro "$place" || exit 94
            run tasks tasks
            run log log Roof
            run backup backup "$out/../copy"
            "$bin" log Roof --dir "$out/../copy" --interface lo --discovery-port "$port" >"$out/copyLog.out" 2>"$out/copyLog.err"
            run send send Roof three
            mount -o remount,rw "$place" || exit 93
            run freedLog log Roof
            """, scenario: withoutIndex ? "withoutIndex" : "withIndex", scratch: scratch)
        func out(_ name: String) -> String { results[name + ".out"] ?? "" }
        func err(_ name: String) -> String { results[name + ".err"] ?? "" }
        let store = scratch.dir("small") + "/v/store/books.sqlite"
        for name in ["tasks", "log", "backup"] {
            #expect(results[name + ".rc"] == "0\n", "\(name): \(err(name))")
            #expect(err(name).hasPrefix("bookswarm: note: the file cannot be written: Read-only file system (\(store))"), "\(err(name))")
        }
        #expect(out("tasks").contains("Roof  3 messages"), "\(out("tasks"))")
        #expect(out("log").contains("you: only in the WAL"), "\(out("log"))")
        // A backup to a writable disk: everything the read-only one holds.
        #expect(out("copyLog") == out("log") && err("copyLog").isEmpty, "\(out("copyLog"))\(err("copyLog"))")
        #expect(results["send.rc"] == "1\n" && out("send").isEmpty)
        #expect(err("send").hasPrefix("bookswarm: ") && err("send").contains("Read-only file system")
                && err("send").split(separator: "\n").count == 1, "\(err("send"))")
        #expect(out("freedLog") == out("log") && err("freedLog").isEmpty, "\(out("freedLog"))\(err("freedLog"))")
    }

    /// A daemon whose disk fills while a member sends: the pages it cannot store are asked for
    /// again after a pause (PROTOCOL.md §9.6), which `inspect` shows, and once there is space
    /// again they come, with what was sent since — the same session, no restart. (They
    /// stopped for good before: the channel closed at the first failure and nothing reopened it.)
    @Test(.timeLimit(.minutes(2)))
    func aDaemonWhoseDiskFillsCatchesUpOnceThereIsSpace() async throws {
        let scratch = Scratch()
        let results = try await Self.inNamespace("""
            B() { "$bin" "$@" --dir "$out/../bob" --interface lo --discovery-port "$port"; }
            # `within S F`: until F succeeds, for S seconds at most.
            within() { limit=$(( $(date +%s) + $1 )); until $2; do [ "$(date +%s)" -ge $limit ] && return 1; sleep 0.1; done; }
            up() { [ -S "$v/control.sock" ] && [ -S "$out/../bob/control.sock" ]; }
            joined() { [ "$(b log Roof | grep -c joined)" = 1 ]; }
            failureShown() { b inspect | grep -q "cannot store pages"; }
            caughtUp() { b log Roof | grep -q "space again"; }
            code=$(b tasks | awk '/invite:/ {print $2}')
            # Not through `b`: a function run in the background is a subshell, whose pid `kill` would get.
            "$bin" daemon --dir "$v" --interface lo --discovery-port "$port" >"$out/anaDaemon.log" 2>&1 & ana=$!
            "$bin" daemon --dir "$out/../bob" --interface lo --discovery-port "$port" >"$out/bobDaemon.log" 2>&1 & bob=$!
            within 10 up && B join "$code" >/dev/null && within 10 joined || { kill $ana $bob; exit 90; }
            head -c 4000000 /dev/zero >"$place/filler" 2>/dev/null
            B send Roof "while full" || { kill $ana $bob; exit 89; }
            within 10 failureShown
            run fullLog log Roof
            run fullInspect inspect
            rm "$place/filler"
            B send Roof "space again" || { kill $ana $bob; exit 88; }
            within 30 caughtUp
            run freedLog log Roof
            kill $ana $bob; wait
            """, scenario: "", scratch: scratch, timeout: .seconds(90))
        func out(_ name: String) -> String { results[name + ".out"] ?? "" }
        func texts(_ name: String) -> [String] {
            out(name).split(separator: "\n").filter { !$0.contains(" joined") }
                .map { $0.split(separator: ": ", maxSplits: 1).last.map(String.init) ?? "" }
        }
        #expect(texts("fullLog") == ["one", "two"], "\(out("fullLog"))")
        let failure = out("fullInspect").split(separator: "\n").first { $0.contains("cannot store pages") } ?? ""
        #expect(failure.contains("the disk is full") && failure.contains("asked for again"), "\(out("fullInspect"))")
        #expect(texts("freedLog") == ["one", "two", "while full", "space again"], "\(out("freedLog"))")
    }

    /// A daemon started on a disk that is full already comes online all the same, as one
    /// whose disk filled while it ran: it says so once on stderr and in `inspect`, serves
    /// what it holds (Bob gets the message Ana sent while he was away), shows its log, refuses
    /// a send with one line, and asks again for what Bob sends; once space is freed it
    /// writes again without a restart — the next send works at once, and Bob's message comes.
    /// (It exited at once before: "bookswarm: the disk is full: SQLite error 4874, disk I/O
    /// error (…/books.sqlite); nothing was changed: …", status 1.)
    @Test(.timeLimit(.minutes(2)))
    func aDaemonStartedOnAFullDiskServesAndCatchesUpOnceThereIsSpace() async throws {
        let scratch = Scratch()
        let results = try await Self.inNamespace("""
            B() { "$bin" "$@" --dir "$out/../bob" --interface lo --discovery-port "$port"; }
            within() { limit=$(( $(date +%s) + $1 )); until $2; do [ "$(date +%s)" -ge $limit ] && return 1; sleep 0.1; done; }
            anaUp() { [ -S "$v/control.sock" ]; }
            bobUp() { [ -S "$out/../bob/control.sock" ]; }
            joined() { [ "$(b log Roof | grep -c joined)" = 1 ]; }
            bobGotIt() { B log Roof | grep -q "while Bob was away"; }
            failureShown() { b inspect | grep -q "cannot store pages"; }
            caughtUp() { b log Roof | grep -q "while full"; }
            bobCaughtUp() { B log Roof | grep -q "space again"; }
            startAna() { "$bin" daemon --dir "$v" --interface lo --discovery-port "$port" >"$out/$1.out" 2>"$out/$1.err" & ana=$!; }
            startBob() { "$bin" daemon --dir "$out/../bob" --interface lo --discovery-port "$port" >/dev/null 2>&1 & bob=$!; }
            stop() { kill $1; wait $1; }
            code=$(b tasks | awk '/invite:/ {print $2}')
            startAna anaFirst; startBob
            within 10 anaUp && within 10 bobUp && B join "$code" >/dev/null && within 10 joined || { kill $ana $bob; exit 90; }
            # What Bob lacks: sent while his daemon is stopped, so only Ana's vault holds it.
            stop $bob
            b send Roof "while Bob was away" || { kill $ana; exit 89; }
            stop $ana
            head -c 4000000 /dev/zero >"$place/filler" 2>/dev/null
            startAna anaDaemon
            within 10 anaUp || { cat "$out/anaDaemon.err"; exit 88; }
            startBob
            within 10 bobUp || { kill $ana $bob; exit 87; }
            within 20 bobGotIt
            B log Roof >"$out/bobLog.out"
            B send Roof "while full" || { kill $ana $bob; exit 86; }
            within 10 failureShown
            run fullLog log Roof
            run fullInspect inspect
            run fullSend send Roof "not stored"
            rm "$place/filler"
            run freedSend send Roof "space again"
            within 30 caughtUp
            within 30 bobCaughtUp
            run freedLog log Roof
            run freedInspect inspect
            B log Roof >"$out/bobFreedLog.out"
            kill -0 $ana && echo running >"$out/anaRunning.out"
            kill $ana $bob; wait
            """, scenario: "", scratch: scratch, timeout: .seconds(100))
        let store = scratch.dir("small") + "/v/store/books.sqlite"
        func out(_ name: String) -> String { results[name + ".out"] ?? "" }
        func err(_ name: String) -> String { results[name + ".err"] ?? "" }
        func ok(_ name: String) -> Bool { results[name + ".rc"]?.trimmingCharacters(in: .whitespacesAndNewlines) == "0" }
        func texts(_ name: String) -> [String] {
            out(name).split(separator: "\n").filter { !$0.contains(" joined") }
                .map { $0.split(separator: ": ", maxSplits: 1).last.map(String.init) ?? "" }
        }
        let before = ["one", "two", "while Bob was away"]

        // Online on a full disk: one line on stderr, naming the store's file.
        let note = err("anaDaemon")
        #expect(note.hasPrefix("bookswarm: note: the disk is full") && note.contains(store) && note.contains("online without writing to the vault")
                && note.split(separator: "\n").count == 1, "\(note)")
        #expect(out("anaRunning") == "running\n", "the daemon on the full disk stopped")
        // It serves what it holds: Bob got the message only Ana's vault held.
        #expect(texts("bobLog") == before, "\(out("bobLog"))")
        // Its log, and `inspect`: the disk is full, nothing new is stored or sent; Bob's pages
        // are asked for again after a pause.
        #expect(ok("fullLog") && texts("fullLog") == before, "\(out("fullLog"))\(err("fullLog"))")
        let inspect = out("fullInspect")
        let storage = inspect.split(separator: "\n").first { $0.hasPrefix("cannot write: ") } ?? ""
        #expect(storage.contains("the disk is full") && storage.contains(store) && storage.contains("nothing new can be stored or sent"), "\(inspect)")
        #expect(inspect.contains("cannot store pages") && inspect.contains("asked for again"), "\(inspect)")
        // A send: one line, exit 1, nothing changed.
        let line = err("fullSend")
        #expect(results["fullSend.rc"] == "1\n" && out("fullSend").isEmpty)
        #expect(line.hasPrefix("bookswarm: the disk is full") && line.contains(store) && line.contains("nothing was changed")
                && line.split(separator: "\n").count == 1, "\(line)")

        // Space again, no restart: the send works at once, Bob's message comes, and Bob gets Ana's.
        #expect(ok("freedSend") && err("freedSend").isEmpty, "\(err("freedSend"))")
        let after = before + ["while full", "space again"]
        #expect(Set(texts("freedLog")) == Set(after) && texts("freedLog").count == after.count, "\(out("freedLog"))")
        #expect(texts("bobFreedLog").contains("space again") && !texts("bobFreedLog").contains("not stored"), "\(out("bobFreedLog"))")
        #expect(!out("freedInspect").contains("cannot write:") && out("freedInspect").contains("can be written again"), "\(out("freedInspect"))")
    }
}
