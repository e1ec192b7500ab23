import Foundation
import Testing

/// A store on a file system that is full, with real processes: `books-crash-child` writes a
/// book on a small tmpfs of the test's own (a private mount namespace: `unshare -m`, root),
/// is killed with SIGKILL, the file system is filled, and the child's `read` mode opens the
/// store as a command that only reads (`readingIfUnwritable`). Everything the killed child
/// reported is there, the transactions only in the WAL included, nothing of the store's
/// files changes, and the append it tries is refused as `diskFull`; once space is freed the
/// store opens for writing as before.
@Suite("A store on a full disk", .serialized,
       .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                "needs root and unshare for a full file system of the test's own"))
struct FullDiskTests {
    enum Scenario: String, CaseIterable, CustomTestStringConvertible {
        /// The store closed (the WAL copied back) before the disk filled: the read-write
        /// open fails to create the WAL's index.
        case closed
        /// Killed: its WAL holds every transaction, beside the index. The read-write open
        /// may succeed here (SQLite rebuilds the index in the space it frees first); either
        /// way everything shows.
        case killed
        /// Killed, and the index removed: the read-write open fails, and the read-only one
        /// reads the transactions from the WAL alone.
        case killedWithoutIndex

        var testDescription: String { rawValue }
    }

    static let script = """
        set -u
        place=$0 child=$1 secret=$2 scenario=$3 out=$4
        mount -t tmpfs -o size=16m tmpfs "$place" || exit 99
        "$child" "$place/s" "$secret" single >"$out/written" 2>/dev/null &
        pid=$!
        for i in $(seq 1000); do [ "$(wc -l <"$out/written")" -ge 20 ] && break; sleep 0.01; done
        kill -9 $pid; wait $pid 2>/dev/null
        case $scenario in
            closed) "$child" "$place/s" "$secret" read >/dev/null || exit 98 ;;
            killedWithoutIndex) rm "$place/s/books.sqlite-shm" || exit 97 ;;
        esac
        head -c 20000000 /dev/zero >"$place/filler" 2>/dev/null
        cd "$place/s" || exit 96
        sums() { for f in books.sqlite books.sqlite-wal; do [ -s $f ] && cksum $f; done; }
        sums >"$out/before"
        "$child" "$place/s" "$secret" read >"$out/full" 2>"$out/full.err"
        sums >"$out/after"
        rm "$place/filler"
        "$child" "$place/s" "$secret" read >"$out/freed" 2>"$out/freed.err"
        exit 0
        """

    @Test(.timeLimit(.minutes(1)), arguments: Scenario.allCases)
    func readsWhatTheStoreHoldsAndRefusesToWrite(_ scenario: Scenario) throws {
        let scratch = TemporaryDirectory("full-disk")
        defer { scratch.remove() }
        let place = scratch.path + "/small"
        try FileManager.default.createDirectory(atPath: place, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["-m", "--propagation", "private", "/bin/sh", "-c", Self.script, place,
                             try CrashTests.childExecutable(), CrashTests.secretHex, scenario.rawValue, scratch.path]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "the script failed with \(process.terminationStatus)")
        func lines(_ name: String) throws -> [String] {
            try String(contentsOfFile: scratch.path + "/" + name, encoding: .utf8).split(separator: "\n").map(String.init)
        }
        let reported = try lines("written").count
        try #require(reported >= 20, "the child reported \(reported) appends")

        let full = try lines("full")
        #expect(try lines("full.err").isEmpty)
        try #require(full.count == 3, "\(full)")
        let readOnly = full[0].hasPrefix("read-only diskFull the disk is full")
        #expect(readOnly || (scenario == .killed && full[0] == "read-write"), "\(full[0])")
        let length = try #require(full[1].split(separator: " ").dropFirst().first.flatMap { Int($0) }, "\(full[1])")
        #expect(full[1].hasPrefix("crash-test-book ") && full[1].hasSuffix(" pages ok") && length >= reported, "\(full[1]), \(reported) reported")
        #expect(full[2] == "append refused diskFull")
        if readOnly { #expect(try lines("before") == lines("after"), "the store's files changed") }

        #expect(try lines("freed") == ["read-write", "crash-test-book \(length) pages ok", "append ok"])
        #expect(try lines("freed.err").isEmpty)
    }
}
