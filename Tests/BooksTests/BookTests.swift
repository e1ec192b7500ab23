import Books
import Sodium
import Testing

@Suite("Book") struct BookTests {
    @Test func appendAndGetRoundTrip() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "ana-bob-task")
        #expect(book.length == 0)
        #expect(book.signedRoot == nil)
        #expect(try book.get(0) == nil)
        #expect(try book.append(testPage(0)) == 0)
        #expect(try book.append(contentsOf: (1..<50).map { testPage($0) }) == 1..<50)
        #expect(try book.append([]) == 50)  // an empty page is a page
        #expect(book.length == 51)
        #expect(book.contiguousLength == 51)
        for i in UInt64(0)..<50 { #expect(try book.get(i) == testPage(i)) }
        #expect(try book.get(50) == [])
        #expect(try book.get(51) == nil)
        #expect(try book.pages(in: 10..<13) == [testPage(10), testPage(11), testPage(12)])
        #expect(try book.append(contentsOf: []) == 51..<51)
        let root = try #require(book.signedRoot)
        #expect(root.length == 51 && root.isValid && root.book == book.id)
        try book.verify()
        store.close()
    }

    @Test("withPages hands over a prefix of at most maxBytes, always the first page, from the store's copy")
    func withPagesServesABoundedPrefix() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "ana-bob-task")
        try book.append(contentsOf: (0..<10).map { testPage($0, size: 100) })
        var seen: [[UInt8]] = []
        #expect(try book.withPages(in: 2..<8, maxBytes: 350) { seen.append(Array($0)) } == 2..<5)
        #expect(seen == (2..<5).map { testPage($0, size: 100) })
        seen = []
        #expect(try book.withPages(in: 4..<6, maxBytes: 10) { seen.append(Array($0)) } == 4..<5)
        #expect(seen == [testPage(4, size: 100)])
        #expect(try book.withPages(in: 0..<10) { _ in } == 0..<10)
        #expect(try book.withPages(in: 3..<3) { _ in Issue.record("no page in an empty range") } == 3..<3)
        let error = #expect(throws: BooksError.self) { try book.withPages(in: 8..<11) { _ in } }
        #expect(error?.code == .notHeld)
        store.close()
    }

    @Test func pageOverTheMaximumSizeIsRefusedNamingTheLimit() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "big")
        try book.append([UInt8](repeating: 7, count: Book.maximumPageSize))
        let error = #expect(throws: BooksError.self) { try book.append([UInt8](repeating: 7, count: Book.maximumPageSize + 1)) }
        #expect(error?.code == .pageTooLarge)
        #expect(error?.limit == Book.maximumPageSize)
        #expect(error?.description.contains("\(Book.maximumPageSize)") == true)
        #expect(throws: BooksError(.pageTooLarge, "")) { try book.append(contentsOf: [[1], [UInt8](repeating: 0, count: Book.maximumPageSize + 1)]) }
        // Nothing of the refused batch was stored.
        #expect(book.length == 1)
        #expect(try book.get(0)?.count == Book.maximumPageSize)
        try book.verify()
        store.close()
    }

    @Test func bookOpenedWithoutItsSecretRefusesToAppend() throws {
        let author = TemporaryDirectory()
        let reader = TemporaryDirectory()
        defer { author.remove(); reader.remove() }
        let authorStore = try openStore(author, secret: 1)
        let readerStore = try openStore(reader, secret: 2)
        let written = try authorStore.createOrOpen(name: "bob-ana-task")
        try written.append(testPage(0))
        let read = try readerStore.open(id: written.id)
        #expect(!read.isWritable)
        #expect(written.isWritable)
        let error = #expect(throws: BooksError.self) { try read.append(testPage(0)) }
        #expect(error?.code == .readOnly)
        #expect(read.length == 0)
        authorStore.close()
        readerStore.close()
    }

    @Test func lengthUpdatesReachEverySubscriber() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let book = try store.createOrOpen(name: "notify")
        let first = book.lengthUpdates
        let second = book.lengthUpdates
        try book.append(testPage(0))
        var a = first.makeAsyncIterator()
        var b = second.makeAsyncIterator()
        #expect(await a.next()?.length == 1)
        #expect(await b.next()?.length == 1)
        try book.append(contentsOf: [testPage(1), testPage(2)])
        let update = await a.next()
        #expect(update?.length == 3)
        #expect(update?.contiguousLength == 3)
        #expect(update?.signedRoot == book.signedRoot)
        store.close()
        // Closing the store finishes the streams (after the newest buffered value).
        #expect(await b.next()?.length == 3)
        #expect(await b.next() == nil)
    }
}
