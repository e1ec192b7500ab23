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
    /// checked against the leaf its row keeps: the copy is one file, whole by itself, and
    /// names no page file.
    private func inlinePages(into copy: SQLiteDatabase, from pageFile: PageFile?, stopped: () -> Bool) throws {
        var rows: [(key: Int64, leaf: [UInt8], at: Int64, size: Int64)] = []
        let select = try copy.statement("SELECT key, tree, at, size FROM page WHERE at IS NOT NULL ORDER BY key")
        do {
            defer { select.reset() }
            while try select.step() {
                rows.append((select.int64(0), Array(select.blob(1).prefix(PageHash.length)), select.int64(2), select.int64(3)))
            }
        }
        guard !rows.isEmpty else { return }
        guard let pageFile else {
            throw BooksError(.corruptDatabase, "\(rows.count) pages are in the page file \(PageFile.fileName), which the store lacks", file: file)
        }
        try copy.transaction {
            let update = try copy.statement("UPDATE page SET data = ?, at = NULL, size = NULL WHERE key = ?")
            for (n, row) in rows.enumerated() {
                if n % 1024 == 0, stopped() { throw BooksError(.stopped, "the backup was stopped part-way: its copy is removed", file: file) }
                let page = PageKey.page(ofKey: row.key)
                guard row.at >= 0, row.size >= 0, row.size <= Book.maximumPageSize else {
                    throw BooksError(.corruptDatabase, "page \(page) names \(row.size) bytes at offset \(row.at) of the page file", file: file)
                }
                try pageFile.read(at: UInt64(row.at), count: Int(row.size), page: page) { bytes in
                    guard PageHash.leaf(bytes).withUnsafeBytes({ $0.elementsEqual(row.leaf) }) else {
                        throw BooksError(.corruptDatabase, "page \(page)'s bytes in the page file do not match its leaf hash", file: pageFile.path)
                    }
                    update.bindBorrowed(1, bytes)
                    update.bind(2, row.key)
                    try update.run()
                }
            }
            try copy.execute("UPDATE page_file SET synced = 0")
        }
    }

    /// Pages copied per step of `backup` (16 KiB each: 4 MiB), between which it can stop.
    static let backupStepPages: Int32 = 256
}
