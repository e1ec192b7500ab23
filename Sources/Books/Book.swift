import Sodium

/// One book of a `BookStore`: an append-only list of pages, signed by its author.
///
/// A `Book` is a cheap handle (the id and the store); any number may exist for one book
/// and every call goes through the store's lock. The author's side is `append`; the
/// reader's side is `apply` (in `Book+Replication.swift`), which verifies before storing.
/// A reader may hold pages sparsely: `get` returns nil for a page not held.
public final class Book: Sendable, CustomStringConvertible {
    /// The largest page accepted, in bytes (4 MiB): large enough for attachments a
    /// messenger sends whole, small enough that a page fits in memory several times over.
    public static let maximumPageSize = 4 * 1024 * 1024
    /// The most pages a book holds, 2^40 (PROTOCOL.md §3.1): a page's index is 40 bits of
    /// its row's key (§4.3). A signed root claiming more is no book's, whoever signed it.
    public static let maximumLength: UInt64 = PageKey.maximumPages

    public let id: BookID
    public let store: BookStore

    init(id: BookID, store: BookStore) {
        self.id = id
        self.store = store
    }

    public var description: String { "Book(\(id.hex.prefix(16))…)" }

    // MARK: - State (from memory; valid after the store closes too)

    private func state<T>(_ body: (BookStore.BookState) -> T) -> T {
        store.lock.lock()
        defer { store.lock.unlock() }
        // A handle outlives a `BookStore.delete` of its book (a replication channel still
        // running when a member leaves the task, §4.8): it reads as an empty book nobody
        // writes, and its store calls throw `.unknownBook`.
        return body(store.states[id] ?? BookStore.BookState(number: -1, id: id, name: nil, keyPair: nil, latest: nil,
                                                             peaks: [], held: PageRanges(), forks: []))
    }

    /// The name (title) of the book in this store, if any.
    public var name: String? { state { $0.name } }

    /// True when this peer holds the book's secret key and may append.
    public var isWritable: Bool { state { $0.keyPair != nil } }

    /// The length of the latest verified signed root: the author's length as far as this
    /// peer knows. A reader may hold fewer pages (see `contiguousLength`, `has`).
    public var length: UInt64 { state { $0.length } }

    /// The latest signed root, nil while the book is empty. Replication pushes it to
    /// readers whenever it changes.
    public var signedRoot: SignedRoot? { state { $0.latest } }

    /// The number of pages held from page 0 without a gap.
    public var contiguousLength: UInt64 { state { $0.held.contiguousCount } }

    /// True when page `index` is held.
    public func has(_ index: UInt64) -> Bool { state { $0.held.contains(index) } }

    /// The held pages as sorted, disjoint ranges.
    public func heldRanges() -> PageRanges { state { $0.held } }

    /// The pages of `range` not held, as ranges: what a reader asks its peers for.
    public func missing(in range: Range<UInt64>) -> [Range<UInt64>] { state { $0.held.missing(in: range) } }

    /// The proof that the author signed two trees, if one was seen. A forked book is
    /// refused: appends, proofs and `apply` throw `.forked`.
    public var forkProof: ForkProof? { state { $0.forks.first } }

    /// Length changes of this book: one element after every append by the author and
    /// every verified arrival from a peer. Each call makes a new subscriber; the stream
    /// keeps only the newest value for a slow consumer and finishes when the store closes.
    public var lengthUpdates: AsyncStream<BookLength> { store.lengthUpdates(of: id) }

    // MARK: - Reading

    /// Page `index`, or nil when it is not held (beyond the length, or a sparse reader
    /// lacks it). The page was verified when it was stored; `verify()` re-checks.
    public func get(_ index: UInt64) throws -> [UInt8]? {
        try store.withState(id) { state, db in
            guard state.held.contains(index) else { return nil }
            return try db.page(book: state.number, index: index)
        }
    }

    /// The pages of `range`, all of which must be held (`.notHeld` otherwise).
    public func pages(in range: Range<UInt64>) throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(range.count)
        _ = try withPages(in: range) { result.append(Array($0)) }
        return result
    }

    /// Hands the pages of `range` to `body` in order, as views of the store's copy valid
    /// only during the call: a prefix of the range holding at most `maxBytes` bytes, but
    /// always its first page. Returns the range of the pages handed over. All of `range`
    /// must be held (`.notHeld` otherwise). A holder serves from here without copying
    /// each page into an array of its own.
    public func withPages(in range: Range<UInt64>, maxBytes: Int = .max,
                          _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Range<UInt64> {
        try store.withState(id) { state, db in
            guard state.held.containsAll(range) else {
                throw BooksError(.notHeld, "pages \(range) are not all held", file: store.file)
            }
            var served: UInt64 = 0
            var bytes = 0
            try db.forEachPage(book: state.number, in: range) { index, _, data in
                bytes += data.count
                guard served == 0 || bytes <= maxBytes else { return false }
                // No page over the maximum is ever stored (`append` and `apply` refuse one):
                // a larger one is a damaged or edited file, and served whole it would make an
                // answer of more fragments than a data message can number.
                guard data.count <= Book.maximumPageSize else {
                    throw BooksError(.corruptDatabase, "page \(index) of book \(id.hex.prefix(16))… has \(data.count) bytes, "
                                     + "over the maximum page size of \(Book.maximumPageSize)", file: store.file)
                }
                try body(data)
                served += 1
                return true
            }
            guard served == range.count || bytes > maxBytes else {
                throw BooksError(.corruptDatabase, "pages \(range) are marked held but \(UInt64(range.count) - served) are missing", file: store.file)
            }
            return range.lowerBound..<(range.lowerBound + served)
        }
    }

    // MARK: - Appending (the author)

    /// Appends one page and returns its index. Durable when it returns.
    @discardableResult
    public func append(_ page: [UInt8]) throws -> UInt64 {
        try append(contentsOf: [page]).lowerBound
    }

    /// Appends pages as one batch: one transaction holding the pages, their tree nodes
    /// and one signed root, so after a crash either all of them are there or none.
    /// Durable when it returns (the WAL is synced). Returns the indices given.
    @discardableResult
    public func append(contentsOf pages: [[UInt8]]) throws -> Range<UInt64> {
        for (i, page) in pages.enumerated() where page.count > Book.maximumPageSize {
            throw BooksError(.pageTooLarge, "page \(i) of the batch has \(page.count) bytes; the maximum page size is \(Book.maximumPageSize) bytes",
                             limit: Book.maximumPageSize)
        }
        var next = 0
        return try append(count: pages.count) { _, _, _ in
            defer { next += 1 }
            return pages[next]
        }
    }

    /// Appends `count` pages as one batch, as `append(contentsOf:)` does, making each with
    /// `page(index, previous, reading)` as it is stored, in order (`index`: where it goes in
    /// this book; `previous`: the leaf hash of the page before it in this batch, nil for the
    /// batch's first — hashed once, for the tree, not again by a caller that chains pages):
    /// a batch far larger than memory — a member's copy of a task's history with its files —
    /// holds one page at a time. `reading` reads the store's books, this one's pages before
    /// the batch included; the store is locked for the whole batch, so calls on the store
    /// from inside `page` would wait for it forever: only `reading` may be used. A thrown
    /// error, or a page over `maximumPageSize`, rolls the whole batch back.
    @discardableResult
    public func append(count: Int, _ page: (UInt64, PageHash?, BookStore.Reading) throws -> [UInt8]) throws -> Range<UInt64> {
        try store.withState(id) { state, db in
            guard let keyPair = state.keyPair else {
                throw BooksError(.readOnly, "book \(id.hex.prefix(16))… was opened without its secret key", file: store.file)
            }
            guard state.forks.isEmpty else {
                throw BooksError(.forked, "book \(id.hex.prefix(16))… is forked", file: store.file)
            }
            let start = state.length
            guard count > 0 else { return start..<start }
            guard start + UInt64(count) <= Book.maximumLength else {
                throw BooksError(.outOfRange, "a book holds at most \(Book.maximumLength) pages", file: store.file)
            }
            var peaks = state.peaks
            let end = start + UInt64(count)
            let reading = BookStore.Reading(store: store, db: db)
            let signed: SignedRoot = try db.transaction {
                let insert = try db.appendPageStatement()
                return try withUnsafeTemporaryAllocation(byteCount: Book.treeBufferSize, alignment: 8) { tree in
                    var signed: SignedRoot?
                    var previous: PageHash?
                    for offset in 0..<count {
                        let index = start + UInt64(offset)
                        let bytes = try page(index, previous, reading)
                        guard bytes.count <= Book.maximumPageSize else {
                            throw BooksError(.pageTooLarge, "page \(offset) of the batch has \(bytes.count) bytes; the maximum page size is \(Book.maximumPageSize) bytes",
                                             limit: Book.maximumPageSize)
                        }
                        try bytes.withUnsafeBytes { data in
                            let (count, leaf) = Book.extend(&peaks, with: data, at: index, tree: tree)
                            previous = leaf
                            let nodes = UnsafeRawBufferPointer(rebasing: tree[..<count])
                            if index + 1 < end {
                                try db.insertPage(insert, book: state.number, index: index, tree: nodes, data: data)
                            } else {
                                // One signature per batch, over the tree with every page in it.
                                let root = SignedRoot(signing: PageHash.root(peaks: peaks), length: end, with: keyPair)
                                try db.insertPage(book: state.number, index: index, tree: nodes, data: data, signedRoot: root)
                                signed = root
                            }
                        }
                    }
                    return signed!
                }
            }
            state.latest = signed
            state.peaks = peaks
            state.held.insert(start..<signed.length)
            store.notify(state)
            return start..<signed.length
        }
    }

    // MARK: - Giving a book up (the author)

    /// Gives up writing this book: drops every page, tree node, signed root and fork proof
    /// the store holds of it, and keeps the book — its id and its name — as a read-only book
    /// that holds nothing (PROTOCOL.md §4.7). One durable transaction: after a crash the book
    /// is as it was, or given up; never in between.
    ///
    /// For an author whose own history of the book was lost and written again from page 0
    /// (a vault restored from its key alone: a fork, §3.6), so that it can take back the
    /// version its readers hold: from here on the store is one of the book's readers, which
    /// fetches, verifies and stores what holders serve, and appends nothing (`append` throws
    /// `.readOnly`). `createOrOpen(name:)` would take the key up again, as for any read copy
    /// of one's own book; the messenger never does so for a generation it gave up (§10.3).
    /// `.readOnly` for a book this store does not write.
    public func becomeReader() throws {
        try store.withState(id) { state, db in
            guard state.keyPair != nil else {
                throw BooksError(.readOnly, "book \(id.hex.prefix(16))… is not written by this store: nothing to give up", file: store.file)
            }
            let freed = try db.transaction { try db.dropHistory(book: state.number, name: state.name) }
            db.pageFile?.free(freed)
            state.keyPair = nil
            state.latest = nil
            state.peaks = []
            state.held = PageRanges()
            state.forks = []
            store.notify(state)
        }
    }

    /// Room for the nodes one page completes: at most 1 + 40 (a book's pages < 2^40).
    static let treeBufferSize = 64 * PageHash.length

    /// Pages up to this size (1 KiB) do not store their leaf hash in their row: it is
    /// recomputed from the page when a proof needs it, which costs less than the 32 bytes
    /// per row cost on every append (PROTOCOL.md §4.4).
    public static let storedLeafThreshold = 1024

    /// Pages of this size (64 KiB) and more share their bytes within a store: a page's
    /// tail — all but its first `count % sharedTailAlignment` bytes — is stored once,
    /// however many books hold it, in a `blob` row found by the tail's hash (PROTOCOL.md
    /// §4.9). A file attached to a task goes into every book its author writes there, as
    /// 256 KiB pages that differ only in their first bytes (each book's own page head):
    /// stored once, not once per member. Smaller pages stay in their row, where one
    /// insert is all a page costs.
    public static let sharedPageThreshold = 64 * 1024

    /// A page a reader stores (`apply`) of this size (512 bytes) or more, and below
    /// `sharedPageThreshold`, has its bytes in the store's page file (PROTOCOL.md §4.10),
    /// written once, rather than in its row, written twice (the WAL, then the database).
    /// A smaller page stays in its row: the 32-byte leaf hash and the offset its row keeps
    /// then, and a read call per page read, cost more than the second write saves.
    public static let pageFileThreshold = 512

    static func goesToPageFile(size: Int) -> Bool { size >= pageFileThreshold && size < sharedPageThreshold }

    /// The tail of a large page that is shared is a multiple of this many bytes, counted
    /// from the page's end (§4.9): heads of different lengths before the same bytes (a page
    /// index written in one byte in one book, two in another) still share them.
    public static let sharedTailAlignment = 4096

    /// Adds page `index` to a tree given by its peaks, and writes to `tree` the page row's
    /// tree column: the leaf hash (only for a page over `storedLeafThreshold` bytes), then
    /// the parents the page completes, bottom up. Returns the number of bytes written, and
    /// the page's leaf hash.
    static func extend(_ peaks: inout [TreeNode], with page: UnsafeRawBufferPointer, at index: UInt64,
                       tree: UnsafeMutableRawBufferPointer) -> (written: Int, leaf: PageHash) {
        var node = FlatTree.leaf(index)
        let leaf = PageHash.leaf(page)
        var hash = leaf
        var written = 0
        func write(_ hash: PageHash) {
            hash.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: tree[written..<(written + PageHash.length)]).copyMemory(from: $0) }
            written += PageHash.length
        }
        if page.count > storedLeafThreshold { write(hash) }
        // While the new node is a right child its left sibling is the last peak: merge.
        while FlatTree.offset(node) & 1 == 1 {
            let left = peaks.removeLast()
            hash = PageHash.parent(left.hash, hash)
            node = FlatTree.parent(node)
            write(hash)
        }
        peaks.append(TreeNode(index: node, hash: hash))
        return (written, leaf)
    }
}
