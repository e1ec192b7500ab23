import Foundation

/// The page file's upkeep in the database (PROTOCOL.md §4.10): the end known on disk
/// (`page_file.synced`), and the check at open of the rows naming bytes beyond it.
extension SQLiteDatabase {
    /// The end of the page file recorded as on disk.
    func pageFileSynced() throws -> UInt64 {
        let s = try statement("SELECT synced FROM page_file WHERE id = 1")
        defer { s.reset() }
        return try s.step() ? UInt64(max(0, s.int64(0))) : 0
    }

    /// Records the end of the page file as of its last sync (`PageFile.durableEnd`) when
    /// it moved since the last record. Inside a write transaction: the row then changes with
    /// the store's next write, at no cost of a transaction of its own.
    func recordPageFileSynced(force: Bool = false) throws {
        guard let pageFile, pageFile.writable else { return }
        let durable = pageFile.durableEnd
        guard durable > pageFile.recorded || (force && durable != pageFile.recorded) else { return }
        let s = try statement("UPDATE page_file SET synced = ? WHERE id = 1")
        s.bind(1, Int64(durable))
        try s.run()
        pageFile.recorded = durable
    }

    /// Checks every page row naming bytes of the page file beyond the end recorded as on
    /// disk: its bytes must be there and hash to the leaf its row keeps. A row whose bytes
    /// were lost (a power loss took them, while its transaction had reached the disk) is
    /// no longer a held page: its tree nodes move to the `node` table — its neighbours'
    /// proofs need them — and the row goes, so the page is fetched again. Then the file is
    /// synced and its end recorded. Returns the indices of the pages given up, by book
    /// number. Runs at open, before the books are loaded; a clean close left nothing to check.
    @discardableResult
    func checkPageFile() throws -> [Int64: [UInt64]] {
        guard let pageFile, pageFile.writable else { return [:] }
        let synced = try pageFileSynced()
        pageFile.recorded = synced
        // A file shorter than the end recorded as on disk lost bytes it had (cut short or
        // replaced by hand): every row that may reach past its end is checked too — from one
        // largest page before it, as no row in the file is longer.
        let start = pageFile.end >= synced ? synced : pageFile.end - min(pageFile.end, UInt64(Book.sharedPageThreshold))
        var lost: [(key: Int64, tree: [UInt8])] = []
        var checked = 0
        let s = try statement("SELECT key, tree, at, size FROM page WHERE at >= ? ORDER BY at")
        s.bind(1, Int64(start))
        do {
            defer { s.reset() }
            while try s.step() {
                checked += 1
                let key = s.int64(0)
                let tree = s.blob(1)
                let at = s.int64(2), size = s.int64(3)
                let page = PageKey.page(ofKey: key)
                let intact: Bool
                if tree.count >= PageHash.length, at >= 0, size >= 0, size <= Book.maximumPageSize {
                    intact = (try? pageFile.read(at: UInt64(at), count: Int(size), page: page) { bytes in
                        PageHash.leaf(bytes).withUnsafeBytes { $0.elementsEqual(tree[..<PageHash.length]) }
                    }) ?? false
                } else {
                    intact = false
                }
                if !intact { lost.append((key, tree)) }
            }
        }
        var given: [Int64: [UInt64]] = [:]
        if !lost.isEmpty {
            try transaction {
                let delete = try statement("DELETE FROM page WHERE key = ?")
                for (key, tree) in lost {
                    let book = key >> Int64(PageKey.indexBits)
                    let page = PageKey.page(ofKey: key)
                    let nodes = FlatTree.completed(byPage: page)
                    // The nodes the row kept: its leaf, then the parents it completes (a row
                    // of another shape is damaged: none of its hashes is kept).
                    if tree.count == nodes.count * PageHash.length {
                        for (depth, node) in nodes.enumerated() {
                            let hash = tree.withUnsafeBytes {
                                PageHash(copying: UnsafeRawBufferPointer(rebasing: $0[(depth * PageHash.length)..<((depth + 1) * PageHash.length)]))
                            }
                            try insertNode(book: book, node: TreeNode(index: node, hash: hash))
                        }
                    }
                    delete.bind(1, key)
                    try delete.run()
                    given[book, default: []].append(page)
                }
            }
        }
        if checked > 0 || pageFile.end != synced {
            try pageFile.sync()
            if pageFile.durableEnd != synced { try transaction { try recordPageFileSynced(force: true) } }
        }
        return given
    }
}

extension BookStore {
    /// Opens the page file beside the database and hands it to `database`: for writing
    /// when the store writes, else for reading (none where the store has none).
    static func attachPageFile(to database: SQLiteDatabase, directory: String, writable: Bool) throws {
        database.pageFile = try PageFile.open(directory: directory, writable: writable)
    }
}
