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
        // Answers whose bytes are all on disk need no check any more.
        let done = try statement("DELETE FROM page_file_write WHERE at + size <= ?")
        done.bind(1, Int64(durable))
        try done.run()
        pageFile.recorded = durable
    }

    /// Records that the bytes of an answer's pages of book `number` in `pages` were written at
    /// `at` (`size` bytes), in the answer's transaction: until the file is synced past them,
    /// the check at open reads those pages' rows (`checkPageFile`).
    func recordPageFileWrite(at: UInt64, size: Int, book number: Int64, pages: Range<UInt64>) throws {
        let s = try statement("INSERT OR REPLACE INTO page_file_write (at, size, book, first, count) VALUES (?, ?, ?, ?, ?)")
        s.bind(1, Int64(at))
        s.bind(2, Int64(size))
        s.bind(3, number)
        s.bind(4, pages.lowerBound)
        s.bind(5, UInt64(pages.count))
        try s.run()
    }

    /// Checks every page row naming bytes of the page file beyond the end recorded as on
    /// disk — the rows of the answers `page_file_write` lists — : its bytes must be there and
    /// hash to the leaf its row keeps. A row whose bytes
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
        var lost: [(key: Int64, tree: [UInt8])] = []
        var checked = 0
        func check(_ s: SQLiteStatement) throws {
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
        // The answers written beyond the synced end, each a key range of one book.
        var runs: [(at: Int64, size: Int64, book: Int64, first: Int64, count: Int64)] = []
        if pageFile.end >= synced {
            let list = try statement("SELECT at, size, book, first, count FROM page_file_write WHERE at + size > ?")
            list.bind(1, Int64(synced))
            do {
                defer { list.reset() }
                while try list.step() { runs.append((list.int64(0), list.int64(1), list.int64(2), list.int64(3), list.int64(4))) }
            }
            let rows = try statement("SELECT key, tree, at, size FROM page WHERE key >= ? AND key < ? AND at >= ? AND at < ?")
            for run in runs where (0..<PageKey.maximumBooks).contains(run.book) && run.first >= 0 && run.count >= 0 {
                let first = min(UInt64(run.first), PageKey.maximumPages)
                let end = min(first + min(UInt64(run.count), PageKey.maximumPages), PageKey.maximumPages)
                let base = PageKey.key(book: run.book, page: 0)
                rows.bind(1, base + Int64(first))
                rows.bind(2, base + Int64(end))
                rows.bind(3, run.at)
                rows.bind(4, run.at &+ run.size)
                try check(rows)
            }
        } else {
            // A file shorter than the end recorded as on disk lost bytes it had (cut short or
            // replaced by hand): every row that may reach past its end is checked — from one
            // largest page before it, as no row in the file is longer. Damage, so rare: the
            // page table is read whole.
            let start = pageFile.end - min(pageFile.end, UInt64(Book.sharedPageThreshold))
            let rows = try statement("SELECT key, tree, at, size FROM page WHERE at >= ?")
            rows.bind(1, Int64(start))
            try check(rows)
        }
        var given: [Int64: [UInt64]] = [:]
        if !lost.isEmpty {
            try transaction {
                for (key, tree) in lost {
                    try giveUpPage(key: key, tree: tree)
                    given[key >> Int64(PageKey.indexBits), default: []].append(PageKey.page(ofKey: key))
                }
            }
        }
        if checked > 0 || !runs.isEmpty || pageFile.end != synced {
            // Everything checked, and on disk from here: no answer is left to check.
            try pageFile.sync()
            try transaction {
                try execute("DELETE FROM page_file_write")
                try recordPageFileSynced(force: true)
            }
        }
        return given
    }
}

extension SQLiteDatabase {
    /// Gives up the page row `key`, whose `tree` column is given, when its bytes in the page
    /// file are lost (§4.10): its tree nodes — its leaf, then the parents it completes — go
    /// to the `node` table, which its neighbours' proofs need, and the row is deleted: the
    /// page is no longer held and is fetched again. A `tree` of another shape is damaged:
    /// none of its hashes is kept. Inside a write transaction.
    func giveUpPage(key: Int64, tree: [UInt8]) throws {
        let book = key >> Int64(PageKey.indexBits)
        let nodes = FlatTree.completed(byPage: PageKey.page(ofKey: key))
        if tree.count == nodes.count * PageHash.length {
            for (depth, node) in nodes.enumerated() {
                let hash = tree.withUnsafeBytes {
                    PageHash(copying: UnsafeRawBufferPointer(rebasing: $0[(depth * PageHash.length)..<((depth + 1) * PageHash.length)]))
                }
                try insertNode(book: book, node: TreeNode(index: node, hash: hash))
            }
        }
        let delete = try statement("DELETE FROM page WHERE key = ?")
        delete.bind(1, key)
        try delete.run()
    }
}
