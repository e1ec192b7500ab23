import Books
import Foundation
import Sodium
import Testing

@Suite("BookStore backup") struct BookStoreBackupTests {
    /// A backup taken while another thread appends batches is one snapshot: every book in it
    /// verifies, each book's length is a batch boundary, and the copy opens as a store of
    /// the same master secret with the same books, keys and pages.
    @Test func aBackupDuringAppendsIsOneVerifiedSnapshot() throws {
        let dir = TemporaryDirectory()
        let target = TemporaryDirectory("backup")
        defer { dir.remove(); target.remove() }
        let store = try openStore(dir)
        let books = try (0..<3).map { try store.createOrOpen(name: "ana-bob-t\($0)") }
        for book in books { try book.append(contentsOf: (0..<200).map { testPage($0, size: 1000) }) }
        let stop = Atomic(false)
        let writer = Thread {
            var next: UInt64 = 200
            while !stop.value {
                for book in books { _ = try? book.append(contentsOf: (next..<next + 10).map { testPage($0, size: 1000) }) }
                next += 10
            }
        }
        writer.start()
        Thread.sleep(forTimeInterval: 0.05)
        let copyFile = target.path + "/books.sqlite"
        let (size, copiedBooks) = try store.backup(to: copyFile)
        stop.value = true
        while !writer.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        #expect(size > 600_000 && copiedBooks == 3)
        // One file: the copy's WAL was checkpointed away.
        let walSize = (try? FileManager.default.attributesOfItem(atPath: copyFile + "-wal"))?[.size] as? Int
        #expect((walSize ?? 0) == 0)

        // BookStore.open takes a directory: the copy is its `books.sqlite`.
        let copy = try BookStore.open(directory: target.path, masterSecret: masterSecret(1))
        defer { copy.close() }
        let names = try store.list().map(\.name)
        #expect(try copy.list().map(\.name) == names)
        for (i, original) in books.enumerated() {
            let copied = try #require(try copy.book(named: "ana-bob-t\(i)"))
            #expect(copied.id == original.id && copied.isWritable)
            #expect(copied.length >= 200 && copied.length <= original.length && copied.length % 10 == 0)
            try copied.verify()
            for index in [0, copied.length / 2, copied.length - 1] { #expect(try copied.get(index) == original.get(index)) }
            // The copy's keys are the originals': it can go on writing.
            try copied.append(testPage(copied.length, size: 10))
            #expect(copied.signedRoot?.isValid == true)
        }
        store.close()
    }

    /// The copy goes in steps of 4 MiB, between which the backup can stop; every step reads
    /// the snapshot of the first — pages appended between steps (through the store's own
    /// connection, another than the backup's) are not in it, and SQLite does not start the
    /// copy again for them.
    @Test func aBackupInStepsIsTheSnapshotOfItsFirstStep() throws {
        let dir = TemporaryDirectory()
        let target = TemporaryDirectory("backup")
        defer { dir.remove(); target.remove() }
        let store = try openStore(dir)
        defer { store.close() }
        let book = try store.createOrOpen(name: "ana-bob-t")
        for start in stride(from: UInt64(0), to: 6000, by: 1000) {
            try book.append(contentsOf: (start..<start + 1000).map { testPage($0, size: 1000) })
        }
        var asked = 0
        let copyFile = target.path + "/books.sqlite"
        try store.backup(to: copyFile, stopped: {
            asked += 1
            _ = try? book.append(contentsOf: (0..<50).map { testPage(UInt64(100_000 + asked * 50 + $0), size: 1000) })
            return false
        })
        #expect(asked >= 1, "more than one step")
        #expect(book.length == 6000 + UInt64(asked) * 50)
        let copy = try BookStore.open(directory: target.path, masterSecret: masterSecret(1))
        defer { copy.close() }
        let copied = try #require(try copy.book(named: "ana-bob-t"))
        #expect(copied.length == 6000)
        try copied.verify()
    }

    /// Asked to stop between steps, the backup removes its copy and says so.
    @Test func aBackupStoppedPartWayLeavesNothing() throws {
        let dir = TemporaryDirectory()
        let target = TemporaryDirectory("backup")
        defer { dir.remove(); target.remove() }
        let store = try openStore(dir)
        defer { store.close() }
        try store.createOrOpen(name: "ana-bob-t").append(contentsOf: (0..<6000).map { testPage($0, size: 1000) })
        let copyFile = target.path + "/books.sqlite"
        #expect(throws: BooksError(.stopped, "")) { try store.backup(to: copyFile, stopped: { true }) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path).isEmpty)
        // The store goes on as before, and a backup not stopped completes.
        try store.createOrOpen(name: "ana-bob-t").append(testPage(6000))
        #expect(try store.backup(to: copyFile).books == 1)
    }

    /// A store opened for reading only (a full disk) is backed up through a connection that
    /// writes nothing either: the copy goes elsewhere.
    @Test func aStoreOpenedForReadingIsBackedUp() throws {
        let dir = TemporaryDirectory()
        let target = TemporaryDirectory("backup")
        defer { dir.remove(); target.remove() }
        var store = try openStore(dir)
        try store.createOrOpen(name: "ana-bob-t").append(contentsOf: (0..<300).map { testPage($0, size: 1000) })
        store.close()
        store = try BookStore.openForReading(directory: dir.path, masterSecret: masterSecret(1))
        defer { store.close() }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        let copyFile = target.path + "/books.sqlite"
        #expect(try store.backup(to: copyFile).books == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == files)
        let copy = try BookStore.open(directory: target.path, masterSecret: masterSecret(1))
        defer { copy.close() }
        let copied = try #require(try copy.book(named: "ana-bob-t"))
        #expect(copied.length == 300)
        try copied.verify()
    }

    @Test func aBackupOverAnExistingFileIsRefusedAndTouchesNothing() throws {
        let dir = TemporaryDirectory()
        let target = TemporaryDirectory("backup")
        defer { dir.remove(); target.remove() }
        let store = try openStore(dir)
        try store.createOrOpen(name: "ana-bob-t").append(testPage(0))
        let existing = target.path + "/books.sqlite"
        try Data("mine".utf8).write(to: URL(fileURLWithPath: existing))
        #expect(throws: BooksError(.storage, "")) { try store.backup(to: existing) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: existing)) == Data("mine".utf8))
        store.close()
        #expect(throws: BooksError(.closed, "")) { try store.backup(to: target.path + "/other.sqlite") }
        #expect(!FileManager.default.fileExists(atPath: target.path + "/other.sqlite"))
    }
}

/// A flag two threads share.
private final class Atomic<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
