import CSQLite
import Foundation

extension BookStore {
    /// Copies the store as it is at one moment to a new database file at `destination`,
    /// through SQLite's online backup on a connection of its own: the copy is one read
    /// transaction's snapshot (all of an append batch or none of it, every book as of the
    /// same instant), and appends and replication go on meanwhile. When this returns the
    /// copy is complete, checked (`PRAGMA quick_check`) and on disk (synced). A file copy
    /// of a store in use can catch the database and its WAL at different moments; this
    /// cannot. `destination` must not exist. Returns the copy's size in bytes and how many
    /// books it holds.
    ///
    /// The pages are copied `backupStepPages` at a time, all from the one snapshot (a read
    /// transaction held on the source connection from the first step to the last), and
    /// `stopped` is asked between steps: once it says true, the copy is removed and the
    /// backup fails with `.stopped`. A store opened for reading only (a full disk: the copy
    /// goes to another file system) is read through a connection that writes nothing.
    @discardableResult
    public func backup(to destination: String, stopped: () -> Bool = { false }) throws -> (bytes: UInt64, books: Int) {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw BooksError(.storage, "\(destination) exists already: a backup is written to a new file", file: destination)
        }
        try locked { _ in }  // a closed store is an error here, not an empty copy
        // Read only: counted, so that the store is not opened for writing again meanwhile
        // (`resumeWriting`): the connection takes no lock to see a writer's checkpoint by.
        let refusal = beginReadingBackup()
        defer { if refusal != nil { endReadingBackup() } }
        // No hole is punched in the page file while the copy may still name its bytes.
        let pageFile = try locked { $0.pageFile }
        pageFile?.backupBegins()
        defer { pageFile?.backupEnds() }
        let source = try refusal.map { try SQLiteDatabase(readingOnly: file, refusal: $0) }
            ?? SQLiteDatabase(path: file, create: false)
        defer { source.close() }
        let copy = try SQLiteDatabase(path: destination, create: true)
        var finished = false
        defer {
            copy.close()
            if !finished {
                for suffix in ["", "-journal", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: destination + suffix) }
            }
        }
        try copy.execute("PRAGMA synchronous = FULL")
        guard let from = source.rawHandle, let to = copy.rawHandle,
              let backup = sqlite3_backup_init(to, "main", from, "main") else {
            throw copy.failure(sqlite3_errcode(copy.rawHandle))
        }
        // One snapshot: a read transaction opened on the source before the first step and
        // held to the last, so that no step starts one of its own (which would see later
        // commits and make SQLite start the copy again). A lock held longer than the
        // connections' busy timeout fails the backup (`.storage`).
        let rc: Int32
        do {
            try source.execute("BEGIN")
            defer { try? source.execute("ROLLBACK") }
            _ = try source.pragmaInteger("user_version")
            var step = sqlite3_backup_step(backup, BookStore.backupStepPages)
            while step == SQLITE_OK {
                if stopped() { throw BooksError(.stopped, "the backup was stopped part-way: its copy is removed", file: destination) }
                step = sqlite3_backup_step(backup, BookStore.backupStepPages)
            }
            rc = step
        } catch {
            sqlite3_backup_finish(backup)
            throw error
        }
        let finish = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE else { throw SQLiteDatabase.error(rc, String(cString: sqlite3_errstr(rc)), path: file) }
        guard finish == SQLITE_OK else { throw copy.failure(finish) }
        try inlinePages(into: copy, from: pageFile, stopped: stopped)
        // The copy carries the store's header, WAL mode included: leave it whole in one
        // file (checkpointed, the WAL emptied) so that copying or moving it later is safe.
        _ = try copy.pragmaText("wal_checkpoint(TRUNCATE)")
        let check = try copy.pragmaText("quick_check")
        guard check == "ok" else {
            throw BooksError(.corruptDatabase, "the copy failed its check: \(check ?? "no answer")", file: destination)
        }
        let books = try copy.bookRows().count
        finished = true
        var info = stat()
        return (stat(destination, &info) == 0 ? UInt64(info.st_size) : 0, books)
    }

    /// Gives the copy's rows that name bytes of the page file (§4.10) those bytes, each
    /// checked against the leaf its row keeps, in the shape of a version-2 row (§4.4: a page
    /// of 1024 bytes or fewer keeps no leaf); the copy names no page file (`synced` 0, no
    /// `page_file_write` row) and is one file, whole by itself. A row whose bytes are not
    /// there or do not match — a store read only after a power loss, which no check at open
    /// went over, or a disk that damaged them — is given up in the copy as at open
    /// (`giveUpPage`): the page is fetched again by whoever uses the copy.
    private func inlinePages(into copy: SQLiteDatabase, from pageFile: PageFile?, stopped: () -> Bool) throws {
        // A store of version 1 or 2 read as it is (not migrated, §4.1) has none.
        guard try copy.pragmaInteger("user_version") >= 3 else { return }
        var rows: [(key: Int64, tree: [UInt8], at: Int64, size: Int64)] = []
        let select = try copy.statement("SELECT key, tree, at, size FROM page WHERE at IS NOT NULL ORDER BY key")
        do {
            defer { select.reset() }
            while try select.step() { rows.append((select.int64(0), select.blob(1), select.int64(2), select.int64(3))) }
        }
        try copy.transaction {
            let update = try copy.statement("""
                UPDATE page SET data = ?1, tree = CASE WHEN length(?1) <= 1024 THEN substr(tree, 33) ELSE tree END,
                                at = NULL, size = NULL WHERE key = ?2
                """)
            for (n, row) in rows.enumerated() {
                if n % 1024 == 0, stopped() { throw BooksError(.stopped, "the backup was stopped part-way: its copy is removed", file: file) }
                let page = PageKey.page(ofKey: row.key)
                // The bytes, when they are there and are the page's (a read that fails is a
                // page lost, like one that does not match); the copy's own writes throw.
                var bytes: [UInt8]?
                if row.tree.count >= PageHash.length, row.at >= 0, row.size >= 0, row.size <= Book.maximumPageSize {
                    bytes = try? pageFile?.read(at: UInt64(row.at), count: Int(row.size), page: page) { bytes in
                        PageHash.leaf(bytes).withUnsafeBytes { $0.elementsEqual(row.tree[..<PageHash.length]) } ? Array(bytes) : nil
                    }
                }
                if let bytes {
                    update.bind(1, bytes)
                    update.bind(2, row.key)
                    try update.run()
                } else {
                    try copy.giveUpPage(key: row.key, tree: row.tree)
                }
            }
            try copy.execute("UPDATE page_file SET synced = 0; DELETE FROM page_file_write;")
        }
    }

    /// Pages copied per step of `backup` (16 KiB each: 4 MiB), between which it can stop.
    static let backupStepPages: Int32 = 256
}
