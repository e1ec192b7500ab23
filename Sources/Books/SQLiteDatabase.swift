import CSQLite
import Foundation
import Sodium

/// A thin layer over one SQLite connection: prepared statements cached by their text,
/// transactions, and every failure turned into a `BooksError` that names the file.
/// Not thread-safe by itself: `BookStore` serialises every call under its lock.
final class SQLiteDatabase {
    let path: String
    /// The store's page file (§4.10), where rows with `at` have their bytes.
    var pageFile: PageFile?
    private var handle: OpaquePointer?
    // Keyed by the address of the static SQL text: cheaper than hashing the text on every
    // call, which shows on the append path.
    private var statements: [UnsafeRawPointer: SQLiteStatement] = [:]

    /// Opens a connection; `create: false` for a database that must exist already. A file
    /// this process cannot write (a read-only file system or file) is refused with
    /// `storageReadOnly` rather than opened read-only without a word, as SQLite would: the
    /// store then says at once that it cannot be written, and may be read instead
    /// (`init(readingOnly:)`).
    init(path: String, create: Bool = true) throws {
        self.path = path
        // NOMUTEX: the store's lock already serialises access to the connection.
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        handle = try Self.connect(path, flags: flags, path: path)
        if sqlite3_db_readonly(handle, "main") == 1 {
            let why = access(path, W_OK) == 0 ? "SQLite opened it read-only" : errnoText(errno)
            close()
            throw BooksError(.storageReadOnly, "the file cannot be written: \(why)", file: path)
        }
    }

    /// Opens a connection that reads the database at `path` and writes nothing to its files
    /// — no journal, no checkpoint, no WAL index — for a store that cannot be written (a full
    /// disk, a read-only file system). Every write on it fails with `refusal`. Only for a
    /// file no other connection writes meanwhile: the store's lock file proves that.
    ///
    /// The file is in WAL mode, whose readers normally share the WAL's index in
    /// `<file>-shm`, created and grown on first read — exactly what a full disk or a
    /// read-only file system refuses. So (PROTOCOL.md §4.1):
    /// * no WAL, or one shorter than its 32-byte header, holds no transaction: the database
    ///   file is the whole store, read with `immutable=1` (no lock, no file created);
    /// * a WAL that holds transactions (a store whose last holder was killed) is read with
    ///   `mode=ro&readonly_shm=1`: with no other connection on the file, SQLite rebuilds
    ///   the index in private memory from the WAL (its "unreliable shm" path) and writes
    ///   nothing. That needs an `-shm` file to exist, even empty: a missing one is created
    ///   empty (no data block);
    /// * where it cannot be created because the file system is read-only, nothing can write
    ///   the files, so no lock is needed: the WAL is read with `vfs=unix-none&mode=ro` in
    ///   exclusive locking mode, in which SQLite keeps the index in private memory and never
    ///   looks for `-shm`. Any other failure to create it (permissions) is an error: another
    ///   process could be writing the file, and only the index's locks would show it.
    init(readingOnly path: String, refusal: BooksError) throws {
        self.path = path
        let (uri, unlocked) = try Self.readOnlyURI(path)
        handle = try Self.connect(uri, flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, path: path)
        writeRefusal = refusal
        // Before the first read, which opens the WAL: in exclusive mode its index is the
        // connection's own memory.
        if unlocked {
            do {
                try execute("PRAGMA locking_mode = EXCLUSIVE")
            } catch {
                close()
                throw error
            }
        }
    }

    private static func connect(_ name: String, flags: Int32, path: String) throws -> OpaquePointer {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(name, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = SQLiteDatabase.error(rc, db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open", path: path,
                                             systemErrno: db.map { sqlite3_system_errno($0) } ?? 0)
            sqlite3_close_v2(db)
            throw error
        }
        sqlite3_extended_result_codes(db, 1)
        // The store's own checkpointer is the only other connection (a second store is
        // kept out by the lock file): its locks are brief, so waiting beats failing.
        sqlite3_busy_timeout(db, 5000)
        return db
    }

    /// The URI `init(readingOnly:)` opens `path` with, and whether it is the read-only file
    /// system's, without locks (to be read in exclusive locking mode).
    private static func readOnlyURI(_ path: String) throws -> (uri: String, unlocked: Bool) {
        // SQLite's URI syntax: `%`, `?` and `#` escaped; `file://` and an empty authority
        // before an absolute path, so that one starting with `//` stays a path.
        var escaped = ""
        for character in path.unicodeScalars {
            switch character {
            case "%": escaped += "%25"
            case "?": escaped += "%3f"
            case "#": escaped += "%23"
            default: escaped.unicodeScalars.append(character)
            }
        }
        let base = (path.hasPrefix("/") ? "file://" : "file:") + escaped
        var wal = stat()
        guard stat(path + "-wal", &wal) == 0, wal.st_size >= walHeaderSize else { return (base + "?immutable=1", false) }
        let shm = path + "-shm"
        var database = stat()
        let mode = stat(path, &database) == 0 ? database.st_mode & 0o666 : 0o600
        let fd = open(shm, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd >= 0 {
            Glibc.close(fd)
        } else if errno == EROFS {
            return (base + "?vfs=unix-none&mode=ro", true)
        } else if errno != EEXIST {
            throw BooksError(.storage, "the WAL holds transactions not yet copied into the database, and the index SQLite needs "
                             + "to read it, \(shm), is missing and cannot be created: \(errnoText(errno))", file: path)
        }
        return (base + "?mode=ro&readonly_shm=1", false)
    }

    /// The size of a WAL file's header (SQLite's file format, "WAL File Format"): a shorter
    /// WAL holds no frame.
    static let walHeaderSize = 32

    /// Set on a connection opened for reading only: what every write on it fails with
    /// (`checkWritable`, and SQLite's own refusal of a write that got past it, `failure`).
    private(set) var writeRefusal: BooksError?

    /// Throws `writeRefusal`, if set; asked before every write (a transaction, and the two
    /// statements that write on their own: `insertBook`, `updateBook`).
    func checkWritable() throws {
        if let writeRefusal { throw writeRefusal }
    }

    deinit { close() }

    func close() {
        statements.removeAll()  // finalises them before the connection closes
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    var isOpen: Bool { handle != nil }

    /// The connection, for the few C calls without a wrapper here (the WAL hook, checkpoints).
    var rawHandle: OpaquePointer? { handle }

    private func connection() throws -> OpaquePointer {
        guard let handle else { throw BooksError(.closed, "the book store is closed", file: path) }
        return handle
    }

    /// Runs SQL without results (several statements allowed).
    func execute(_ sql: String) throws {
        let db = try connection()
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw failure(rc) }
    }

    /// A cached prepared statement, reset and with bindings cleared.
    func statement(_ sql: StaticString) throws -> SQLiteStatement {
        let key = UnsafeRawPointer(sql.utf8Start)
        if let cached = statements[key] {
            cached.reset()
            return cached
        }
        let statement = try prepare(sql.description, persistent: true)
        statements[key] = statement
        return statement
    }

    private func prepare(_ sql: String, persistent: Bool) throws -> SQLiteStatement {
        let db = try connection()
        var raw: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0, &raw, nil)
        guard rc == SQLITE_OK, let raw else { throw failure(rc) }
        return SQLiteStatement(raw, database: self)
    }

    /// The rowid of the last row this connection inserted.
    var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

    /// Rows changed by the last INSERT, UPDATE or DELETE of this connection.
    var changes: Int { handle.map { Int(sqlite3_changes64($0)) } ?? 0 }

    /// The value of a pragma that returns one integer.
    func pragmaInteger(_ name: String) throws -> Int64 {
        let s = try prepare("PRAGMA \(name)", persistent: false)
        guard try s.step() else { return 0 }
        return s.int64(0)
    }

    /// The text a pragma returns (e.g. the journal mode it set).
    func pragmaText(_ statement: String) throws -> String? {
        let s = try prepare("PRAGMA \(statement)", persistent: false)
        guard try s.step() else { return nil }
        return s.text(0)
    }

    /// True while commits sync the WAL (`synchronous=FULL`, set when the store opens).
    private var syncsCommits = true

    /// Asked before every write transaction; throws to refuse it (the store's checkpointer
    /// refuses while its passes keep failing).
    var admitWrite: (() throws -> Void)?

    /// Runs `body` in one IMMEDIATE transaction: committed when it returns, rolled back
    /// when it throws. A `durable` commit returns after the WAL is synced
    /// (`synchronous=FULL`); a commit that is not (`NORMAL`) is atomic and survives a killed
    /// process, and is synced by the next durable commit or checkpoint: a power loss may
    /// drop the last such transactions whole, never part of one (PROTOCOL.md §4.1).
    func transaction<T>(durable: Bool = true, _ body: () throws -> T) throws -> T {
        try checkWritable()
        try admitWrite?()
        // The level can change only outside a transaction; it is a setting of the
        // connection, so it is switched only when it differs.
        if durable != syncsCommits {
            try execute(durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            syncsCommits = durable
        }
        try statement("BEGIN IMMEDIATE").run()
        do {
            let result = try body()
            try statement("COMMIT").run()
            return result
        } catch {
            if let db = handle, sqlite3_get_autocommit(db) == 0 {
                _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
            }
            throw error
        }
    }

    func failure(_ rc: Int32) -> BooksError {
        if let writeRefusal, rc & 0xff == SQLITE_READONLY { return writeRefusal }
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "no connection"
        return SQLiteDatabase.error(rc, message, path: path, systemErrno: handle.map { sqlite3_system_errno($0) } ?? 0)
    }

    /// `systemErrno`: the operating system's error behind an I/O failure (0: none known),
    /// which says what SQLite's "disk I/O error" does not — a full disk, above all, or a
    /// file system that is read-only: both are errors of their own (`diskFull`,
    /// `storageReadOnly`), after which the store may still be read.
    static func error(_ rc: Int32, _ message: String, path: String, systemErrno: Int32 = 0) -> BooksError {
        let ioFailure = [SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN].contains(rc & 0xff)
        if rc & 0xff == SQLITE_FULL || (ioFailure && systemErrno == ENOSPC) {
            return BooksError(.diskFull, "the disk is full: SQLite error \(rc), \(message)", file: path)
        }
        if ioFailure && systemErrno == EDQUOT {
            return BooksError(.diskFull, "the disk quota is used up: SQLite error \(rc), \(message)", file: path)
        }
        if ioFailure && systemErrno == EROFS {
            return BooksError(.storageReadOnly, "the file system is read-only: SQLite error \(rc), \(message)", file: path)
        }
        // Every SQLITE_READONLY but SQLITE_READONLY_DBMOVED (`SQLITE_READONLY | 4 << 8`, a
        // macro Swift does not import): the file was moved or deleted while open, which no
        // free space or permission mends.
        if rc & 0xff == SQLITE_READONLY && rc != SQLITE_READONLY | 4 << 8 {
            return BooksError(.storageReadOnly, "the file cannot be written: SQLite error \(rc), \(message)", file: path)
        }
        if ioFailure && systemErrno != 0 {
            return BooksError(.storage, "SQLite error \(rc): \(message): \(errnoText(systemErrno))", file: path)
        }
        switch rc & 0xff {
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return BooksError(.corruptDatabase, "the database is damaged or not a database: \(message)", file: path)
        case SQLITE_BUSY, SQLITE_LOCKED:
            // Another store is kept out by the lock file (`.storeLocked`); this is a lock
            // held longer than the busy timeout by another connection (the checkpointer, an
            // outside reader): transient, not "in use by another store".
            return BooksError(.storage, "the database stayed busy (a lock held by another connection): \(message)", file: path)
        default:
            return BooksError(.storage, "SQLite error \(rc): \(message)", file: path)
        }
    }
}

/// One prepared statement. Bind parameters are 1-based, columns 0-based (SQLite's rule).
final class SQLiteStatement {
    private let raw: OpaquePointer
    private unowned let database: SQLiteDatabase

    init(_ raw: OpaquePointer, database: SQLiteDatabase) {
        self.raw = raw
        self.database = database
    }

    deinit { sqlite3_finalize(raw) }

    func reset() {
        sqlite3_reset(raw)
        sqlite3_clear_bindings(raw)
    }

    func bind(_ position: Int32, _ value: Int64) {
        sqlite3_bind_int64(raw, position, value)
    }

    func bind(_ position: Int32, _ value: UInt64) {
        // Lengths and indices stay below 2^63 (PROTOCOL.md §4): stored as SQLite integers.
        sqlite3_bind_int64(raw, position, Int64(bitPattern: value))
    }

    func bind(_ position: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(raw, position, value) } else { sqlite3_bind_null(raw, position) }
    }

    func bind(_ position: Int32, _ value: String?) {
        if let value {
            sqlite3_bind_text(raw, position, value, -1, SQLITE_TRANSIENT_DESTRUCTOR)
        } else {
            sqlite3_bind_null(raw, position)
        }
    }

    func bind(_ position: Int32, _ bytes: UnsafeRawBufferPointer) {
        // A zero-length blob, not NULL, for an empty page: SQLite needs a non-nil pointer.
        sqlite3_bind_blob(raw, position, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(bytes.count), SQLITE_TRANSIENT_DESTRUCTOR)
    }

    func bind(_ position: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { bind(position, $0) }
    }

    /// Binds without a copy: `bytes` must stay valid until the statement is stepped and
    /// reset (the append path binds and steps inside one `withUnsafeBytes`).
    func bindBorrowed(_ position: Int32, _ bytes: UnsafeRawBufferPointer) {
        sqlite3_bind_blob(raw, position, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(bytes.count), nil)
    }

    /// Steps once: true when a row is available, false when done.
    @discardableResult
    func step() throws -> Bool {
        let rc = sqlite3_step(raw)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.failure(rc)
        }
    }

    /// Steps to completion (a statement without results), then resets.
    func run() throws {
        defer { sqlite3_reset(raw) }
        while try step() {}
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(raw, column) }
    func uint64(_ column: Int32) -> UInt64 { UInt64(bitPattern: sqlite3_column_int64(raw, column)) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(raw, column) == SQLITE_NULL }

    func text(_ column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(raw, column) else { return nil }
        return String(cString: pointer)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(raw, column))
        guard count > 0, let pointer = sqlite3_column_blob(raw, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// The blob of a column, borrowed for the duration of `body` (no copy).
    func withBlob<R>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let count = Int(sqlite3_column_bytes(raw, column))
        let pointer = sqlite3_column_blob(raw, column)
        return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count))
    }
}

// SQLite's SQLITE_TRANSIENT is a macro Swift cannot import: the destructor value -1,
// which tells SQLite to copy the bound bytes before the call returns.
nonisolated(unsafe) let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
