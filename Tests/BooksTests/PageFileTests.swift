@testable import Books
import Foundation
import Sodium
import Testing

/// The page file (PROTOCOL.md §4.10): the bytes of the pages a reader stores, of 512 bytes
/// and more, in `books.pages`, their rows naming them; checked at open beyond the end known
/// on disk, given back when a book is deleted, put back in the rows of a backup.
@Suite("Page file") struct PageFileTests {
    /// 40 pages of 1 KiB and more, a few small ones among them (stored in their rows).
    static let pages: [[UInt8]] = (0..<40).map { testPage($0 + 500, size: $0 % 10 == 9 ? 100 : 1024 + Int($0) * 10) }

    /// An author's book of `pages` in a store of its own.
    static func source(_ dir: TemporaryDirectory) throws -> (BookStore, Book) {
        let store = try openStore(dir, secret: 9)
        let book = try store.createOrOpen(name: "ana-bob-pagefile")
        try book.append(contentsOf: pages)
        return (store, book)
    }

    static func copy(of source: Book, in store: BookStore, ranges: [Range<UInt64>]) throws -> Book {
        let copy = try store.open(id: source.id)
        let root = try #require(source.signedRoot)
        for range in ranges {
            try copy.apply(signedRoot: root, proof: source.proof(for: range), pages: source.pages(in: range))
        }
        return copy
    }

    static func fileSize(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    }

    static func allocatedBytes(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_blocks) * 512 : -1
    }

    /// What a power loss may leave of a store that is open: its files copied now (every
    /// commit in the WAL, the page file as written).
    static func crashImage(of dir: TemporaryDirectory, into image: TemporaryDirectory) throws {
        for name in [BookStore.fileName, BookStore.fileName + "-wal", PageFile.fileName] {
            try FileManager.default.copyItem(atPath: dir.path + "/" + name, toPath: image.path + "/" + name)
        }
    }

    /// Where page `index` of the store's first book lies in its page file.
    static func offset(of index: UInt64, in dir: TemporaryDirectory) throws -> Int64 {
        try RawSQLite.integer(dir.databaseFile, "SELECT at FROM page WHERE key = \(PageKey.key(book: 1, page: index))")
    }

    /// Changes a byte at each of `offsets` in the page file; cuts it at `cut`.
    static func damagePageFile(in dir: TemporaryDirectory, at offsets: [Int64], cut: Int64? = nil) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: dir.path + "/" + PageFile.fileName))
        for offset in offsets {
            try handle.seek(toOffset: UInt64(offset))
            let old = try handle.read(upToCount: 1)?.first ?? 0
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: Data([old ^ 0xFF]))
        }
        if let cut { try handle.truncate(atOffset: UInt64(cut)) }
        try handle.close()
    }

    static let filedCount = pages.filter { Book.goesToPageFile(size: $0.count) }.count
    static let filedBytes = pages.filter { Book.goesToPageFile(size: $0.count) }.reduce(0) { $0 + $1.count }

    @Test func aCopysPagesAreWrittenOnceToThePageFile() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile")
        defer { sourceDir.remove(); dir.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let store = try openStore(dir)
        let copy = try Self.copy(of: source, in: store, ranges: [0..<25, 25..<40])
        #expect(try copy.pages(in: 0..<40) == Self.pages)
        try copy.verify()
        // A holder of a copy serves it as any holder: the proof of a page beside a small one.
        _ = try copy.proof(for: 8..<10)
        store.close()
        #expect(Self.fileSize(dir.path + "/" + PageFile.fileName) == Self.filedBytes)
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM page WHERE at IS NOT NULL") == Int64(Self.filedCount))
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM page WHERE length(data) > 0") == Int64(40 - Self.filedCount))
        // Closed cleanly: the whole file is known on disk, nothing to check at the next open.
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT synced FROM page_file") == Int64(Self.filedBytes))
        let reopened = try openStore(dir)
        defer { reopened.close() }
        let again = try #require(try reopened.book(id: source.id))
        #expect(try again.pages(in: 0..<40) == Self.pages)
        try again.verify()
        // The author's own pages stay in their rows: an append is one durable commit.
        sourceStore.close()
        #expect(!FileManager.default.fileExists(atPath: sourceDir.path + "/" + PageFile.fileName)
                || Self.fileSize(sourceDir.path + "/" + PageFile.fileName) == 0)
    }

    /// A power loss can keep a transaction whose page bytes never reached the disk: the
    /// store's files are copied while it is open (every commit in the WAL, the page file
    /// never synced), then the copy's page file loses its tail and a byte of one page. The
    /// copy opens with those pages no longer held, everything else as it was; their tree
    /// nodes stay for the proofs of their neighbours; fetched again, the book is whole.
    @Test func pagesWhoseBytesALossTookAreFetchedAgain() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile"), image = TemporaryDirectory("pagefile-image")
        defer { sourceDir.remove(); dir.remove(); image.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let store = try openStore(dir)
        let copy = try Self.copy(of: source, in: store, ranges: [0..<40])
        _ = copy
        try Self.crashImage(of: dir, into: image)
        store.close()
        #expect(try RawSQLite.integer(image.databaseFile, "SELECT synced FROM page_file") == 0)

        // Page 5's bytes damaged, pages 37 and 38 cut off (39 is small: in its row).
        let cut = try Self.offset(of: 37, in: image)
        try Self.damagePageFile(in: image, at: [Self.offset(of: 5, in: image) + 100], cut: cut)

        let recovered = try openStore(image)
        defer { recovered.close() }
        let book = try #require(try recovered.book(id: source.id))
        #expect(book.heldRanges().ranges == [0..<5, 6..<37, 39..<40])
        #expect(book.length == 40)
        try book.verify()
        _ = try book.proof(for: 4)
        _ = try book.proof(for: 36)
        #expect(try RawSQLite.integer(image.databaseFile, "SELECT synced FROM page_file") == cut)
        let root = try #require(source.signedRoot)
        for range in [5..<6, 37..<39] as [Range<UInt64>] {
            try book.apply(signedRoot: root, proof: source.proof(for: range), pages: source.pages(in: range))
        }
        #expect(try book.pages(in: 0..<40) == Self.pages)
        try book.verify()
    }

    /// Closed cleanly (every byte known on disk), then the file cut short by something else:
    /// the pages that reached past the new end are given up, and only they.
    @Test func aFileCutShortAfterACleanCloseLosesItsTailOnly() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile")
        defer { sourceDir.remove(); dir.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let store = try openStore(dir)
        _ = try Self.copy(of: source, in: store, ranges: [0..<40])
        store.close()
        let cut = try Self.offset(of: 35, in: dir) + 10
        try Self.damagePageFile(in: dir, at: [], cut: cut)
        let reopened = try openStore(dir)
        defer { reopened.close() }
        let book = try #require(try reopened.book(id: source.id))
        #expect(book.heldRanges().ranges == [0..<35, 39..<40])
        try book.verify()
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT synced FROM page_file") == cut)
    }

    @Test func aDeletedBookGivesItsBytesBack() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), otherDir = TemporaryDirectory("pagefile-src2"), dir = TemporaryDirectory("pagefile")
        defer { sourceDir.remove(); otherDir.remove(); dir.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let otherStore = try openStore(otherDir, secret: 10)
        defer { otherStore.close() }
        let other = try otherStore.createOrOpen(name: "bob-ana-pagefile")
        let big = (0..<256).map { testPage($0, size: 4096) }
        try other.append(contentsOf: big)

        let store = try openStore(dir)
        defer { store.close() }
        _ = try Self.copy(of: other, in: store, ranges: [0..<256])
        let kept = try Self.copy(of: source, in: store, ranges: [0..<40])
        let path = dir.path + "/" + PageFile.fileName
        let (size, before) = (Self.fileSize(path), Self.allocatedBytes(path))
        try store.delete([other.id])
        #expect(Self.fileSize(path) == size)
        #expect(Self.allocatedBytes(path) <= before - 1_000_000, "\(before) → \(Self.allocatedBytes(path)) bytes allocated")
        #expect(try kept.pages(in: 0..<40) == Self.pages)
        try kept.verify()
    }

    @Test func aBackupHoldsThePagesInItsRows() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile"), restored = TemporaryDirectory("pagefile-restored")
        defer { sourceDir.remove(); dir.remove(); restored.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let store = try openStore(dir)
        defer { store.close() }
        _ = try Self.copy(of: source, in: store, ranges: [0..<20, 30..<40])
        try store.backup(to: restored.databaseFile)
        #expect(try RawSQLite.integer(restored.databaseFile, "SELECT count(*) FROM page WHERE at IS NOT NULL") == 0)
        #expect(try RawSQLite.integer(restored.databaseFile, "SELECT synced FROM page_file") == 0)
        #expect(try RawSQLite.integer(restored.databaseFile, "SELECT count(*) FROM page_file_write") == 0)
        // Rows as version 2 writes them (§4.4): page 0 (1024 bytes) without its leaf, page 1
        // (1034 bytes) with it and the parent it completes.
        #expect(try RawSQLite.integer(restored.databaseFile, "SELECT length(tree) FROM page WHERE key = \(PageKey.key(book: 1, page: 0))") == 0)
        #expect(try RawSQLite.integer(restored.databaseFile, "SELECT length(tree) FROM page WHERE key = \(PageKey.key(book: 1, page: 1))") == 64)
        let opened = try openStore(restored)
        defer { opened.close() }
        let book = try #require(try opened.book(id: source.id))
        #expect(book.heldRanges().ranges == [0..<20, 30..<40])
        #expect(try book.pages(in: 30..<40) == Array(Self.pages[30..<40]))
        try book.verify()
    }

    /// A page whose bytes in the page file went bad after a clean close (nothing checks them
    /// at open): a backup gives it up in the copy, as the check at open would, rather than
    /// failing; everything else is in the copy.
    @Test func aBackupGivesUpAPageWhoseBytesWentBad() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile"), restored = TemporaryDirectory("pagefile-restored")
        defer { sourceDir.remove(); dir.remove(); restored.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let store = try openStore(dir)
        _ = try Self.copy(of: source, in: store, ranges: [0..<40])
        store.close()
        try Self.damagePageFile(in: dir, at: [Self.offset(of: 12, in: dir) + 7])
        let reopened = try openStore(dir)
        defer { reopened.close() }
        try reopened.backup(to: restored.databaseFile)
        let copy = try openStore(restored)
        defer { copy.close() }
        let book = try #require(try copy.book(id: source.id))
        #expect(book.heldRanges().ranges == [0..<12, 13..<40])
        try book.verify()
        try book.apply(signedRoot: #require(source.signedRoot), proof: source.proof(for: 12), pages: source.pages(in: 12..<13))
        #expect(try book.pages(in: 0..<40) == Self.pages)
    }

    /// A store of version 1 or 2 read as it is (a full disk after an upgrade): its backup has
    /// no page file to read, and is whole.
    @Test(arguments: [1, 2]) func aBackupOfAnOlderStoreReadOnly(version: Int) throws {
        let dir = TemporaryDirectory("pagefile-old"), restored = TemporaryDirectory("pagefile-restored")
        defer { dir.remove(); restored.remove() }
        try FileManager.default.removeItem(atPath: dir.path)
        try FileManager.default.copyItem(atPath: FixtureTests.fixtures.appendingPathComponent("store-v\(version)").path, toPath: dir.path)
        let store = try BookStore.openForReading(directory: dir.path, masterSecret: masterSecret(FixtureTests.secret),
                                                 refusal: BooksError(.diskFull, "the disk is full"))
        defer { store.close() }
        try store.backup(to: restored.databaseFile)
        let copy = try openStore(restored, secret: FixtureTests.secret)
        defer { copy.close() }
        let author = try #require(try copy.book(named: FixtureTests.authorName))
        #expect(try author.pages(in: 0..<10) == FixtureTests.authorPages)
        try author.verify()
    }

    /// The file synced and its end recorded mid-session (a checkpoint pass): at the next open
    /// after a crash only the answers written after it are read — a page of one is given up,
    /// a page written before the sync is not looked at.
    @Test func onlyAnswersBeyondTheSyncedEndAreChecked() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile"), image = TemporaryDirectory("pagefile-image")
        defer { sourceDir.remove(); dir.remove(); image.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        let store = try openStore(dir)
        let copy = try Self.copy(of: source, in: store, ranges: [0..<20])
        try store.checkpoint()  // syncs the page file; the next answer records its end
        let root = try #require(source.signedRoot)
        try copy.apply(signedRoot: root, proof: source.proof(for: 20..<40), pages: source.pages(in: 20..<40))
        try Self.crashImage(of: dir, into: image)
        store.close()
        let synced = try RawSQLite.integer(image.databaseFile, "SELECT synced FROM page_file")
        let before = try Self.offset(of: 5, in: image), after = try Self.offset(of: 25, in: image)
        #expect(synced > before && after >= synced, "synced \(synced), page 5 at \(before), page 25 at \(after)")
        #expect(try RawSQLite.integer(image.databaseFile, "SELECT count(*) FROM page_file_write") == 1)
        try Self.damagePageFile(in: image, at: [before + 3, after + 3])
        let recovered = try openStore(image)
        defer { recovered.close() }
        let book = try #require(try recovered.book(id: source.id))
        // Page 25 given up; page 5, below the synced end, trusted (only `verify` reads it).
        #expect(book.heldRanges().ranges == [0..<25, 26..<40])
        #expect(throws: BooksError.self) { try book.verify() }
    }

    /// A page file that cannot take the bytes (here `/dev/full`, which answers every write
    /// with ENOSPC): the answer is refused as `diskFull` naming the file, nothing is stored.
    @Test func aFullDiskRefusesTheAnswerAndStoresNothing() throws {
        let sourceDir = TemporaryDirectory("pagefile-src"), dir = TemporaryDirectory("pagefile")
        defer { sourceDir.remove(); dir.remove() }
        let (sourceStore, source) = try Self.source(sourceDir)
        defer { sourceStore.close() }
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/" + PageFile.fileName, withDestinationPath: "/dev/full")
        let store = try openStore(dir)
        defer { store.close() }
        let copy = try store.open(id: source.id)
        let error = #expect(throws: BooksError.self) {
            try copy.apply(signedRoot: #require(source.signedRoot), proof: source.proof(for: 0..<10), pages: source.pages(in: 0..<10))
        }
        #expect(error?.code == .diskFull)
        #expect(error?.file?.hasSuffix(PageFile.fileName) == true, "\(String(describing: error))")
        #expect(copy.heldRanges().ranges.isEmpty && copy.length == 0)
    }
}
