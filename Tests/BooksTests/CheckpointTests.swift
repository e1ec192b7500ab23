@testable import Books
import Foundation
import Testing

@Suite("Checkpoints off the writer's path")
struct CheckpointTests {
    private func walBytes(_ dir: TemporaryDirectory) -> Int {
        let attributes = try? FileManager.default.attributesOfItem(atPath: dir.databaseFile + "-wal")
        return (attributes?[.size] as? NSNumber)?.intValue ?? 0
    }

    @Test func theCheckpointerCopiesTheWALBackAndTheStoreReopensWhole() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try BookStore.open(directory: dir.path, masterSecret: masterSecret(), checkpointThreshold: 100,
                                       checkpointHardLimit: 400)
        let book = try store.createOrOpen(name: "a")
        for batch in 0..<40 {
            try book.append(contentsOf: (0..<100).map { testPage(UInt64(batch * 100 + $0), size: 1024) })
        }
        let stats = store.checkpointStats
        #expect(stats.passes > 0)
        #expect(stats.pagesCopied > 0)
        #expect(stats.failures == 0)
        store.close()
        #expect(!FileManager.default.fileExists(atPath: dir.databaseFile + "-wal"), "the last connection to close removes the WAL")
        let reopened = try openStore(dir)
        let again = try #require(try reopened.book(named: "a"))
        #expect(again.length == 4000)
        try again.verify()
        #expect(try again.get(3999) == testPage(3999, size: 1024))
        reopened.close()
    }

    @Test func aWriterThatOutrunsTheCheckpointerWaitsAtTheHardLimitSoTheWALStaysBounded() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.databaseFile
        let db = try SQLiteDatabase(path: path)
        #expect(try db.pragmaText("journal_mode = WAL") == "wal")
        // Commits that sync nothing (`transaction(durable: false)` is NORMAL: in WAL mode a
        // commit is not synced), against passes that fsync twice: the writer is far faster
        // than the checkpointer, as a reader storing answers can be.
        try db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        let threshold = 50, hardLimit = 200
        let checkpointer = try Checkpointer(path: path, threshold: threshold, hardLimit: hardLimit)
        try db.execute("PRAGMA wal_autocheckpoint = 0")
        db.setWALHook(checkpointer)
        let blob = [UInt8](repeating: 7, count: 16 * 1024)
        for _ in 0..<300 {
            // About 45 WAL pages per commit.
            try db.transaction(durable: false) {
                for _ in 0..<10 {
                    let insert = try db.statement("INSERT INTO t (data) VALUES (?)")
                    insert.bind(1, blob)
                    try insert.run()
                }
            }
        }
        db.setWALHook(nil)
        let stats = checkpointer.stats
        let failure = checkpointer.failure
        checkpointer.stop()
        print("checkpoints: \(stats), last failure: \(failure ?? "none")")
        // A pass may find the writer holding a lock it needs and give up at once (PASSIVE
        // never waits): under a loaded machine seen once in 95 passes. That is transient,
        // the next commit asks again; any other failure is not.
        #expect(stats.failures == 0 || (failure?.contains("busy") == true && stats.failures * 10 <= stats.passes),
                "\(stats.failures) of \(stats.passes) passes failed, the last with: \(failure ?? "none")")
        #expect(stats.passes > 0)
        // Past the hard limit a commit waits for a pass that began after it; the next
        // commit then restarts the WAL, so it never holds much more than the limit plus
        // one commit (pages of 4096 bytes, 24-byte frame headers, a 32-byte file header).
        let bound = hardLimit + 60
        #expect(stats.largestWAL < bound, "the WAL reached \(stats.largestWAL) pages")
        #expect(walBytes(dir) <= 32 + bound * (4096 + 24), "WAL file of \(walBytes(dir)) bytes")
        #expect(try db.pragmaInteger("page_count") > 0)
        let count = try db.statement("SELECT count(*) FROM t")
        #expect(try count.step())
        #expect(count.int64(0) == 3000)
        db.close()
    }

    @Test func theWALFileIsCutBackToTheThresholdAfterACheckpointEmptiedIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        // The sizes a store really uses: threshold 16 MiB, hard limit 64 MiB.
        let store = try openStore(dir)
        defer { store.close() }
        let book = try store.createOrOpen(name: "a")
        let limit = BookStore.checkpointThresholdBytes
        // 20 MiB of pages in one batch, one transaction: the WAL passes the threshold, and the
        // checkpointer's pass, asked for by that commit, copies all of it.
        let count: UInt64 = 20 * 1024
        try book.append(contentsOf: (0..<count).map { testPage($0, size: 1024) })
        let deadline = Date().addingTimeInterval(20)
        while store.checkpointStats.passes == 0, Date() < deadline { usleep(10_000) }
        let stats = store.checkpointStats
        #expect(stats.passes > 0, "no checkpoint within 20 s")
        // PASSIVE gives up at once on a lock it needs (transient, see above): pass again.
        if stats.failures > 0 { try store.checkpoint() }
        // The checkpoint itself leaves the file as it was; SQLite would write over it again.
        let afterCheckpoint = walBytes(dir)
        #expect(afterCheckpoint > limit, "WAL file of \(afterCheckpoint) bytes after the batch")
        // The next commit restarts the WAL, and journal_size_limit truncates the file.
        try book.append(testPage(count, size: 1024))
        let afterNextCommit = walBytes(dir)
        #expect(afterNextCommit <= limit, "WAL file of \(afterNextCommit) bytes, limit \(limit)")
        #expect(book.length == count + 1)
        #expect(try book.get(count) == testPage(count, size: 1024))
        try book.verify()
    }

    @Test func checkpointsThatKeepFailingRefuseWritesUntilAPassSucceeds() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let threshold = 10, hardLimit = 40
        let store = try BookStore.open(directory: dir.path, masterSecret: masterSecret(), checkpointThreshold: threshold,
                                       checkpointHardLimit: hardLimit)
        defer { store.close() }
        let book = try store.createOrOpen(name: "a")
        store.injectCheckpointFailure("disk full (injected)")
        var refusal: BooksError?
        var appended: UInt64 = 0
        while appended < 500 {
            do {
                try book.append(testPage(appended, size: 1024))
                appended += 1
            } catch let error as BooksError {
                refusal = error
                break
            }
        }
        let error = try #require(refusal, "500 appends with every checkpoint failing were all accepted")
        #expect(error.code == .storage)
        #expect(error.description.contains("disk full (injected)"), "\(error)")
        #expect(error.file == dir.databaseFile)
        // Refused at the hard limit, after a few failed passes: the WAL stayed bounded.
        let stats = store.checkpointStats
        #expect(stats.failures >= Checkpointer.failuresBeforeRefusing)
        #expect(stats.largestWAL < hardLimit + 20, "the WAL reached \(stats.largestWAL) pages")
        #expect(book.length == appended, "the refused append stored nothing")
        // Once passes succeed again, so do writes, and nothing was lost.
        store.injectCheckpointFailure(nil)
        try book.append(testPage(appended, size: 1024))
        #expect(book.length == appended + 1)
        try book.verify()
        #expect(store.checkpointStats.pagesCopied > 0)
    }

    @Test func aSecondStoreInAnotherProcessIsRefusedByTheLockFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        defer { store.close() }
        // flock(1) is util-linux, essential on Debian: a child process trying the same lock
        // fails at once.
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        probe.arguments = ["--nonblock", "--exclusive", dir.path + "/" + BookStore.lockFileName, "true"]
        try probe.run()
        probe.waitUntilExit()
        #expect(probe.terminationStatus != 0, "another process could take the store's lock")
    }
}
