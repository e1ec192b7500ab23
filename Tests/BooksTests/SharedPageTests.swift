@testable import Books
import Foundation
import Testing

/// Large pages are stored once per store, however many books hold them (PROTOCOL.md §4.9):
/// what keeps a file attached to a task of five from taking five times its size.
@Suite("Large pages stored once") struct SharedPageTests {
    static let large = Book.sharedPageThreshold

    func count(_ dir: TemporaryDirectory, _ sql: String) throws -> Int64 { try RawSQLite.integer(dir.databaseFile, sql) }

    /// `head` bytes of its own, then `body`: a page as the messenger writes a file's part
    /// into several books (each book's page head differs, the part does not).
    func page(head: Int, book: Int, _ body: [UInt8]) -> [UInt8] {
        (0..<head).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ book) } + body
    }

    @Test func aPageInSeveralBooksIsStoredOnce() throws {
        let dir = TemporaryDirectory("shared")
        defer { dir.remove() }
        let store = try openStore(dir)
        let part = testPage(7, size: 256 << 10)
        let last = testPage(8, size: 70_000)
        let below = testPage(9, size: Self.large - 200)
        var books: [Book] = []
        var written: [[[UInt8]]] = []
        for i in 0..<5 {
            let book = try store.createOrOpen(name: "book-\(i)")
            // Heads of 100 to 104 bytes: the shared tails are the last 256 KiB and the last
            // 68 KiB (70 000 + head rounded down to 4 KiB).
            let pages = [testPage(UInt64(100 + i)), page(head: 100 + i, book: i, part), page(head: 100 + i, book: i, last),
                         page(head: 100 + i, book: i, below), page(head: 100 + i, book: i, part)]
            try book.append(pages[0])
            try book.append(contentsOf: Array(pages[1...]))
            books.append(book)
            written.append(pages)
        }
        for (book, pages) in zip(books, written) {
            #expect(try book.pages(in: 0..<5) == pages)
            #expect(try book.get(4) == pages[4])
            try book.verify()
        }
        store.close()
        // One row per distinct tail; the page rows keep their heads only; the page just below
        // the threshold stays whole in every row.
        #expect(try count(dir, "SELECT count(*) FROM blob") == 2)
        #expect(try count(dir, "SELECT count(*) FROM blob WHERE length(data) % 4096 != 0") == 0)
        #expect(try count(dir, "SELECT count(*) FROM page WHERE blob IS NOT NULL") == 15)
        #expect(try count(dir, "SELECT count(*) FROM page WHERE blob IS NOT NULL AND length(data) >= 4096") == 0)
        #expect(try count(dir, "SELECT count(*) FROM page WHERE blob IS NULL AND length(data) >= \(Self.large - 100)") == 5)
        // The file: one copy of the large pages, not five.
        let size = try count(dir, "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
        #expect(size < Int64(5 * Self.large + part.count + last.count + 256 << 10), "\(size)")

        let reopened = try openStore(dir)
        defer { reopened.close() }
        #expect(try reopened.book(named: "book-3")?.pages(in: 0..<5) == written[3])
    }

    @Test func bytesGoWithTheLastBookThatHoldsThem() throws {
        let dir = TemporaryDirectory("shared-drop")
        defer { dir.remove() }
        let store = try openStore(dir)
        let chunk = testPage(1, size: 128 << 10)
        let only = testPage(2, size: 128 << 10)
        let a = try store.createOrOpen(name: "a")
        let b = try store.createOrOpen(name: "b")
        try a.append(contentsOf: [chunk, only])
        try b.append(chunk)
        let blobs = { try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM blob") }
        #expect(try blobs() == 2)

        // Giving `a` up drops its page rows, and the bytes only it held; b still reads its page.
        try a.becomeReader()
        #expect(try blobs() == 1)
        #expect(try b.get(0) == chunk)
        try b.verify()

        try store.delete([b.id])
        #expect(try blobs() == 0)
        store.close()
    }

    @Test func aReaderStoresAnArrivingPageOnceToo() throws {
        let authorDir = TemporaryDirectory("shared-author")
        let readerDir = TemporaryDirectory("shared-reader")
        defer { authorDir.remove(); readerDir.remove() }
        let authors = try openStore(authorDir, secret: 2)
        let reader = try openStore(readerDir, secret: 3)
        defer { authors.close(); reader.close() }
        let chunk = testPage(3, size: 256 << 10)
        var copies: [Book] = []
        for name in ["to-x", "to-y"] {
            let source = try authors.createOrOpen(name: name)
            try source.append(contentsOf: [testPage(4), chunk])
            let copy = try reader.open(id: source.id)
            let root = try #require(source.signedRoot)
            try copy.apply(signedRoot: root, proof: source.proof(for: 0..<2), pages: source.pages(in: 0..<2))
            // The same answer again stores nothing, and leaves no bytes behind.
            try copy.apply(signedRoot: root, proof: source.proof(for: 1..<2), pages: source.pages(in: 1..<2))
            copies.append(copy)
        }
        // The reader's own book holding the same page shares it as well.
        try reader.createOrOpen(name: "own").append(chunk)
        for copy in copies {
            #expect(try copy.pages(in: 0..<2) == [testPage(4), chunk])
            try copy.verify()
        }
        #expect(try RawSQLite.integer(readerDir.databaseFile, "SELECT count(*) FROM blob") == 1)
        #expect(try RawSQLite.integer(authorDir.databaseFile, "SELECT count(*) FROM blob") == 1)
    }

    /// `INSERT OR IGNORE` of a page row that is there already: the bytes' row added for it
    /// is removed again, while one that other rows name stays.
    @Test func anIgnoredInsertLeavesNoBytesBehind() throws {
        let dir = TemporaryDirectory("shared-ignore")
        defer { dir.remove() }
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "a")
        let held = testPage(5, size: 64 << 10)
        try book.append(held)
        let other = testPage(6, size: 64 << 10)
        try store.withState(book.id) { state, db in
            try db.transaction {
                for page in [other, held] {
                    var peaks: [TreeNode] = []
                    try withUnsafeTemporaryAllocation(byteCount: Book.treeBufferSize, alignment: 8) { tree in
                        try page.withUnsafeBytes { data in
                            let count = Book.extend(&peaks, with: data, at: 0, tree: tree).written
                            try db.insertPage(book: state.number, index: 0, tree: UnsafeRawBufferPointer(rebasing: tree[..<count]),
                                              data: data, ignoreExisting: true)
                        }
                    }
                }
            }
        }
        #expect(try book.get(0) == held)
        store.close()
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM blob") == 1)
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM page") == 1)
    }

    @Test func damagedReferencesAreTypedErrorsNamingTheFile() throws {
        let dir = TemporaryDirectory("shared-damage")
        defer { dir.remove() }
        var store = try openStore(dir)
        let book = try store.createOrOpen(name: "a")
        try book.append(contentsOf: [testPage(1, size: 100 << 10), testPage(2, size: 100 << 10), testPage(3)])
        let id = book.id
        store.close()

        /// Reading fails with the damage, or (`readable`) only `verify()` finds it.
        func expectCorrupt(_ detail: String, _ damage: String, readable: Bool = false) throws {
            let copy = TemporaryDirectory("shared-damage-copy")
            defer { copy.remove() }
            try FileManager.default.removeItem(atPath: copy.path)
            try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
            try RawSQLite.execute(copy.databaseFile, damage)
            let damaged = try openStore(copy)
            defer { damaged.close() }
            let book = try #require(try damaged.book(id: id))
            let reads: [() throws -> Void] = [{ _ = try book.get(0) }, { _ = try book.pages(in: 0..<3) }]
            if readable { for read in reads { try read() } }
            for read in (readable ? [] : reads) + [{ try book.verify() }] {
                let error = try #require(throws: BooksError.self) { try read() }
                #expect(error.code == .corruptDatabase)
                #expect(error.description.contains(detail))
                #expect(error.description.contains(copy.databaseFile))
            }
        }
        try expectCorrupt("which the store lacks", "DELETE FROM blob WHERE id = (SELECT blob FROM page WHERE key = (SELECT min(key) FROM page))")
        // Bytes changed in the shared tail: the page no longer hashes to its leaf.
        try expectCorrupt("do not match", "UPDATE blob SET data = CAST(x'00' || substr(data, 2) AS BLOB) WHERE id = (SELECT min(id) FROM blob)", readable: true)
        store = try openStore(dir)
        store.close()
    }
}

/// `Book.append(count:_:)`: a batch made a page at a time, reading the store as it goes.
@Suite("Appending a batch made page by page") struct StreamedAppendTests {
    @Test func pagesAreMadeInOrderAndMayReadTheStore() throws {
        let dir = TemporaryDirectory("streamed")
        defer { dir.remove() }
        let store = try openStore(dir)
        defer { store.close() }
        let source = try store.createOrOpen(name: "source")
        try source.append(contentsOf: (0..<5).map { testPage($0, size: 100 << 10) })
        let copy = try store.createOrOpen(name: "copy")
        try copy.append(testPage(99))
        var seen: [UInt64] = []
        var made: [[UInt8]] = []
        let range = try copy.append(count: 6) { index, previous, reading in
            seen.append(index)
            // The leaf hash of the page made before, in this batch only.
            #expect(previous == made.last.map { PageHash.leaf($0) })
            // This book's pages before the batch, and any other book's.
            let page = index == 1 ? try #require(try reading.page(0, of: copy.id)) : try #require(try reading.page(index - 2, of: source.id))
            if index > 1 { #expect(try reading.page(index, of: copy.id) == nil) }
            made.append(page)
            return page
        }
        #expect(range == 1..<7 && seen == Array(1..<7))
        #expect(try copy.pages(in: 0..<7) == [testPage(99), testPage(99)] + (0..<5).map { testPage($0, size: 100 << 10) })
        try copy.verify()
        // The five copies share their tails with the source's pages.
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM blob") == 5)
    }

    @Test func aFailureMidwayStoresNothingOfTheBatch() throws {
        let dir = TemporaryDirectory("streamed-fail")
        defer { dir.remove() }
        let store = try openStore(dir)
        defer { store.close() }
        let book = try store.createOrOpen(name: "book")
        try book.append(testPage(0))
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try book.append(count: 3) { index, _, _ in
                guard index < 3 else { throw Stop() }
                return testPage(index, size: 200 << 10)
            }
        }
        let error = #expect(throws: BooksError.self) {
            try book.append(count: 2) { index, _, _ in testPage(index, size: index == 1 ? 100 : Book.maximumPageSize + 1) }
        }
        #expect(error?.code == .pageTooLarge)
        #expect(book.length == 1)
        try book.append(testPage(1))
        #expect(try book.pages(in: 0..<2) == [testPage(0), testPage(1)])
        try book.verify()
        store.close()
        #expect(try RawSQLite.integer(dir.databaseFile, "SELECT count(*) FROM blob") == 0)
    }
}
