import Books
import Foundation
import Sodium
import Testing

@Suite("BookStore") struct BookStoreTests {
    /// Everything observable about a store, to compare before and after reopening.
    struct Snapshot: Equatable {
        var entries: [BookStore.Entry]
        var roots: [SignedRoot?]
        var held: [PageRanges]
        var pages: [[[UInt8]?]]
    }

    func snapshot(_ store: BookStore) throws -> Snapshot {
        let entries = try store.list()
        let books = try entries.map { try store.open(id: $0.id) }
        return Snapshot(
            entries: entries,
            roots: books.map(\.signedRoot),
            held: books.map { $0.heldRanges() },
            pages: try books.map { book in try (0..<(book.length + 2)).map { try book.get($0) } })
    }

    @Test func closeAndReopenGivesIdenticalState() throws {
        let dir = TemporaryDirectory()
        let authorDir = TemporaryDirectory("author")
        defer { dir.remove(); authorDir.remove() }
        let author = try openStore(authorDir, secret: 7)
        let remote = try author.createOrOpen(name: "carl-ana-t")
        try remote.append(contentsOf: (0..<20).map { testPage($0) })

        let store = try openStore(dir)
        let mine = try store.createOrOpen(name: "ana-bob-t")
        try mine.append(contentsOf: (0..<9).map { testPage($0, size: 300) })
        try mine.append(testPage(9))
        _ = try store.createOrOpen(name: "ana-carl-t")  // empty
        let theirs = try store.open(id: remote.id, title: "carl-ana-t")
        try theirs.apply(signedRoot: #require(remote.signedRoot), proof: remote.proof(for: 4..<7), pages: remote.pages(in: 4..<7))
        let before = try snapshot(store)
        store.close()
        #expect(throws: BooksError(.closed, "")) { try mine.get(0) }

        let reopened = try openStore(dir)
        let after = try snapshot(reopened)
        #expect(after == before)
        #expect(after.entries.map(\.name) == ["ana-bob-t", "ana-carl-t", "carl-ana-t"])
        #expect(after.entries.map(\.isWritable) == [true, true, false])
        // The keys were re-derived: the author can keep appending, with valid signatures.
        let again = try reopened.createOrOpen(name: "ana-bob-t")
        #expect(again.id == mine.id)
        try again.append(testPage(10))
        #expect(again.signedRoot?.isValid == true)
        try again.verify()
        try #require(try reopened.book(named: "carl-ana-t")).verify()
        reopened.close()
        author.close()
    }

    /// SQLite would store the name cut at the NUL, whose derived key is not the book's: the
    /// store would refuse to open after a restart (wrong master secret).
    @Test("a book name with a NUL is refused, and the store opens again")
    func aNameWithANulIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        #expect(throws: BooksError(.invalidName, "")) { try store.createOrOpen(name: "compiled:a\u{0}b") }
        let otherDir = TemporaryDirectory("other")
        defer { otherDir.remove() }
        let other = try openStore(otherDir, secret: 9)
        let foreign = try other.createOrOpen(name: "x")
        #expect(throws: BooksError(.invalidName, "")) { try store.open(id: foreign.id, title: "a\u{0}b") }
        other.close()
        store.close()
        let reopened = try openStore(dir)
        #expect(try reopened.list().isEmpty)
        reopened.close()
    }

    @Test("book(id:) finds a book without taking a new one in: a deleted book stays deleted")
    func lookingABookUpNeverCreatesIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "ana-bob-t")
        try book.append(testPage(0))
        #expect(try store.book(id: book.id)?.length == 1)
        try store.delete([book.id])
        #expect(try store.book(id: book.id) == nil)
        #expect(try store.list().isEmpty)
        store.close()
    }

    @Test func derivedKeysAreStableAcrossReopenAndDifferBetweenNamesAndSecrets() throws {
        let one = TemporaryDirectory("one")
        let two = TemporaryDirectory("two")
        defer { one.remove(); two.remove() }
        var store = try openStore(one, secret: 1)
        let first = try store.createOrOpen(name: "bob-ana-task").id
        let second = try store.createOrOpen(name: "bob-carl-task").id
        #expect(first != second)
        #expect(try store.createOrOpen(name: "bob-ana-task").id == first)
        store.close()
        store = try openStore(one, secret: 1)
        #expect(try store.createOrOpen(name: "bob-ana-task").id == first)
        #expect(try store.id(named: "bob-carl-task") == second)
        store.close()
        // Another master secret, same name: another key.
        let other = try openStore(two, secret: 2)
        #expect(try other.createOrOpen(name: "bob-ana-task").id != first)
        other.close()
        // A store opened with the wrong master secret is refused, naming the file.
        let error = #expect(throws: BooksError.self) { try openStore(one, secret: 2) }
        #expect(error?.code == .wrongMasterSecret)
        #expect(error?.file == one.databaseFile)
    }

    @Test func titlesKeysAndReadersRecords() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let remoteID = BookID(Ed25519.KeyPair.generate().publicKey)
        #expect(try store.book(named: "x") == nil)
        let remote = try store.open(id: remoteID)
        #expect(remote.name == nil && !remote.isWritable && remote.length == 0)
        _ = try store.open(id: remoteID, title: "dan-ana-t")
        #expect(try store.id(named: "dan-ana-t") == remoteID)
        #expect(remote.name == "dan-ana-t")
        // A title is unique.
        #expect(throws: BooksError(.invalidName, "")) { try store.createOrOpen(name: "dan-ana-t") }
        // Opening one's own book by id gives the writable book.
        let mine = try store.createOrOpen(name: "ana-dan-t")
        #expect(try store.open(id: mine.id).isWritable)
        #expect(try store.list().count == 2)
        #expect(try BookID(hex: mine.id.hex) == mine.id)
        store.close()
    }

    @Test func aReadCopyOfOurOwnBookBecomesWritableAndKeepsItsSparsePages() throws {
        let deviceA = TemporaryDirectory("device-a")
        let deviceB = TemporaryDirectory("device-b")
        defer { deviceA.remove(); deviceB.remove() }
        // Two stores with the same master secret: the same named book, the same key.
        let a = try openStore(deviceA, secret: 1)
        let original = try a.createOrOpen(name: "ana-bob-t")
        try original.append(contentsOf: (0..<8).map { testPage($0) })
        var b = try openStore(deviceB, secret: 1)
        let copy = try b.open(id: original.id)
        try copy.apply(signedRoot: #require(original.signedRoot), proof: original.proof(for: 5..<7), pages: original.pages(in: 5..<7))
        let writable = try b.createOrOpen(name: "ana-bob-t")
        #expect(writable.id == original.id && writable.isWritable)
        #expect(try writable.append(testPage(8)) == 8)
        b.close()
        b = try openStore(deviceB, secret: 1)
        let reopened = try #require(try b.book(named: "ana-bob-t"))
        #expect(reopened.heldRanges().ranges == [5..<7, 8..<9])
        #expect(reopened.length == 9)
        try reopened.verify()
        b.close()
        a.close()
    }

    @Test func aSecondStoreOnTheSameDirectoryIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        try store.createOrOpen(name: "a").append(testPage(0))
        let error = #expect(throws: BooksError.self) { try openStore(dir) }
        #expect(error?.code == .storeLocked)
        #expect(error?.file == dir.databaseFile)
        store.close()
        let reopened = try openStore(dir)
        #expect(try reopened.book(named: "a")?.length == 1)
        reopened.close()
    }

    /// A lock held a moment longer than its store (as by a process being spawned, which holds
    /// a copy of every descriptor until it execs) is waited for, briefly, not reported as a
    /// second store.
    @Test func aLockReleasedWithinMomentsIsWaitedFor() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try openStore(dir).close()
        let fd = open(dir.path + "/" + BookStore.lockFileName, O_RDWR | O_CLOEXEC)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        let release = Thread { usleep(30_000); close(fd) }
        release.start()
        let store = try openStore(dir)
        store.close()
    }

    @Test("delete: the books go, with their pages, names and keys; the others stay; handles fail; a name can be used again")
    func deletingBooks() async throws {
        let dir = TemporaryDirectory("delete")
        defer { dir.remove() }
        let secret = SecretBytes(copying: [UInt8](repeating: 9, count: 32))
        var store = try BookStore.open(directory: dir.path, masterSecret: secret)
        let (a, b, kept) = try (store.createOrOpen(name: "a"), store.createOrOpen(name: "b"), store.createOrOpen(name: "kept"))
        for book in [a, b, kept] { try book.append(contentsOf: (0..<50).map { Array("page \($0) of \(book.id.hex.prefix(4))".utf8) }) }
        let updates = a.lengthUpdates
        let watcher = Task { for await _ in updates {}; return true }
        try store.delete([a.id, b.id, BookID(Ed25519.KeyPair.generate().publicKey)])
        #expect(await watcher.value, "a deleted book's length stream finishes")
        #expect(try store.list().map(\.name) == ["kept"])
        #expect(throws: BooksError(.unknownBook, "")) { try a.get(0) }
        #expect(throws: BooksError(.unknownBook, "")) { try b.append([1]) }
        // What a handle knows without the store (a replication channel still running when
        // its member left the task): an empty book nobody writes — not a trap.
        #expect(!a.isWritable && a.length == 0 && a.heldRanges().count == 0 && a.signedRoot == nil && a.forkProof == nil)
        #expect(try kept.get(49) == Array("page 49 of \(kept.id.hex.prefix(4))".utf8))
        store.close()
        #expect(try RawSQLite.integer(dir.path + "/books.sqlite", "SELECT count(*) FROM page") == 50)
        store = try BookStore.open(directory: dir.path, masterSecret: secret)
        #expect(try store.book(named: "a") == nil)
        // The same name again: the same derived key, a new empty book.
        let again = try store.createOrOpen(name: "a")
        #expect(again.id == a.id && again.length == 0 && again.isWritable)
        try again.append([7])
        try again.verify()
        try store.open(id: kept.id).verify()
        store.close()
    }
}
