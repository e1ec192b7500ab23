import Foundation
import Sodium

extension BookStore {
    /// Opens the store in `directory` for reading only: every book, page, tree node and
    /// signed root as a store that writes would show them — transactions still in the WAL
    /// included — with nothing written to the store's files: no schema change, no
    /// checkpoint, no WAL index (`SQLiteDatabase.init(readingOnly:)`, PROTOCOL.md §4.1).
    /// For a store that cannot be written: a full disk, a read-only file system
    /// (`open(directory:masterSecret:readingIfUnwritable:)` falls back to it).
    ///
    /// It takes the directory's lock file like any store, so no other store writes
    /// meanwhile. Every check of `open` is made (schema, master secret, signed roots). A
    /// store of an older schema version, which `open` would migrate, is read as it is
    /// (`Schema.presentAsCurrent`). Every write — a new book, an append, a verified answer, a deletion — fails
    /// with `refusal` (default: `storageReadOnly`, "opened for reading only"), before
    /// anything is written. A file with no table yet (a new store whose creation the full
    /// disk stopped) reads as a store without books.
    public static func openForReading(directory: String, masterSecret: SecretBytes, refusal: BooksError? = nil) throws -> BookStore {
        guard masterSecret.count == 32 else {
            throw BooksError(.wrongMasterSecret, "the master secret must be 32 bytes, got \(masterSecret.count)", limit: 32)
        }
        let file = (directory as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file) else {
            throw BooksError(.storage, "there is no store to read", file: file)
        }
        let refusal = refusal ?? BooksError(.storageReadOnly, "the store was opened for reading only", file: file)
        let lockDescriptor = try lockDirectory(directory, file: file)
        let database: SQLiteDatabase, version: Int64
        do {
            (database, version) = try readingConnection(file, refusal: refusal)
        } catch {
            Glibc.close(lockDescriptor)
            throw error
        }
        let store = BookStore(directory: directory, file: file, masterSecret: masterSecret, database: database,
                              lockDescriptor: lockDescriptor, writeRefusal: refusal)
        do {
            if version > 0 { try store.loadBooks(database) }
            return store
        } catch {
            store.close()
            throw error
        }
    }

    /// A connection that reads `file` and writes nothing (`SQLiteDatabase.init(readingOnly:)`),
    /// checked, an older schema version presented as the current one, and the file's
    /// schema version (0: no table yet). For `openForReading`, and for `resumeWriting`
    /// reading on when the store still cannot be written.
    static func readingConnection(_ file: String, refusal: BooksError) throws -> (database: SQLiteDatabase, version: Int64) {
        let database = try SQLiteDatabase(readingOnly: file, refusal: refusal)
        do {
            let version = try Schema.check(database)
            // An older version is read as it is, through the connection's own view of it.
            try Schema.presentAsCurrent(database, version: version)
            // Settings of the connection, not of the file (§4.1).
            try database.execute("PRAGMA mmap_size = 1073741824")
            try database.execute("PRAGMA cache_size = \(cacheSize)")
            database.pageFile = try PageFile.open(directory: (file as NSString).deletingLastPathComponent, writable: false)
            return (database, version)
        } catch {
            database.close()
            throw error
        }
    }
}
