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
