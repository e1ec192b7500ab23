import Books
import CSQLite
import Foundation

/// A floor for the book store: the same bytes in a one-table SQLite database
/// (`page(id INTEGER PRIMARY KEY, data BLOB)`) with the store's pragmas and page size, one transaction per
/// batch, through prepared statements — what storing pages costs with nothing of ours
/// around it. `synchronous` is `FULL` for an author's durable appends and `NORMAL` for a
/// reader's verified answers (PROTOCOL.md §4.1).
final class PlainSQLite {
    private var db: OpaquePointer?
    private var insertStatement: OpaquePointer?
    private var selectStatement: OpaquePointer?
    private var beginStatement: OpaquePointer?
    private var commitStatement: OpaquePointer?
    let path: String

    init(directory: String, synchronous: String = "FULL") throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = "\(directory)/plain.sqlite"
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(path, &db, flags, nil) == SQLITE_OK else { throw PlainError.failed("open \(path)") }
        try exec("PRAGMA page_size = \(BookStore.newFilePageSize)")
        try exec("PRAGMA locking_mode = EXCLUSIVE")
        try exec("PRAGMA journal_mode = WAL")
        try exec("PRAGMA synchronous = \(synchronous)")
        try exec("PRAGMA cache_size = \(BookStore.cacheSize)")
        try exec("CREATE TABLE page (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        guard sqlite3_prepare_v2(db, "INSERT INTO page (data) VALUES (?)", -1, &insertStatement, nil) == SQLITE_OK,
              sqlite3_prepare_v2(db, "SELECT data FROM page WHERE id = ?", -1, &selectStatement, nil) == SQLITE_OK,
              sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &beginStatement, nil) == SQLITE_OK,
              sqlite3_prepare_v2(db, "COMMIT", -1, &commitStatement, nil) == SQLITE_OK else {
            throw PlainError.failed("prepare")
        }
    }

    enum PlainError: Error { case failed(String) }

    func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw PlainError.failed(sql) }
    }

    private func run(_ statement: OpaquePointer?) throws {
        sqlite3_reset(statement)
        guard sqlite3_step(statement) == SQLITE_DONE else { throw PlainError.failed("step") }
    }

    /// Inserts `pages` in one transaction; their ids follow the last ones (1, 2, …).
    func insert(_ pages: some Collection<[UInt8]>) throws {
        try run(beginStatement)
        for page in pages {
            sqlite3_reset(insertStatement)
            page.withUnsafeBytes { bytes in
                _ = sqlite3_bind_blob(insertStatement, 1, bytes.baseAddress, Int32(bytes.count), unsafeBitCast(-1, to: sqlite3_destructor_type.self))
            }
            guard sqlite3_step(insertStatement) == SQLITE_DONE else { throw PlainError.failed("insert") }
        }
        try run(commitStatement)
    }

    /// Reads page `id` and hands its bytes to `body` (valid only during the call).
    func read<T>(_ id: Int64, _ body: (UnsafeRawBufferPointer) -> T) throws -> T {
        sqlite3_reset(selectStatement)
        sqlite3_bind_int64(selectStatement, 1, id)
        guard sqlite3_step(selectStatement) == SQLITE_ROW else { throw PlainError.failed("select \(id)") }
        let count = Int(sqlite3_column_bytes(selectStatement, 0))
        return body(UnsafeRawBufferPointer(start: sqlite3_column_blob(selectStatement, 0), count: count))
    }

    func close() {
        sqlite3_finalize(insertStatement)
        sqlite3_finalize(selectStatement)
        sqlite3_finalize(beginStatement)
        sqlite3_finalize(commitStatement)
        sqlite3_close(db)
    }
}
