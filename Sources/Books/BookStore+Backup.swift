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
    @discardableResult
    public func backup(to destination: String) throws -> (bytes: UInt64, books: Int) {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw BooksError(.storage, "\(destination) exists already: a backup is written to a new file", file: destination)
        }
        try locked { _ in }  // a closed store is an error here, not an empty copy
        let source = try SQLiteDatabase(path: file, create: false)
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
        // All pages in one step: one read transaction on the source, so one snapshot. A lock
        // held longer than the connections' busy timeout fails the backup (`.storage`).
        let rc = sqlite3_backup_step(backup, -1)
        let finish = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE else { throw SQLiteDatabase.error(rc, String(cString: sqlite3_errstr(rc)), path: file) }
        guard finish == SQLITE_OK else { throw copy.failure(finish) }
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
}
