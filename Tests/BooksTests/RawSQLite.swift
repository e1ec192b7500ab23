import CSQLite
import Foundation

/// Direct access to a store's file, bypassing `BookStore`: how the tests damage a database
/// the way a disk or another program could. Every call opens and closes its own connection.
enum RawSQLite {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private static func withDatabase<T>(_ file: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        var db: OpaquePointer?
        guard sqlite3_open_v2(file, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let db else {
            throw Failure(description: "cannot open \(file)")
        }
        defer { sqlite3_close_v2(db) }
        return try body(db)
    }

    /// Runs statements without results.
    static func execute(_ file: String, _ sql: String) throws {
        try withDatabase(file) { db in
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
                throw Failure(description: String(cString: sqlite3_errmsg(db)))
            }
        }
    }

    /// The blob in the first column of the first row of `sql`.
    static func blob(_ file: String, _ sql: String) throws -> [UInt8] {
        try withDatabase(file) { db in
            var s: OpaquePointer?
            guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK else { throw Failure(description: String(cString: sqlite3_errmsg(db))) }
            defer { sqlite3_finalize(s) }
            guard sqlite3_step(s) == SQLITE_ROW else { throw Failure(description: "no row for \(sql)") }
            let count = Int(sqlite3_column_bytes(s, 0))
            guard count > 0, let p = sqlite3_column_blob(s, 0) else { return [] }
            return Array(UnsafeRawBufferPointer(start: p, count: count))
        }
    }

    /// Runs `sql` with `?1` bound to `blob`.
    /// The integer in the first column of the first row of `sql`.
    static func integer(_ file: String, _ sql: String) throws -> Int64 {
        try withDatabase(file) { db in
            var s: OpaquePointer?
            guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK else { throw Failure(description: String(cString: sqlite3_errmsg(db))) }
            defer { sqlite3_finalize(s) }
            guard sqlite3_step(s) == SQLITE_ROW else { throw Failure(description: "no row for \(sql)") }
            return sqlite3_column_int64(s, 0)
        }
    }

    static func update(_ file: String, _ sql: String, blob: [UInt8]) throws {
        try withDatabase(file) { db in
            var s: OpaquePointer?
            guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK else { throw Failure(description: String(cString: sqlite3_errmsg(db))) }
            defer { sqlite3_finalize(s) }
            _ = blob.withUnsafeBytes { sqlite3_bind_blob(s, 1, $0.baseAddress, Int32($0.count), unsafeBitCast(-1, to: sqlite3_destructor_type.self)) }
            guard sqlite3_step(s) == SQLITE_DONE else { throw Failure(description: String(cString: sqlite3_errmsg(db))) }
        }
    }

    /// Flips one bit of the blob that `select` returns and writes it back with `update`.
    static func flipBit(_ file: String, select: String, update: String, bit: Int) throws {
        var bytes = try blob(file, select)
        bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        try self.update(file, update, blob: bytes)
    }

    static func fileBytes(_ file: String) -> [UInt8] {
        (FileManager.default.contents(atPath: file)).map { Array($0) } ?? []
    }
}
