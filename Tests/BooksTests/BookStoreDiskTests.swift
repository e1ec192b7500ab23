import Books
import Foundation
import Testing

/// Damaged, foreign and future database files: a clear error naming the file, and
/// nothing of what is stored lost or rewritten.
@Suite("BookStore on disk") struct BookStoreDiskTests {
    /// The page-table key of page `index` of the store's first book (PROTOCOL.md §4).
    func pageKey(_ index: UInt64, book: Int64 = 1) -> Int64 { (book << 40) | Int64(index) }

    /// A closed store with one book of `pages` pages (batches of 5), plus its id.
    func makeStore(pages: UInt64 = 40, size: Int = 40) throws -> (TemporaryDirectory, BookID) {
        let dir = TemporaryDirectory("disk")
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "disk")
        var next: UInt64 = 0
        while next < pages {
            try book.append(contentsOf: (next..<min(pages, next + 5)).map { testPage($0, size: size) })
            next += 5
        }
        store.close()
        return (dir, book.id)
    }

    /// The page size in an SQLite file's header (offset 16, big-endian; 1 means 65 536).
    static func filePageSize(_ path: String) throws -> Int {
        let header = try #require(FileManager.default.contents(atPath: path)).prefix(18)
        let value = Int(header[16]) << 8 | Int(header[17])
        return value == 1 ? 65_536 : value
    }

    @Test func aNewStoreFileHasSixteenKiBPages() throws {
        let (dir, _) = try makeStore()
        defer { dir.remove() }
        #expect(try Self.filePageSize(dir.databaseFile) == BookStore.newFilePageSize)
        #expect(BookStore.newFilePageSize == 16_384)
    }

    @Test func garbageFileIsACorruptDatabaseAndIsLeftAlone() throws {
        let dir = TemporaryDirectory("garbage")
        defer { dir.remove() }
        let garbage = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        _ = FileManager.default.createFile(atPath: dir.databaseFile, contents: Data(garbage))
        let error = #expect(throws: BooksError.self) { try openStore(dir) }
        #expect(error?.code == .corruptDatabase)
        #expect(error?.file == dir.databaseFile)
        #expect(error?.description.contains(dir.databaseFile) == true)
        #expect(RawSQLite.fileBytes(dir.databaseFile) == garbage)
    }

    /// A `book` table that lost rows (a damaged page that still reads as a valid, emptier
    /// one) would show books — a whole task list — gone: the pages, tree and roots of a book
    /// the table lacks are found at open, and the store is refused, untouched.
    @Test func pagesOfABookTheBookTableLacksAreACorruptDatabase() throws {
        let (dir, _) = try makeStore(pages: 20)
        defer { dir.remove() }
        // A second book, so that the damage can hit the first row or the last.
        let store = try openStore(dir)
        try store.createOrOpen(name: "second").append(contentsOf: (0..<3).map { testPage($0) })
        store.close()
        for (table, row) in [("book", "id = 1"), ("book", "name = 'second'")] {
            let copy = TemporaryDirectory("disk-copy")
            defer { copy.remove() }
            try FileManager.default.removeItem(atPath: copy.path)
            try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
            try RawSQLite.execute(copy.databaseFile, "DELETE FROM \(table) WHERE \(row)")
            let before = RawSQLite.fileBytes(copy.databaseFile)
            let error = #expect(throws: BooksError.self) { try openStore(copy) }
            #expect(error?.code == .corruptDatabase && error?.file == copy.databaseFile, "\(String(describing: error))")
            #expect(error?.detail.contains("no row for book number") == true, "\(String(describing: error))")
            #expect(RawSQLite.fileBytes(copy.databaseFile) == before)
        }
        // A book deleted by the store takes all its rows with it: the store opens.
        let again = try openStore(dir)
        try again.delete([try #require(try again.id(named: "second"))])
        again.close()
        let reopened = try openStore(dir)
        #expect(try reopened.list().map(\.name) == ["disk"])
        reopened.close()
    }

    /// The same for a tree node, signed root or fork row of a book number no book can have
    /// (at or past 2^23, up to Int64.max): the seek for the next number after it trapped.
    @Test func rowsOfABookNumberNoBookCanHaveAreACorruptDatabase() throws {
        let hash = "x'" + String(repeating: "00", count: 32) + "'"
        let signature = "x'" + String(repeating: "00", count: 64) + "'"
        for (insert, number) in [("INSERT INTO node (book, idx, hash) VALUES (%@, 0, \(hash))", "9223372036854775807"),
                                 ("INSERT INTO root (book, length, hash, signature) VALUES (%@, 1, \(hash), \(signature))",
                                  "9223372036854775807"),
                                 ("INSERT INTO node (book, idx, hash) VALUES (%@, 0, \(hash))", "\(1 << 23)"),
                                 ("INSERT INTO fork VALUES (%@, 1, \(hash), \(signature), 1, \(hash), \(signature))", "-3")] {
            let (dir, _) = try makeStore(pages: 5)
            defer { dir.remove() }
            try RawSQLite.execute(dir.databaseFile, insert.replacingOccurrences(of: "%@", with: number))
            let before = RawSQLite.fileBytes(dir.databaseFile)
            let error = #expect(throws: BooksError.self) { try openStore(dir) }
            #expect(error?.code == .corruptDatabase && error?.file == dir.databaseFile, "\(String(describing: error))")
            #expect(error?.detail.contains(number) == true, "\(String(describing: error))")
            #expect(RawSQLite.fileBytes(dir.databaseFile) == before)
        }
    }

    @Test func truncatedFileIsACorruptDatabaseAndIsLeftAlone() throws {
        let (dir, _) = try makeStore(pages: 400, size: 1000)
        defer { dir.remove() }
        let original = RawSQLite.fileBytes(dir.databaseFile)
        #expect(original.count > 100_000)
        let truncated = Array(original.prefix(original.count / 2))
        _ = FileManager.default.createFile(atPath: dir.databaseFile, contents: Data(truncated))
        let error = #expect(throws: BooksError.self) { try openStore(dir) }
        #expect(error?.code == .corruptDatabase)
        #expect(error?.file == dir.databaseFile)
        #expect(RawSQLite.fileBytes(dir.databaseFile) == truncated)
        // Put the bytes back: everything is there.
        _ = FileManager.default.createFile(atPath: dir.databaseFile, contents: Data(original))
        let store = try openStore(dir)
        let book = try #require(try store.book(named: "disk"))
        #expect(book.length == 400)
        try book.verify()
        store.close()
    }

    @Test func newerSchemaVersionIsRefusedNamingTheFile() throws {
        let (dir, _) = try makeStore()
        defer { dir.remove() }
        let current = try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version")
        try RawSQLite.execute(dir.databaseFile, "PRAGMA user_version = 99")
        let (error, _) = expectRefusedUnwritten(dir, .unsupportedSchemaVersion)
        #expect(error?.description.contains("99") == true)
        // An older code refusing a newer file loses nothing: back to its version, it opens.
        try RawSQLite.execute(dir.databaseFile, "PRAGMA user_version = \(current)")
        let store = try openStore(dir)
        #expect(try store.book(named: "disk")?.length == 40)
        store.close()
    }

    @Test func anotherProgramsDatabaseIsNotABookStore() throws {
        let dir = TemporaryDirectory("foreign")
        defer { dir.remove() }
        _ = FileManager.default.createFile(atPath: dir.databaseFile, contents: nil)
        try RawSQLite.execute(dir.databaseFile, "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me')")
        // Not a byte written: the other program's file stays in its journal mode (header
        // bytes 18–19 would say 2 had it been switched to WAL).
        let (_, bytes) = expectRefusedUnwritten(dir, .notABookStore)
        #expect(bytes[18] == 1 && bytes[19] == 1)
        #expect(try RawSQLite.blob(dir.databaseFile, "SELECT CAST(text AS BLOB) FROM notes") == Array("keep me".utf8))
    }

    @Test func aRollbackJournalFileOfANewerVersionIsRefusedUnwritten() throws {
        let dir = TemporaryDirectory("newer-rollback")
        defer { dir.remove() }
        _ = FileManager.default.createFile(atPath: dir.databaseFile, contents: nil)
        try RawSQLite.execute(dir.databaseFile, "PRAGMA application_id = 1114599275; PRAGMA user_version = 7; CREATE TABLE future (x)")
        expectRefusedUnwritten(dir, .unsupportedSchemaVersion)
        #expect(!FileManager.default.fileExists(atPath: dir.databaseFile + "-wal"))
    }

    /// `PRAGMA user_version` is a signed 32-bit field: a damaged header (or another program)
    /// can hold a negative one, which no Bookswarm writes. It used to index the migrations
    /// with a negative number and trap.
    @Test func aNegativeSchemaVersionIsACorruptDatabaseAndIsLeftAlone() throws {
        for version in [-1, -2_147_483_648] {
            let (dir, _) = try makeStore()
            defer { dir.remove() }
            let current = try RawSQLite.integer(dir.databaseFile, "PRAGMA user_version")
            try RawSQLite.execute(dir.databaseFile, "PRAGMA user_version = \(version)")
            let (error, _) = expectRefusedUnwritten(dir, .corruptDatabase)
            #expect(error?.description.contains("\(version)") == true, "\(String(describing: error))")
            // Put the version back: everything is there.
            try RawSQLite.execute(dir.databaseFile, "PRAGMA user_version = \(current)")
            let store = try openStore(dir)
            #expect(try store.book(named: "disk")?.length == 40)
            store.close()
        }
    }

    /// A book's number keys its pages (`number << 40 | index`, PROTOCOL.md §4.3) and must lie
    /// in 0..<2^23. A damaged or edited `book` table with a negative number, or one near
    /// Int64.max, used to trap building those keys (`UInt64(number)`, `number + 1`).
    @Test func aBookNumberOutOfRangeIsACorruptDatabase() throws {
        for number: Int64 in [-5, 1 << 23, Int64.max] {
            let (dir, _) = try makeStore()
            defer { dir.remove() }
            try RawSQLite.execute(dir.databaseFile, "UPDATE book SET id = \(number) WHERE id = 1")
            let error = #expect(throws: BooksError.self) { try openStore(dir) }
            #expect(error?.code == .corruptDatabase, "\(number): \(String(describing: error))")
            #expect(error?.file == dir.databaseFile)
            #expect(error?.description.contains("\(number)") == true, "\(String(describing: error))")
        }
    }

    /// No page over `Book.maximumPageSize` is ever stored; one grown on disk is not served
    /// (a holder answering with it trapped once it passed 65 535 fragments) but refused as
    /// `corruptDatabase` naming the file. Pages before it are served as usual.
    @Test func aPageGrownPastTheMaximumOnDiskIsNotServed() throws {
        let (dir, _) = try makeStore(pages: 5)
        defer { dir.remove() }
        try RawSQLite.execute(dir.databaseFile, "UPDATE page SET data = zeroblob(\(Book.maximumPageSize + 1)) WHERE key = \(pageKey(3))")
        let store = try openStore(dir)
        defer { store.close() }
        let book = try #require(try store.book(named: "disk"))
        let error = #expect(throws: BooksError.self) { try book.withPages(in: 2..<5) { _ in } }
        #expect(error?.code == .corruptDatabase && error?.file == dir.databaseFile, "\(String(describing: error))")
        #expect(try book.withPages(in: 0..<5, maxBytes: 100) { _ in } == 0..<2)
    }

    /// The store itself never leaves such a row: the book past the last number is refused,
    /// and its row taken out again, so the store still opens.
    @Test func theBookPastTheLastNumberIsRefusedAndLeavesNoRow() throws {
        let (dir, _) = try makeStore(pages: 5)
        defer { dir.remove() }
        var store = try openStore(dir)
        let reader = try store.open(id: try store.derivedID(name: "someone else's")).id
        store.close()
        try RawSQLite.execute(dir.databaseFile, "UPDATE book SET id = \((1 << 23) - 1) WHERE key = x'\(reader.hex)'")
        store = try openStore(dir)
        let error = #expect(throws: BooksError.self) { try store.createOrOpen(name: "one too many") }
        #expect(error?.code == .storage, "\(String(describing: error))")
        store.close()
        store = try openStore(dir)
        #expect(try store.list().map(\.id).contains(reader))
        #expect(try store.book(named: "one too many") == nil)
        #expect(try store.book(named: "disk")?.length == 5)
        store.close()
    }

    /// Opens the store in `dir`, which must be refused with `code`, naming its file, and
    /// leave the file as it was, byte for byte. Returns the error and the file's bytes.
    @discardableResult
    private func expectRefusedUnwritten(_ dir: TemporaryDirectory, _ code: BooksError.Code,
                                        sourceLocation: SourceLocation = #_sourceLocation) -> (BooksError?, [UInt8]) {
        let before = RawSQLite.fileBytes(dir.databaseFile)
        let error = #expect(throws: BooksError.self, sourceLocation: sourceLocation) { try openStore(dir) }
        #expect(error?.code == code, sourceLocation: sourceLocation)
        #expect(error?.file == dir.databaseFile, sourceLocation: sourceLocation)
        let after = RawSQLite.fileBytes(dir.databaseFile)
        #expect(after == before, "the file changed (header bytes 18–19: \(after[18]), \(after[19]))",
                sourceLocation: sourceLocation)
        return (error, before)
    }

    @Test func aFlippedBitInAPageOrATreeNodeFailsVerify() throws {
        let (dir, _) = try makeStore(pages: 40, size: 2000)  // pages > 1 KiB store their leaf
        defer { dir.remove() }
        let file = dir.databaseFile
        // (select, update, bits) for: page bytes, a leaf hash, a parent hash.
        let targets: [(String, String, [Int])] = [
            ("SELECT data FROM page WHERE key = \(pageKey(17))", "UPDATE page SET data = ?1 WHERE key = \(pageKey(17))", [0, 7, 8 * 999, 8 * 2000 - 1]),
            ("SELECT tree FROM page WHERE key = \(pageKey(20))", "UPDATE page SET tree = ?1 WHERE key = \(pageKey(20))", [0, 255]),
            ("SELECT tree FROM page WHERE key = \(pageKey(23))", "UPDATE page SET tree = ?1 WHERE key = \(pageKey(23))", [32 * 8, 32 * 8 + 200, 95 * 8]),
            ("SELECT tree FROM page WHERE key = \(pageKey(39))", "UPDATE page SET tree = ?1 WHERE key = \(pageKey(39))", [0, 40 * 8]),
        ]
        for (select, update, bits) in targets {
            for bit in bits {
                try RawSQLite.flipBit(file, select: select, update: update, bit: bit)
                let store = try openStore(dir)
                let book = try #require(try store.book(named: "disk"))
                let error = #expect(throws: BooksError.self) { try book.verify() }
                #expect(error?.code == .corruptDatabase)
                #expect(error?.file == file)
                store.close()
                try RawSQLite.flipBit(file, select: select, update: update, bit: bit)  // restore
            }
        }
        let store = try openStore(dir)
        try #require(try store.book(named: "disk")).verify()
        store.close()
    }

    @Test func aFlippedBitInTheLatestRootOrSignatureIsCaughtAtOpen() throws {
        let (dir, _) = try makeStore(pages: 40)
        defer { dir.remove() }
        let file = dir.databaseFile
        let select = "SELECT root FROM page WHERE key = \(pageKey(39))"
        let update = "UPDATE page SET root = ?1 WHERE key = \(pageKey(39))"
        for bit in [0, 100, 255, 256, 600, 767] {  // root hash bits 0–255, signature 256–767
            try RawSQLite.flipBit(file, select: select, update: update, bit: bit)
            let error = #expect(throws: BooksError.self) { try openStore(dir) }
            #expect(error?.code == .corruptDatabase)
            #expect(error?.file == file)
            try RawSQLite.flipBit(file, select: select, update: update, bit: bit)
        }
        let store = try openStore(dir)
        try #require(try store.book(named: "disk")).verify()
        store.close()
    }

    @Test func aSparseReadersStoredNodesAreCheckedToo() throws {
        let (authorDir, _) = try makeStore(pages: 40)
        let readerDir = TemporaryDirectory("sparse-reader")
        defer { authorDir.remove(); readerDir.remove() }
        let author = try openStore(authorDir)
        let source = try #require(try author.book(named: "disk"))
        let readerStore = try openStore(readerDir, secret: 3)
        let reader = try readerStore.open(id: source.id)
        try reader.apply(signedRoot: #require(source.signedRoot), proof: source.proof(for: 9..<11), pages: source.pages(in: 9..<11))
        try reader.verify()
        readerStore.close()
        author.close()
        // The reader keeps the proof's other nodes in the node table: damage one.
        let file = readerDir.databaseFile
        let select = "SELECT hash FROM node WHERE book = 1 ORDER BY idx LIMIT 1"
        let update = "UPDATE node SET hash = ?1 WHERE book = 1 AND idx = (SELECT min(idx) FROM node WHERE book = 1)"
        try RawSQLite.flipBit(file, select: select, update: update, bit: 3)
        let error = #expect(throws: BooksError.self) {
            let store = try openStore(readerDir, secret: 3)
            defer { store.close() }
            try store.open(id: source.id).verify()
        }
        #expect(error?.code == .corruptDatabase)
    }
}
