@testable import Books
import CSQLite
import Foundation
import Sodium
import Testing

/// A store opened for reading only (`BookStore.openForReading`, and `open`'s
/// `readingIfUnwritable` fallback): it shows everything a store that writes would, the
/// transactions still in the WAL included, writes nothing to its files, and refuses every
/// write with its refusal (PROTOCOL.md §4.1).
@Suite("BookStore opened for reading only") struct BookStoreReadingTests {
    /// How the store's files lie when it is opened for reading.
    enum Layout: String, CaseIterable, CustomTestStringConvertible {
        /// As a holder killed with SIGKILL leaves them: the WAL holds every transaction
        /// (the database file has not even the tables), beside its index.
        case walAndIndex
        /// The same without `-shm` (a copy of the vault that left it out).
        case walWithoutIndex
        /// A closed store: the WAL copied back and removed.
        case checkpointed

        var testDescription: String { rawValue }
    }

    static let authorPages = (0..<30).map { testPage($0, size: 300) }
    /// A page stored once per store (§4.9).
    static let largePage = testPage(99, size: Book.sharedPageThreshold + 10)

    /// Every file of `directory` and its bytes.
    static func files(_ directory: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            files[name] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
        }
        return files
    }

    /// A store with an author's book, a book with a large page and a reader's record, its
    /// files copied to `copy` as `layout` says; returns what it lists.
    static func storeCopied(to copy: TemporaryDirectory, _ layout: Layout) throws -> [BookStore.Entry] {
        let source = TemporaryDirectory("reading-source")
        defer { source.remove() }
        let store = try openStore(source)
        try store.createOrOpen(name: "author").append(contentsOf: authorPages)
        try store.createOrOpen(name: "large").append(largePage)
        _ = try store.open(id: BookID(Ed25519.KeyPair.generate().publicKey), title: "read")
        let listed = try store.list()
        if layout == .checkpointed { store.close() }
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path)
        where !(layout == .walWithoutIndex && name.hasSuffix("-shm")) {
            try FileManager.default.copyItem(atPath: source.path + "/" + name, toPath: copy.path + "/" + name)
        }
        store.close()
        return listed
    }

    @Test(arguments: Layout.allCases)
    func showsEverythingAndWritesNothing(_ layout: Layout) throws {
        let copy = TemporaryDirectory("reading")
        defer { copy.remove() }
        let listed = try Self.storeCopied(to: copy, layout)
        let before = try Self.files(copy.path)
        #expect((before[BookStore.fileName + "-wal"] != nil) == (layout != .checkpointed))

        let store = try BookStore.openForReading(directory: copy.path, masterSecret: masterSecret())
        let refusal = try #require(store.writeRefusal)
        #expect(refusal.code == .storageReadOnly && refusal.file == copy.databaseFile)
        #expect(try store.list() == listed)
        let author = try #require(try store.book(named: "author"))
        #expect(try author.pages(in: 0..<30) == Self.authorPages)
        try author.verify()
        let large = try #require(try store.book(named: "large"))
        #expect(try large.get(0) == Self.largePage)
        try large.verify()

        // Every kind of write fails with the refusal, before anything is written.
        let writes: [(String, () throws -> Void)] = [
            ("append", { try author.append(testPage(30)) }),
            ("a new book", { _ = try store.createOrOpen(name: "new") }),
            ("a new reader's record", { _ = try store.open(id: BookID(Ed25519.KeyPair.generate().publicKey)) }),
            ("a title", { _ = try store.open(id: try #require(try store.id(named: "read")), title: "renamed") }),
            ("giving up", { try author.becomeReader() }),
            ("deleting", { try store.delete([large.id]) }),
        ]
        for (what, write) in writes {
            #expect(throws: refusal, "\(what)") { try write() }
        }
        #expect(try store.list() == listed)
        store.close()

        var after = try Self.files(copy.path)
        // Reading a WAL needs an `-shm` file, which may be empty: the one thing created.
        if layout == .walWithoutIndex { #expect(after.removeValue(forKey: BookStore.fileName + "-shm") == []) }
        #expect(after == before, "the store's files changed")

        // The store was left as it was: it opens for writing and goes on.
        let reopened = try openStore(copy)
        defer { reopened.close() }
        #expect(try reopened.list() == listed)
        try #require(try reopened.book(named: "author")).append(testPage(30))
    }

    @Test func writesFailWithTheRefusalGiven() throws {
        let copy = TemporaryDirectory("reading")
        defer { copy.remove() }
        _ = try Self.storeCopied(to: copy, .walAndIndex)
        let full = BooksError(.diskFull, "the disk is full (a test)", file: copy.databaseFile)
        let store = try BookStore.openForReading(directory: copy.path, masterSecret: masterSecret(), refusal: full)
        defer { store.close() }
        do {
            try #require(try store.book(named: "author")).append(testPage(30))
            Issue.record("an append on a store opened for reading was accepted")
        } catch let error as BooksError {
            #expect(error.code == .diskFull && error.detail == full.detail && error.file == copy.databaseFile, "\(error)")
        }
    }

    /// `resumeWriting`: the store opened for reading (a daemon on a full disk) writes again in
    /// place once it can — the same books, the handles taken before, the length subscribers
    /// — and what it writes is there when it is next opened. (On a disk still full it reads
    /// on: CLIFullDiskTests.aDaemonStartedOnAFullDiskServesAndCatchesUpOnceThereIsSpace.)
    @Test(arguments: Layout.allCases)
    func writingResumesInPlace(_ layout: Layout) async throws {
        let copy = TemporaryDirectory("reading")
        defer { copy.remove() }
        let listed = try Self.storeCopied(to: copy, layout)
        let full = BooksError(.diskFull, "the disk is full (a test)", file: copy.databaseFile)
        let store = try BookStore.openForReading(directory: copy.path, masterSecret: masterSecret(), refusal: full)
        let author = try #require(try store.book(named: "author"))
        var updates = author.lengthUpdates.makeAsyncIterator()
        #expect(throws: BooksError(.diskFull, "")) { try author.append(testPage(30)) }
        #expect(try store.resumeWriting() && store.writeRefusal == nil)
        #expect(try store.resumeWriting(), "a second call is harmless")
        #expect(try store.list() == listed)
        try author.append(testPage(30))
        #expect(await updates.next()?.length == 31)
        #expect(try store.book(named: "author")?.get(30) == testPage(30))
        store.close()
        let reopened = try openStore(copy)
        defer { reopened.close() }
        #expect(try reopened.book(named: "author")?.length == 31)
    }

    /// A backup of a store read only (a full disk: the copy goes to another disk) reads it
    /// through a connection that takes no lock: the store is not opened for writing while it
    /// runs (a writer's checkpoint would change the file under it), and is once it is done.
    @Test func writingWaitsForABackupThatReads() throws {
        let copy = TemporaryDirectory("reading")
        defer { copy.remove() }
        // Larger than one step of the backup (256 pages of 16 KiB), so that it asks between steps.
        let writer = try openStore(copy)
        let pages = (0..<400).map { [UInt8](repeating: UInt8($0 % 251), count: 16_000) }
        _ = try writer.createOrOpen(name: "large").append(contentsOf: pages)
        writer.close()
        let full = BooksError(.diskFull, "the disk is full (a test)", file: copy.databaseFile)
        let store = try BookStore.openForReading(directory: copy.path, masterSecret: masterSecret(), refusal: full)
        defer { store.close() }
        var during: [Bool] = []
        try store.backup(to: copy.path + "/backup.sqlite") {
            during.append((try? store.resumeWriting()) ?? true)
            return false
        }
        #expect(!during.isEmpty && during.allSatisfy { !$0 } && store.writeRefusal != nil, "\(during)")
        #expect(try store.resumeWriting() && store.writeRefusal == nil)
    }

    /// What `open` would check is checked: a wrong master secret is refused as always.
    @Test func theMasterSecretIsChecked() throws {
        let copy = TemporaryDirectory("reading")
        defer { copy.remove() }
        _ = try Self.storeCopied(to: copy, .walAndIndex)
        #expect(throws: BooksError(.wrongMasterSecret, "")) { try BookStore.openForReading(directory: copy.path, masterSecret: masterSecret(2)) }
    }

    /// A store of an older schema, which `open` migrates, is read as it is, without that
    /// write: every book, page and signed root the fixture holds, the file left as it was.
    @Test func anOlderSchemaIsReadUnwritten() throws {
        let dir = TemporaryDirectory("reading")
        defer { dir.remove() }
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/store-v1")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) {
            try FileManager.default.copyItem(atPath: fixture.path + "/" + name, toPath: dir.path + "/" + name)
        }
        let before = try Self.files(dir.path)
        let store = try BookStore.openForReading(directory: dir.path, masterSecret: masterSecret(FixtureTests.secret))
        #expect(try store.list().map(\.name) == [FixtureTests.authorName, FixtureTests.emptyName, FixtureTests.readName])
        let author = try #require(try store.book(named: FixtureTests.authorName))
        #expect(try author.pages(in: 0..<10) == FixtureTests.authorPages)
        try author.verify()
        let read = try #require(try store.book(named: FixtureTests.readName))
        #expect(read.length == 9 && read.heldRanges().ranges == FixtureTests.readHeld)
        for range in FixtureTests.readHeld {
            #expect(try read.pages(in: range) == Array(FixtureTests.readPages[Int(range.lowerBound)..<Int(range.upperBound)]))
        }
        try read.verify()
        #expect(throws: BooksError(.storageReadOnly, "")) { try author.append(testPage(10)) }
        store.close()
        #expect(try Self.files(dir.path).filter { $0.key != BookStore.lockFileName } == before)
    }

    /// A store of schema version 1 read as it is, then written again (`resumeWriting`): the
    /// migration the opening for reading left out runs then, and the books read before go on.
    /// An empty file (a new store whose creation a full disk stopped) becomes a store.
    @Test func writingResumesOnAnOlderSchemaAndAnEmptyFile() throws {
        let dir = TemporaryDirectory("reading")
        defer { dir.remove() }
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/store-v1")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) {
            try FileManager.default.copyItem(atPath: fixture.path + "/" + name, toPath: dir.path + "/" + name)
        }
        let store = try BookStore.openForReading(directory: dir.path, masterSecret: masterSecret(FixtureTests.secret))
        let author = try #require(try store.book(named: FixtureTests.authorName))
        #expect(try store.resumeWriting())
        try author.append(testPage(10))
        #expect(try author.pages(in: 0..<10) == FixtureTests.authorPages && author.get(10) == testPage(10))
        try author.verify()
        store.close()
        #expect(try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version") == 3)

        let empty = TemporaryDirectory("reading")
        defer { empty.remove() }
        #expect(FileManager.default.createFile(atPath: empty.databaseFile, contents: Data()))
        let new = try BookStore.openForReading(directory: empty.path, masterSecret: masterSecret())
        defer { new.close() }
        #expect(try new.resumeWriting() && new.list().isEmpty)
        try new.createOrOpen(name: "author").append(testPage(0))
    }

    /// A store file without a table (a new store whose creation a full disk stopped) reads
    /// as a store without books; no file at all is an error naming it.
    @Test func anEmptyFileHasNoBooksAndNoFileIsAnError() throws {
        let dir = TemporaryDirectory("reading")
        defer { dir.remove() }
        #expect(throws: BooksError(.storage, "")) { try BookStore.openForReading(directory: dir.path, masterSecret: masterSecret()) }
        #expect(FileManager.default.createFile(atPath: dir.databaseFile, contents: Data()))
        let store = try BookStore.openForReading(directory: dir.path, masterSecret: masterSecret())
        defer { store.close() }
        #expect(try store.list().isEmpty)
        #expect(throws: BooksError(.storageReadOnly, "")) { try store.createOrOpen(name: "a") }
    }

    /// What SQLite reports when it cannot write is told apart: a full disk and a read-only
    /// file system or file, after which the store may still be read, from other failures.
    @Test func failuresToWriteAreToldApart() {
        let path = "/v/store/books.sqlite"
        let shmSize = SQLITE_IOERR | 19 << 8  // SQLITE_IOERR_SHMSIZE: the -shm could not grow
        #expect(SQLiteDatabase.error(shmSize, "disk I/O error", path: path, systemErrno: ENOSPC).code == .diskFull)
        #expect(SQLiteDatabase.error(SQLITE_FULL, "database or disk is full", path: path).code == .diskFull)
        #expect(SQLiteDatabase.error(shmSize, "disk I/O error", path: path, systemErrno: EDQUOT).code == .diskFull)
        #expect(SQLiteDatabase.error(SQLITE_CANTOPEN, "unable to open database file", path: path, systemErrno: EROFS).code == .storageReadOnly)
        #expect(SQLiteDatabase.error(SQLITE_READONLY, "attempt to write a readonly database", path: path).code == .storageReadOnly)
        // Moved or deleted while open: no free space or permission mends that.
        #expect(SQLiteDatabase.error(SQLITE_READONLY | 4 << 8, "attempt to write a readonly database", path: path).code == .storage)
        #expect(SQLiteDatabase.error(SQLITE_IOERR, "disk I/O error", path: path, systemErrno: EIO).code == .storage)
        let full = SQLiteDatabase.error(shmSize, "disk I/O error", path: path, systemErrno: ENOSPC)
        #expect(full.meansUnwritable && full.file == path && full.detail.hasPrefix("the disk is full"))
        #expect(!BooksError(.storage, "").meansUnwritable)
    }
}
