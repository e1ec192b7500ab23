/// Reads and writes of the store's tables (PROTOCOL.md §4). Every function runs inside the
/// store's lock; the ones that write are called inside a transaction.
extension SQLiteDatabase {
    func insertBook(key: [UInt8], name: String?, writable: Bool) throws -> Int64 {
        let s = try statement("INSERT INTO book (key, name, writable) VALUES (?, ?, ?)")
        s.bind(1, key)
        s.bind(2, name)
        s.bind(3, Int64(writable ? 1 : 0))
        try s.run()
        let find = try statement("SELECT id FROM book WHERE key = ?")
        defer { find.reset() }
        find.bind(1, key)
        guard try find.step() else { throw BooksError(.storage, "book row vanished after insert", file: path) }
        return find.int64(0)
    }

    func updateBook(number: Int64, name: String?, writable: Bool) throws {
        let s = try statement("UPDATE book SET name = ?, writable = ? WHERE id = ?")
        s.bind(1, name)
        s.bind(2, Int64(writable ? 1 : 0))
        s.bind(3, number)
        try s.run()
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
    /// other tree node: every node is completed by exactly one page.
    func insertPage(book: Int64, index: UInt64, tree: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer, ignoreExisting: Bool) throws {
        let s = try statement(ignoreExisting
            ? "INSERT OR IGNORE INTO page (book, idx, tree, data) VALUES (?, ?, ?, ?)"
            : "INSERT INTO page (book, idx, tree, data) VALUES (?, ?, ?, ?)")
        s.bind(1, book)
        s.bind(2, index)
        s.bind(3, tree)
        s.bind(4, data)
        try s.run()
    }

    /// A tree node a reader learnt from a proof that no page row it holds carries.
    func insertNode(book: Int64, node: TreeNode) throws {
        let s = try statement("INSERT OR IGNORE INTO node (book, idx, hash) VALUES (?, ?, ?)")
        s.bind(1, book)
        s.bind(2, node.index)
        s.bind(3, node.hash.bytes)
        try s.run()
    }

    func insertRoot(book: Int64, root: SignedRoot) throws {
        let s = try statement("INSERT OR IGNORE INTO root (book, length, hash, signature) VALUES (?, ?, ?, ?)")
        s.bind(1, book)
        s.bind(2, root.length)
        s.bind(3, root.rootHash.bytes)
        s.bind(4, root.signature)
        try s.run()
    }

    /// The hash of tree node `index`: from the page row that completes it, else from the
    /// node table; nil when not held.
    func node(book: Int64, index: UInt64) throws -> PageHash? {
        let page = FlatTree.rightSpan(index) >> 1
        let slot = FlatTree.depth(index)
        let s = try statement("SELECT tree FROM page WHERE book = ? AND idx = ?")
        defer { s.reset() }
        s.bind(1, book)
        s.bind(2, page)
        if try s.step() {
            let found: [UInt8]? = s.withBlob(0) { tree in
                let start = slot * PageHash.length
                guard tree.count >= start + PageHash.length else { return nil }
                return Array(tree[start..<(start + PageHash.length)])
            }
            if let found { return PageHash(unchecked: found) }
        }
        let n = try statement("SELECT hash FROM node WHERE book = ? AND idx = ?")
        defer { n.reset() }
        n.bind(1, book)
        n.bind(2, index)
        guard try n.step() else { return nil }
        let bytes = n.blob(0)
        guard bytes.count == PageHash.length else {
            throw BooksError(.corruptDatabase, "tree node \(index) has \(bytes.count) bytes", file: path)
        }
        return PageHash(unchecked: bytes)
    }

    func page(book: Int64, index: UInt64) throws -> [UInt8]? {
        let s = try statement("SELECT data FROM page WHERE book = ? AND idx = ?")
        defer { s.reset() }
        s.bind(1, book)
        s.bind(2, index)
        guard try s.step() else { return nil }
        return s.blob(0)
    }

    /// Visits the held pages of `range` in order with their tree column and bytes.
    func forEachPage(book: Int64, in range: Range<UInt64>,
                     _ body: (UInt64, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        let s = try statement("SELECT idx, tree, data FROM page WHERE book = ? AND idx >= ? AND idx < ? ORDER BY idx")
        defer { s.reset() }
        s.bind(1, book)
        s.bind(2, range.lowerBound)
        s.bind(3, range.upperBound)
        while try s.step() {
            let index = s.uint64(0)
            try s.withBlob(1) { tree in try s.withBlob(2) { data in try body(index, tree, data) } }
        }
    }

    func heldPages(book: Int64) throws -> PageRanges {
        let s = try statement("SELECT idx FROM page WHERE book = ? ORDER BY idx")
        defer { s.reset() }
        s.bind(1, book)
        var ranges: [Range<UInt64>] = []
        while try s.step() {
            let index = s.uint64(0)
            if let last = ranges.last, last.upperBound == index {
                ranges[ranges.count - 1] = last.lowerBound..<(index + 1)
            } else {
                ranges.append(index..<(index + 1))
            }
        }
        return PageRanges(ranges)
    }

    private func signedRoot(from s: SQLiteStatement, id: BookID, lengthColumn: Int32) throws -> SignedRoot {
        let hash = s.blob(lengthColumn + 1)
        guard hash.count == PageHash.length else {
            throw BooksError(.corruptDatabase, "a signed root of book \(id.hex.prefix(16))… has a \(hash.count)-byte hash", file: path)
        }
        return SignedRoot(book: id, length: s.uint64(lengthColumn), rootHash: PageHash(unchecked: hash), signature: s.blob(lengthColumn + 2))
    }

    func latestRoot(book: Int64, id: BookID) throws -> SignedRoot? {
        let s = try statement("SELECT length, hash, signature FROM root WHERE book = ? ORDER BY length DESC LIMIT 1")
        defer { s.reset() }
        s.bind(1, book)
        guard try s.step() else { return nil }
        return try signedRoot(from: s, id: id, lengthColumn: 0)
    }

    func root(book: Int64, id: BookID, length: UInt64) throws -> SignedRoot? {
        let s = try statement("SELECT length, hash, signature FROM root WHERE book = ? AND length = ?")
        defer { s.reset() }
        s.bind(1, book)
        s.bind(2, length)
        guard try s.step() else { return nil }
        return try signedRoot(from: s, id: id, lengthColumn: 0)
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
