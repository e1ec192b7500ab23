/// `verify()`: re-checks a stored book from the disk up — every held page against its
/// tree nodes, the nodes against each other up to the peaks, the peaks against the latest
/// signed root and that root against the author's signature. Finds damage that SQLite
/// cannot see (a flipped bit in a page or a hash); throws `.corruptDatabase` naming the
/// file and what differs.
extension Book {
    public func verify() throws {
        try store.withState(id) { state, db in
            guard let latest = state.latest else {
                guard state.held.isEmpty else { throw corrupt("pages are held but no signed root is") }
                return
            }
            guard latest.isValid else { throw corrupt("the latest signed root (length \(latest.length)) does not verify") }
            let length = latest.length
            guard (state.held.ranges.last?.upperBound ?? 0) <= length else {
                throw corrupt("pages beyond the signed length \(length) are held")
            }
            let peaks: [TreeNode]
            if state.held.contiguousCount == length {
                peaks = try rebuildWhole(length: length, state: state, db: db)
            } else {
                peaks = try FlatTree.roots(length: length).map { TreeNode(index: $0, hash: try checkSparse($0, state: state, db: db)) }
            }
            guard PageHash.root(peaks: peaks) == latest.rootHash else {
                throw corrupt("the tree does not match the signed root of length \(length)")
            }
        }
    }

    private func corrupt(_ what: String) -> BooksError {
        BooksError(.corruptDatabase, "book \(id.hex.prefix(16))…: \(what)", file: store.file)
    }

    /// Every page held: rebuild the tree page by page, as the author did, comparing each
    /// page row's stored nodes with the recomputed ones.
    private func rebuildWhole(length: UInt64, state: BookStore.BookState, db: SQLiteDatabase) throws -> [TreeNode] {
        var peaks: [TreeNode] = []
        var expected: UInt64 = 0
        try withUnsafeTemporaryAllocation(byteCount: Book.treeBufferSize, alignment: 8) { tree in
            try db.forEachPage(book: state.number, in: 0..<length) { index, stored, data in
                guard index == expected else { throw corrupt("page \(expected) is missing") }
                expected += 1
                let (count, leaf) = Book.extend(&peaks, with: data, at: index, tree: tree)
                let computed = UnsafeRawBufferPointer(rebasing: tree[..<count])
                // A page whose bytes are in the page file keeps its leaf whatever its size (§4.10).
                let keepsLeaf = stored.count == count + PageHash.length && data.count <= Book.storedLeafThreshold
                let matches = keepsLeaf
                    ? leaf.withUnsafeBytes { $0.elementsEqual(stored[..<PageHash.length]) } && computed.elementsEqual(stored[PageHash.length...])
                    : computed.elementsEqual(stored)
                guard matches else {
                    throw corrupt("page \(index) or its tree nodes do not match")
                }
                return true
            }
        }
        guard expected == length else { throw corrupt("pages \(expected)..<\(length) are missing") }
        return peaks
    }

    /// Sparse: recompute each subtree that holds pages from those pages; use the stored
    /// node for a subtree without any, and check every stored node on the way.
    private func checkSparse(_ index: UInt64, state: BookStore.BookState, db: SQLiteDatabase) throws -> PageHash {
        let covered = FlatTree.pages(index)
        let stored = try db.node(book: state.number, index: index)
        if state.held.missing(in: covered) == [covered] {
            guard let stored else { throw corrupt("tree node \(index) is missing") }
            return stored
        }
        let hash: PageHash
        if FlatTree.depth(index) == 0 {
            guard let page = try db.page(book: state.number, index: covered.lowerBound) else {
                throw corrupt("page \(covered.lowerBound) is missing")
            }
            hash = PageHash.leaf(page)
        } else {
            let (left, right) = FlatTree.children(index)
            hash = PageHash.parent(try checkSparse(left, state: state, db: db), try checkSparse(right, state: state, db: db))
        }
        if let stored, stored != hash { throw corrupt("tree node \(index) does not match its pages") }
        return hash
    }
}
