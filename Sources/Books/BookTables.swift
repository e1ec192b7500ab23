import Sodium

/// Reads and writes of the store's tables (PROTOCOL.md §4). Every function runs inside the
/// store's lock; the ones that write are called inside a transaction.
///
/// A page row's key is `book number << 40 | page index`: one integer primary key, so a
/// page is one insert into one B-tree, as in the plain-SQLite floor of the benchmark, and
/// the pages of a book are one key range.
enum PageKey {
    static let indexBits: UInt64 = 40
    /// Pages per book: 2^40, about 10^12.
    static let maximumPages: UInt64 = 1 << indexBits
    /// Book numbers (SQLite rowids of `book`) stay below 2^23 so that keys fit in 63 bits.
    static let maximumBooks: Int64 = 1 << 23

    static func key(book: Int64, page: UInt64) -> Int64 {
        Int64(bitPattern: (UInt64(book) << indexBits) | page)
    }

    static func page(ofKey key: Int64) -> UInt64 { UInt64(key) & (maximumPages - 1) }
}

extension SQLiteDatabase {
    func insertBook(key: [UInt8], name: String?, writable: Bool) throws -> Int64 {
        try checkWritable()
        let s = try statement("INSERT INTO book (key, name, writable) VALUES (?, ?, ?)")
        s.bind(1, key)
        s.bind(2, name)
        s.bind(3, Int64(writable ? 1 : 0))
        try s.run()
        let find = try statement("SELECT id FROM book WHERE key = ?")
        defer { find.reset() }
        find.bind(1, key)
        guard try find.step() else { throw BooksError(.storage, "book row vanished after insert", file: path) }
        let number = find.int64(0)
        guard number < PageKey.maximumBooks else {
            // Not left behind (no transaction holds it): a store refuses such a row at open.
            find.reset()
            let undo = try statement("DELETE FROM book WHERE id = ?")
            undo.bind(1, number)
            try undo.run()
            throw BooksError(.storage, "a store holds fewer than \(PageKey.maximumBooks) books", file: path, limit: Int(PageKey.maximumBooks))
        }
        return number
    }

    func updateBook(number: Int64, name: String?, writable: Bool) throws {
        try checkWritable()
        let s = try statement("UPDATE book SET name = ?, writable = ? WHERE id = ?")
        s.bind(1, name)
        s.bind(2, Int64(writable ? 1 : 0))
        s.bind(3, number)
        try s.run()
    }

    /// Deletes everything the store holds of book `number` but its `book` row — page rows
    /// (and the `blob` rows of large pages no other page row names), tree nodes, signed
    /// roots, fork proofs — and marks the row read-only (PROTOCOL.md §4.7).
    /// Called inside one transaction, so a crash leaves the book as it was or given up.
    ///
    /// Returns where its pages' bytes lie in the page file (§4.10), for the caller to give
    /// back (`PageFile.free`) once the transaction has committed.
    @discardableResult
    func dropHistory(book number: Int64, name: String?) throws -> [Range<UInt64>] {
        let blobs = try blobsUsed(book: number)
        let filed = try pageFileRanges(book: number)
        let pages = try statement("DELETE FROM page WHERE key >= ? AND key < ?")
        pages.bind(1, PageKey.key(book: number, page: 0))
        pages.bind(2, PageKey.key(book: number + 1, page: 0))
        try pages.run()
        // Bytes no other book's page names go with the last page naming them (§4.9).
        for blob in blobs { try dropBlobIfUnused(blob) }
        for sql: StaticString in ["DELETE FROM node WHERE book = ?", "DELETE FROM root WHERE book = ?",
                                  "DELETE FROM fork WHERE book = ?"] {
            let s = try statement(sql)
            s.bind(1, number)
            try s.run()
        }
        try updateBook(number: number, name: name, writable: false)
        return filed
    }

    /// Where the bytes of book `number`'s pages lie in the page file.
    func pageFileRanges(book number: Int64) throws -> [Range<UInt64>] {
        let s = try statement("SELECT at, size FROM page WHERE key >= ? AND key < ? AND at IS NOT NULL")
        defer { s.reset() }
        s.bind(1, PageKey.key(book: number, page: 0))
        s.bind(2, PageKey.key(book: number + 1, page: 0))
        var ranges: [Range<UInt64>] = []
        while try s.step() {
            let at = s.int64(0), size = s.int64(1)
            if at >= 0, size > 0 { ranges.append(UInt64(at)..<(UInt64(at) + UInt64(size))) }
        }
        return ranges
    }

    /// Deletes book `number` and everything the store holds of it: its history
    /// (`dropHistory`) and its `book` row, so its name and key are gone too (PROTOCOL.md
    /// §4.8). Called inside one transaction.
    @discardableResult
    func deleteBook(number: Int64) throws -> [Range<UInt64>] {
        let filed = try dropHistory(book: number, name: nil)
        let s = try statement("DELETE FROM book WHERE id = ?")
        s.bind(1, number)
        try s.run()
        return filed
    }

    /// The book numbers that the page, node, root and fork tables hold rows of. Found with
    /// one index seek per book in each table (pages are never scanned: their rows hold the
    /// page bytes); the fork table, a few rows at most, is read whole.
    func referencedBookNumbers() throws -> Set<Int64> {
        var numbers: Set<Int64> = []
        let seeks: [(sql: StaticString, key: (Int64) -> Int64, book: (Int64) -> Int64)] = [
            ("SELECT key FROM page WHERE key >= ? ORDER BY key LIMIT 1",
             { PageKey.key(book: $0, page: 0) }, { Int64(UInt64(bitPattern: $0) >> PageKey.indexBits) }),
            ("SELECT book FROM node WHERE book >= ? ORDER BY book LIMIT 1", { $0 }, { $0 }),
            ("SELECT book FROM root WHERE book >= ? ORDER BY book LIMIT 1", { $0 }, { $0 }),
        ]
        for seek in seeks {
            let s = try statement(seek.sql)
            defer { s.reset() }
            var next: Int64 = 0
            while next < PageKey.maximumBooks {
                s.reset()
                s.bind(1, seek.key(next))
                guard try s.step() else { break }
                let book = seek.book(s.int64(0))
                numbers.insert(book)
                // A number no book can have ends the seek (it is reported as an orphan; one
                // near Int64.max made `book + 1` trap).
                guard book < PageKey.maximumBooks else { break }
                next = max(book, next) + 1
            }
        }
        let forks = try statement("SELECT DISTINCT book FROM fork")
        defer { forks.reset() }
        while try forks.step() { numbers.insert(forks.int64(0)) }
        return numbers
    }

    struct BookRow {
        var number: Int64
        var key: [UInt8]
        var name: String?
        var writable: Bool
    }

    func bookRows() throws -> [BookRow] {
        let s = try statement("SELECT id, key, name, writable FROM book ORDER BY id")
        defer { s.reset() }
        var rows: [BookRow] = []
        while try s.step() {
            rows.append(BookRow(number: s.int64(0), key: s.blob(1), name: s.text(2), writable: s.int64(3) != 0))
        }
        return rows
    }

    /// A page row: the page bytes and `tree`, the hashes of the nodes the page completes
    /// (`FlatTree.completed(byPage:)`), 32 bytes each, leaf first. An author stores no
    /// other tree node: every node is completed by exactly one page. A page of
    /// `Book.sharedPageThreshold` bytes or more keeps its tail in `blob` (`bindData`).
    func insertPage(book: Int64, index: UInt64, tree: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer, ignoreExisting: Bool) throws {
        let s = try ignoreExisting
            ? statement("INSERT OR IGNORE INTO page (key, tree, data, blob) VALUES (?, ?, ?, ?)")
            : statement("INSERT INTO page (key, tree, data, blob) VALUES (?, ?, ?, ?)")
        try insertPage(s, book: book, index: index, tree: tree, data: data)
    }

    /// The author's append loop fetches the statement once per batch and calls this per
    /// page: every binding is set again, so no reset of the bindings is needed.
    func insertPage(_ s: SQLiteStatement, book: Int64, index: UInt64, tree: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) throws {
        s.bind(1, PageKey.key(book: book, page: index))
        s.bindBorrowed(2, tree)
        try bindData(s, data: data, dataAt: 3, blobAt: 4) { try s.run() }
    }

    /// A page row whose bytes are in the page file at `at` (§4.10): `data` empty, the leaf
    /// hash first in `tree`. A row already held is left as it is.
    func insertFilePage(book: Int64, index: UInt64, tree: UnsafeRawBufferPointer, at offset: UInt64, size: Int) throws {
        let s = try statement("INSERT OR IGNORE INTO page (key, tree, data, at, size) VALUES (?, ?, x'', ?, ?)")
        s.bind(1, PageKey.key(book: book, page: index))
        s.bindBorrowed(2, tree)
        s.bind(3, Int64(offset))
        s.bind(4, Int64(size))
        try s.run()
    }

    func appendPageStatement() throws -> SQLiteStatement {
        try statement("INSERT INTO page (key, tree, data, blob) VALUES (?, ?, ?, ?)")
    }

    /// The last page of an author's batch carries the batch's signed root in its row
    /// (`root` = root hash ‖ signature): a single-page append then writes one row of one
    /// table, which keeps a durable append close to a plain insert.
    func insertPage(book: Int64, index: UInt64, tree: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer, signedRoot: SignedRoot) throws {
        let s = try statement("INSERT INTO page (key, tree, data, root, blob) VALUES (?, ?, ?, ?, ?)")
        s.bind(1, PageKey.key(book: book, page: index))
        s.bindBorrowed(2, tree)
        s.bind(4, signedRoot.rootHash.bytes + signedRoot.signature)
        try bindData(s, data: data, dataAt: 3, blobAt: 5) { try s.run() }
    }

    /// Binds a page's bytes to a page row insert and runs `insert`: a small page inline
    /// (`blob` NULL); a large one split at a multiple of `Book.sharedTailAlignment` bytes
    /// from its end — the head (fewer than that many bytes) in `data`, the tail in the
    /// `blob` row found by the tail's hash, or inserted (§4.9). A `blob` row inserted for a
    /// page row that was then not inserted (`OR IGNORE` of a held page) is removed again.
    private func bindData(_ s: SQLiteStatement, data: UnsafeRawBufferPointer,
                          dataAt: Int32, blobAt: Int32, insert: () throws -> Void) throws {
        guard data.count >= Book.sharedPageThreshold else {
            s.bindBorrowed(dataAt, data)
            s.bind(blobAt, nil as Int64?)
            return try insert()
        }
        let split = data.count % Book.sharedTailAlignment
        let tail = UnsafeRawBufferPointer(rebasing: data[split...])
        let hash = BLAKE2b.hash(tail, outputLength: PageHash.length)
        let find = try statement("SELECT id FROM blob WHERE hash = ?")
        find.bind(1, hash)
        let held: Int64? = try find.step() ? find.int64(0) : nil
        find.reset()
        let number: Int64
        if let held {
            number = held
        } else {
            let add = try statement("INSERT INTO blob (hash, data) VALUES (?, ?)")
            add.bind(1, hash)
            add.bindBorrowed(2, tail)
            try add.run()
            number = lastInsertRowID
        }
        s.bindBorrowed(dataAt, UnsafeRawBufferPointer(rebasing: data[..<split]))
        s.bind(blobAt, number)
        try insert()
        if held == nil && changes == 0 { try dropBlobIfUnused(number) }
    }

    /// Deletes `blob` row `number` unless a page row still names it.
    func dropBlobIfUnused(_ number: Int64) throws {
        let drop = try statement("DELETE FROM blob WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM page WHERE blob = ?1)")
        drop.bind(1, number)
        try drop.run()
    }

    /// The `blob` rows that book `number`'s page rows name.
    func blobsUsed(book number: Int64) throws -> Set<Int64> {
        let s = try statement("SELECT blob FROM page WHERE key >= ? AND key < ? AND blob IS NOT NULL")
        defer { s.reset() }
        s.bind(1, PageKey.key(book: number, page: 0))
        s.bind(2, PageKey.key(book: number + 1, page: 0))
        var numbers: Set<Int64> = []
        while try s.step() { numbers.insert(s.int64(0)) }
        return numbers
    }

    /// A tree node a reader learnt from a proof that no page row it holds carries.
    func insertNode(book: Int64, node: TreeNode) throws {
        let s = try statement("INSERT OR IGNORE INTO node (book, idx, hash) VALUES (?, ?, ?)")
        s.bind(1, book)
        s.bind(2, node.index)
        node.hash.withUnsafeBytes { s.bind(3, $0) }
        try s.run()
    }

    func hasReceivedRoots(book: Int64) throws -> Bool {
        let s = try statement("SELECT 1 FROM root WHERE book = ? LIMIT 1")
        defer { s.reset() }
        s.bind(1, book)
        return try s.step()
    }

    func insertRoot(book: Int64, root: SignedRoot) throws {
        let s = try statement("INSERT OR IGNORE INTO root (book, length, hash, signature) VALUES (?, ?, ?, ?)")
        s.bind(1, book)
        s.bind(2, root.length)
        root.rootHash.withUnsafeBytes { s.bind(3, $0) }
        s.bind(4, root.signature)
        try s.run()
    }

    /// The hash of tree node `index`: from the page row that completes it, else from the
    /// node table; nil when not held.
    func node(book: Int64, index: UInt64) throws -> PageHash? {
        let page = FlatTree.rightSpan(index) >> 1
        let depth = FlatTree.depth(index)
        let s = try statement("SELECT tree, data, blob, at, size FROM page WHERE key = ?")
        defer { s.reset() }
        s.bind(1, PageKey.key(book: book, page: page))
        if try s.step() {
            let parents = FlatTree.completed(byPage: page).count - 1
            let found: PageHash? = try s.withBlob(0) { tree in
                let hasLeaf = tree.count == (parents + 1) * PageHash.length
                guard hasLeaf || tree.count == parents * PageHash.length else {
                    throw BooksError(.corruptDatabase, "page \(page) has a tree column of \(tree.count) bytes", file: path)
                }
                if depth == 0 && !hasLeaf { return nil }
                let start = (hasLeaf ? depth : depth - 1) * PageHash.length
                return PageHash(copying: UnsafeRawBufferPointer(rebasing: tree[start..<(start + PageHash.length)]))
            }
            // A small page's leaf is not stored: hashing the page is cheaper than storing it.
            if let found { return found }
            return try withPageData(s, dataAt: 1, index: page) { PageHash.leaf($0) }
        }
        let n = try statement("SELECT hash FROM node WHERE book = ? AND idx = ?")
        defer { n.reset() }
        n.bind(1, book)
        n.bind(2, index)
        guard try n.step() else { return nil }
        return try n.withBlob(0) { bytes in
            guard bytes.count == PageHash.length else {
                throw BooksError(.corruptDatabase, "tree node \(index) has \(bytes.count) bytes", file: path)
            }
            return PageHash(copying: bytes)
        }
    }

    func page(book: Int64, index: UInt64) throws -> [UInt8]? {
        let s = try statement("SELECT data, blob, at, size FROM page WHERE key = ?")
        defer { s.reset() }
        s.bind(1, PageKey.key(book: book, page: index))
        guard try s.step() else { return nil }
        return try withPageData(s, dataAt: 0, index: index) { Array($0) }
    }

    /// Visits the held pages of `range` in order: index, stored tree nodes, data (views
    /// valid during the call), until `body` returns false.
    func forEachPage(book: Int64, in range: Range<UInt64>,
                     _ body: (UInt64, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let s = try statement("SELECT key, tree, data, blob, at, size FROM page WHERE key >= ? AND key < ? ORDER BY key")
        defer { s.reset() }
        s.bind(1, PageKey.key(book: book, page: range.lowerBound))
        s.bind(2, PageKey.key(book: book, page: range.upperBound))
        while try s.step() {
            let index = PageKey.page(ofKey: s.int64(0))
            guard try s.withBlob(1, { tree in try withPageData(s, dataAt: 2, index: index) { try body(index, tree, $0) } }) else { return }
        }
    }

    /// The bytes of the page in the current row of `s`, whose columns from `dataAt` on are
    /// `data, blob, at, size`: its `data` column, followed by the `blob` row it names, if
    /// any (§4.9); or its `size` bytes at `at` in the page file (§4.10) — for the duration of
    /// `body` (a view of the row, or of a copy).
    private func withPageData<R>(_ s: SQLiteStatement, dataAt: Int32, index: UInt64,
                                 _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let blobAt = dataAt + 1, at = dataAt + 2
        if !s.isNull(at) {
            let offset = s.int64(at), size = s.int64(at + 1)
            guard offset >= 0, size >= 0, size <= Book.maximumPageSize else {
                throw BooksError(.corruptDatabase, "page \(index) names \(size) bytes at offset \(offset) of the page file", file: path)
            }
            guard let pageFile else {
                throw BooksError(.corruptDatabase, "page \(index)'s bytes are in the page file \(PageFile.fileName), which the store lacks",
                                 file: path)
            }
            return try pageFile.read(at: UInt64(offset), count: Int(size), page: index, body)
        }
        guard !s.isNull(blobAt) else { return try s.withBlob(dataAt, body) }
        let number = s.int64(blobAt)
        let b = try statement("SELECT data FROM blob WHERE id = ?")
        defer { b.reset() }
        b.bind(1, number)
        guard try b.step() else {
            throw BooksError(.corruptDatabase, "page \(index) names blob \(number), which the store lacks", file: path)
        }
        return try s.withBlob(dataAt) { head in
            try b.withBlob(0) { tail in
                try withUnsafeTemporaryAllocation(byteCount: head.count + tail.count, alignment: 16) { page in
                    if !head.isEmpty { UnsafeMutableRawBufferPointer(rebasing: page[..<head.count]).copyMemory(from: head) }
                    if !tail.isEmpty { UnsafeMutableRawBufferPointer(rebasing: page[head.count...]).copyMemory(from: tail) }
                    return try body(UnsafeRawBufferPointer(page))
                }
            }
        }
    }

    func heldPages(book: Int64) throws -> PageRanges {
        let s = try statement("SELECT key FROM page WHERE key >= ? AND key < ? ORDER BY key")
        defer { s.reset() }
        s.bind(1, PageKey.key(book: book, page: 0))
        s.bind(2, PageKey.key(book: book + 1, page: 0))
        var ranges: [Range<UInt64>] = []
        while try s.step() {
            let index = PageKey.page(ofKey: s.int64(0))
            if let last = ranges.last, last.upperBound == index {
                ranges[ranges.count - 1] = last.lowerBound..<(index + 1)
            } else {
                ranges.append(index..<(index + 1))
            }
        }
        return PageRanges(ranges)
    }

    private func signedRoot(from s: SQLiteStatement, id: BookID, lengthColumn: Int32) throws -> SignedRoot {
        let hash: PageHash = try s.withBlob(lengthColumn + 1) { hash in
            guard hash.count == PageHash.length else {
                throw BooksError(.corruptDatabase, "a signed root of book \(id.hex.prefix(16))… has a \(hash.count)-byte hash", file: path)
            }
            return PageHash(copying: hash)
        }
        return SignedRoot(book: id, length: s.uint64(lengthColumn), rootHash: hash, signature: s.blob(lengthColumn + 2))
    }

    /// The signed root of the longest length held: from the root table (roots a reader
    /// verified) or from the book's last page row (roots its author signed).
    func latestRoot(book: Int64, id: BookID) throws -> SignedRoot? {
        let s = try statement("SELECT length, hash, signature FROM root WHERE book = ? ORDER BY length DESC LIMIT 1")
        defer { s.reset() }
        s.bind(1, book)
        let received = try s.step() ? try signedRoot(from: s, id: id, lengthColumn: 0) : nil
        let last = try statement("SELECT key, root FROM page WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT 1")
        defer { last.reset() }
        last.bind(1, PageKey.key(book: book, page: 0))
        last.bind(2, PageKey.key(book: book + 1, page: 0))
        var signed: SignedRoot?
        if try last.step(), !last.isNull(1) {
            signed = try pageRowRoot(last.blob(1), id: id, length: PageKey.page(ofKey: last.int64(0)) + 1)
        }
        guard let signed else { return received }
        guard let received else { return signed }
        return signed.length >= received.length ? signed : received
    }

    func root(book: Int64, id: BookID, length: UInt64) throws -> SignedRoot? {
        if length > 0 {
            let row = try statement("SELECT root FROM page WHERE key = ?")
            defer { row.reset() }
            row.bind(1, PageKey.key(book: book, page: length - 1))
            if try row.step(), !row.isNull(0) {
                return try pageRowRoot(row.blob(0), id: id, length: length)
            }
        }
        let s = try statement("SELECT length, hash, signature FROM root WHERE book = ? AND length = ?")
        defer { s.reset() }
        s.bind(1, book)
        s.bind(2, length)
        guard try s.step() else { return nil }
        return try signedRoot(from: s, id: id, lengthColumn: 0)
    }

    private func pageRowRoot(_ blob: [UInt8], id: BookID, length: UInt64) throws -> SignedRoot {
        guard blob.count == PageHash.length + 64 else {
            throw BooksError(.corruptDatabase, "the signed root in page \(length - 1) of book \(id.hex.prefix(16))… has \(blob.count) bytes", file: path)
        }
        return SignedRoot(book: id, length: length, rootHash: try PageHash(bytes: Array(blob[..<PageHash.length])),
                          signature: Array(blob[PageHash.length...]))
    }

    func insertFork(book: Int64, proof: ForkProof) throws {
        let s = try statement("""
            INSERT INTO fork (book, first_length, first_hash, first_signature, second_length, second_hash, second_signature)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        s.bind(1, book)
        s.bind(2, proof.first.length)
        s.bind(3, proof.first.rootHash.bytes)
        s.bind(4, proof.first.signature)
        s.bind(5, proof.second.length)
        s.bind(6, proof.second.rootHash.bytes)
        s.bind(7, proof.second.signature)
        try s.run()
    }

    func forks(book: Int64, id: BookID) throws -> [ForkProof] {
        let s = try statement("""
            SELECT first_length, first_hash, first_signature, second_length, second_hash, second_signature
            FROM fork WHERE book = ? ORDER BY rowid
            """)
        defer { s.reset() }
        s.bind(1, book)
        var result: [ForkProof] = []
        while try s.step() {
            result.append(ForkProof(first: try signedRoot(from: s, id: id, lengthColumn: 0),
                                    second: try signedRoot(from: s, id: id, lengthColumn: 3)))
        }
        return result
    }
}
