import Books
import Foundation
import Sodium
import Testing

/// The disk-format fixtures: stores written by each schema version, committed under
/// Fixtures/, opened by the current code. The fixture of the current version is written
/// (only when adding a new version's fixture, never to "fix" a failing test) with
/// `BOOKSWARM_WRITE_FIXTURES=1 swift test --filter FixtureTests`; older ones were written
/// by the code of their time and stay as they are.
@Suite("Disk-format fixtures") struct FixtureTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let secret: UInt8 = 42

    /// What the v1 fixture holds, and the v2 fixture too: an author's book, a sparse copy of
    /// another author's book, and an empty book.
    static let authorName = "ana-bob-fixture"
    static let readName = "bob-ana-fixture"
    static let emptyName = "ana-carl-fixture"
    static let authorPages: [[UInt8]] = (0..<10).map { testPage($0, size: 20 + Int($0) * 150) }
    static let readPages: [[UInt8]] = (0..<9).map { testPage($0 + 1000, size: 60) }
    static let readHeld: [Range<UInt64>] = [2..<4, 7..<8]
    /// What v2 adds: a large page (§4.9) in the author's book and one in a second authored
    /// book, with heads of their own (100 and 101 bytes) before the same 64 KiB, stored once.
    static let sharedName = "ana-dora-fixture"
    static func largePage(head: Int) -> [UInt8] { [UInt8](repeating: UInt8(head), count: head) + testPage(77, size: Book.sharedPageThreshold) }

    /// Copies a committed fixture to a temporary directory (opening a store may write to it).
    func copyFixture(_ name: String) throws -> TemporaryDirectory {
        let dir = TemporaryDirectory("fixture")
        try FileManager.default.removeItem(atPath: dir.path)
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent(name).path, toPath: dir.path)
        return dir
    }

    @Test func schemaVersion1StoreOpensWithTheCurrentCode() throws {
        let dir = try copyFixture("store-v1")
        defer { dir.remove() }
        let store = try openStore(dir, secret: Self.secret)
        let entries = try store.list()
        #expect(entries.map(\.name) == [Self.authorName, Self.emptyName, Self.readName])
        #expect(entries.map(\.isWritable) == [true, true, false])

        let author = try #require(try store.book(named: Self.authorName))
        #expect(author.id == (try BookName.keyPair(masterSecret: masterSecret(Self.secret), name: Self.authorName)).publicKey.bookID)
        #expect(author.length == 10)
        #expect(try author.pages(in: 0..<10) == Self.authorPages)
        try author.verify()

        let read = try #require(try store.book(named: Self.readName))
        #expect(read.length == 9)
        #expect(read.heldRanges().ranges == Self.readHeld)
        for range in Self.readHeld { #expect(try read.pages(in: range) == Array(Self.readPages[Int(range.lowerBound)..<Int(range.upperBound)])) }
        try read.verify()
        #expect(try store.book(named: Self.emptyName)?.length == 0)

        // The current code keeps writing to a v1 store, in the page size it was made with
        // (4 KiB, before new stores took 16 KiB), migrated to the current schema: its
        // large pages are stored once from then on (§4.9).
        try author.append(testPage(10))
        try author.append(Self.largePage(head: 100))
        try store.createOrOpen(name: Self.sharedName).append(Self.largePage(head: 101))
        try author.verify()
        store.close()
        #expect(try BookStoreDiskTests.filePageSize(dir.databaseFile) == 4096)
        #expect(try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version") == 3)
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM blob") == 1)
        let reopened = try openStore(dir, secret: Self.secret)
        #expect(try reopened.book(named: Self.authorName)?.pages(in: 0..<12) == Self.authorPages + [testPage(10), Self.largePage(head: 100)])
        reopened.close()
    }

    @Test func schemaVersion2StoreOpensWithTheCurrentCode() throws {
        let dir = try copyFixture("store-v2")
        defer { dir.remove() }
        #expect(try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version") == 2)
        let store = try openStore(dir, secret: Self.secret)
        #expect(try store.list().map(\.name) == [Self.authorName, Self.emptyName, Self.sharedName, Self.readName])
        let author = try #require(try store.book(named: Self.authorName))
        #expect(try author.pages(in: 0..<11) == Self.authorPages + [Self.largePage(head: 100)])
        try author.verify()
        let shared = try #require(try store.book(named: Self.sharedName))
        #expect(try shared.pages(in: 0..<1) == [Self.largePage(head: 101)])
        try shared.verify()
        let read = try #require(try store.book(named: Self.readName))
        #expect(read.heldRanges().ranges == Self.readHeld)
        for range in Self.readHeld { #expect(try read.pages(in: range) == Array(Self.readPages[Int(range.lowerBound)..<Int(range.upperBound)])) }
        try read.verify()
        try author.append(testPage(11))
        // Migrated to version 3: a copy's pages of 512 bytes and more go to the page file.
        let otherDir = TemporaryDirectory("fixture-other")
        defer { otherDir.remove() }
        let (source, other) = try Self.filedSource(otherDir)
        defer { other.close() }
        let filed = try store.open(id: source.id, title: Self.filedName)
        try filed.apply(signedRoot: #require(source.signedRoot), proof: source.proof(for: 0..<6), pages: source.pages(in: 0..<6))
        store.close()
        #expect(try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version") == 3)
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM blob") == 1)
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM page WHERE at IS NOT NULL") == 5)
        let reopened = try openStore(dir, secret: Self.secret)
        #expect(try reopened.book(named: Self.filedName)?.pages(in: 0..<6) == Array(Self.filedPages[0..<6]))
        try reopened.book(named: Self.filedName)?.verify()
        reopened.close()
    }

    /// What v3 adds: a copy of a book of pages from 512 bytes to 2 KiB, whose bytes are in
    /// the page file (§4.10), held sparsely, and one of its pages of 100 bytes in its row.
    static let filedName = "carl-ana-fixture"
    static let filedPages: [[UInt8]] = [600, 512, 1024, 2048, 100, 1500, 700, 900].enumerated().map { testPage(UInt64($0.offset + 2000), size: $0.element) }
    static let filedHeld: [Range<UInt64>] = [0..<5, 6..<7]

    /// The author of `filedName`'s book, in a store of its own in `dir`.
    static func filedSource(_ dir: TemporaryDirectory) throws -> (Book, BookStore) {
        let other = try openStore(dir, secret: Self.secret &+ 2)
        let source = try other.createOrOpen(name: Self.filedName)
        try source.append(contentsOf: Self.filedPages)
        return (source, other)
    }

    @Test func schemaVersion3StoreOpensWithTheCurrentCode() throws {
        let dir = try copyFixture("store-v3")
        defer { dir.remove() }
        #expect(try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version") == 3)
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM page WHERE at IS NOT NULL") == 5)
        let store = try openStore(dir, secret: Self.secret)
        #expect(try store.list().map(\.name) == [Self.authorName, Self.emptyName, Self.sharedName, Self.readName, Self.filedName])
        let author = try #require(try store.book(named: Self.authorName))
        #expect(try author.pages(in: 0..<11) == Self.authorPages + [Self.largePage(head: 100)])
        try author.verify()
        let filed = try #require(try store.book(named: Self.filedName))
        #expect(filed.length == 8)
        #expect(filed.heldRanges().ranges == Self.filedHeld)
        for range in Self.filedHeld { #expect(try filed.pages(in: range) == Array(Self.filedPages[Int(range.lowerBound)..<Int(range.upperBound)])) }
        try filed.verify()
        // A proof of page 6 needs page 7's leaf, which no page held gives: from the node table.
        _ = try filed.proof(for: 6)
        store.close()
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["BOOKSWARM_WRITE_FIXTURES"] == "1"))
    func writeSchemaVersion3Fixture() throws {
        let target = Self.fixtures.appendingPathComponent("store-v3").path
        try? FileManager.default.removeItem(atPath: target)
        let otherDir = TemporaryDirectory("fixture-other")
        defer { otherDir.remove() }
        let other = try openStore(otherDir, secret: Self.secret &+ 1)
        let source = try other.createOrOpen(name: Self.readName)
        try source.append(contentsOf: Array(Self.readPages[0..<5]))
        try source.append(contentsOf: Array(Self.readPages[5...]))
        let filedDir = TemporaryDirectory("fixture-filed")
        defer { filedDir.remove() }
        let (filedSource, filedOther) = try Self.filedSource(filedDir)

        let store = try BookStore.open(directory: target, masterSecret: masterSecret(Self.secret))
        let author = try store.createOrOpen(name: Self.authorName)
        try author.append(contentsOf: Array(Self.authorPages[0..<3]))
        for page in Self.authorPages[3...] { try author.append(page) }
        try author.append(Self.largePage(head: 100))
        try store.createOrOpen(name: Self.sharedName).append(Self.largePage(head: 101))
        _ = try store.createOrOpen(name: Self.emptyName)
        let read = try store.open(id: source.id, title: Self.readName)
        let root = try #require(source.signedRoot)
        for range in Self.readHeld {
            try read.apply(signedRoot: root, proof: source.proof(for: range), pages: source.pages(in: range))
        }
        let filed = try store.open(id: filedSource.id, title: Self.filedName)
        let filedRoot = try #require(filedSource.signedRoot)
        for range in Self.filedHeld {
            try filed.apply(signedRoot: filedRoot, proof: filedSource.proof(for: range), pages: filedSource.pages(in: range))
        }
        store.close()
        other.close()
        filedOther.close()
        try? FileManager.default.removeItem(atPath: target + "/" + BookStore.lockFileName)
    }

}

extension Ed25519.PublicKey {
    var bookID: BookID { BookID(self) }
}
