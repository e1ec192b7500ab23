/// The store's SQLite schema and its migrations (PROTOCOL.md §4).
///
/// `PRAGMA user_version` holds the schema version and `PRAGMA application_id` marks the
/// file as a book store. Each migration runs in its own transaction and bumps the version,
/// so an interrupted upgrade leaves the file at the last complete version.
enum Schema {
    /// 'Book' in ASCII: tells a book store from any other SQLite file.
    static let applicationID: Int64 = 0x426F_6F6B
    /// The version this code writes.
    static let currentVersion: Int64 = 3

    /// Migration `i` moves a database from version `i` to `i + 1`.
    static let migrations: [String] = [
        // 0 → 1: the first schema.
        """
        CREATE TABLE book (
            id       INTEGER PRIMARY KEY,
            key      BLOB NOT NULL UNIQUE,
            name     TEXT UNIQUE,
            writable INTEGER NOT NULL
        );
        CREATE TABLE page (
            key  INTEGER PRIMARY KEY,
            tree BLOB NOT NULL,
            data BLOB NOT NULL,
            root BLOB
        );
        CREATE TABLE node (
            book INTEGER NOT NULL,
            idx  INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (book, idx)
        ) WITHOUT ROWID;
        CREATE TABLE root (
            book      INTEGER NOT NULL,
            length    INTEGER NOT NULL,
            hash      BLOB NOT NULL,
            signature BLOB NOT NULL,
            PRIMARY KEY (book, length)
        ) WITHOUT ROWID;
        CREATE TABLE fork (
            book             INTEGER NOT NULL,
            first_length     INTEGER NOT NULL,
            first_hash       BLOB NOT NULL,
            first_signature  BLOB NOT NULL,
            second_length    INTEGER NOT NULL,
            second_hash      BLOB NOT NULL,
            second_signature BLOB NOT NULL
        );
        """,
        // 1 → 2: large pages stored once per store (PROTOCOL.md §4.9). A page row of
        // `Book.sharedPageThreshold` bytes or more keeps an empty `data` and names its
        // bytes' row in `blob`; rows written before stay as they are.
        """
        CREATE TABLE blob (
            id   INTEGER PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            data BLOB NOT NULL
        );
        ALTER TABLE page ADD COLUMN blob INTEGER;
        CREATE INDEX page_blob ON page (blob) WHERE blob IS NOT NULL;
        """,
        // 2 → 3: the bytes of pages a reader stores in the page file `books.pages`
        // (PROTOCOL.md §4.10): such a row keeps an empty `data` and names its bytes by `at`
        // (offset) and `size`; `page_file.synced` is the end of the file known on disk, and
        // `page_file_write` the answers written beyond it, whose rows are checked at open.
        // Rows written before stay as they are.
        """
        ALTER TABLE page ADD COLUMN at INTEGER;
        ALTER TABLE page ADD COLUMN size INTEGER;
        CREATE TABLE page_file (
            id     INTEGER PRIMARY KEY CHECK (id = 1),
            synced INTEGER NOT NULL
        );
        INSERT INTO page_file (id, synced) VALUES (1, 0);
        CREATE TABLE page_file_write (
            at    INTEGER PRIMARY KEY,
            size  INTEGER NOT NULL,
            book  INTEGER NOT NULL,
            first INTEGER NOT NULL,
            count INTEGER NOT NULL
        );
        """,
    ]

    /// Checks the file is a book store this code can read — or a new, empty file — by
    /// reading its header and schema only; refuses anything else without writing to it.
    /// Returns its schema version (0: empty). `BookStore.open` calls it before it switches
    /// the file to WAL mode, which would rewrite the header of another program's file.
    @discardableResult
    static func check(_ db: SQLiteDatabase) throws -> Int64 {
        let version = try db.pragmaInteger("user_version")
        let application = try db.pragmaInteger("application_id")
        // `user_version` is a signed 32-bit header field: no Bookswarm writes a negative one,
        // and one would index the migrations below zero.
        guard version >= 0 else {
            throw BooksError(.corruptDatabase, "the store has schema version \(version), which no Bookswarm writes", file: db.path)
        }
        if version > currentVersion {
            throw BooksError(.unsupportedSchemaVersion,
                             "the store has schema version \(version); this code reads up to \(currentVersion)",
                             file: db.path, limit: Int(currentVersion))
        }
        if version == 0 {
            let tables = try db.statement("SELECT count(*) FROM sqlite_master")
            _ = try tables.step()
            let count = tables.int64(0)
            tables.reset()
            guard count == 0, application == 0 || application == applicationID else {
                throw BooksError(.notABookStore, "the file is an SQLite database but not a book store", file: db.path)
            }
        } else if application != applicationID {
            throw BooksError(.notABookStore, "the file is an SQLite database but not a book store (application id \(application))", file: db.path)
        }
        return version
    }

    /// Shows a store of an older version, opened for reading only (no migration can run),
    /// in the current version's shape to the statements of this code, by objects in the
    /// connection's own temporary database, which SQLite searches before the file's: from
    /// version 1, a view `page` that adds the `blob` column (NULL: every page holds its
    /// bytes) and an empty table `blob`; from versions 1 and 2, `page` with the columns `at`
    /// and `size` (NULL: no page's bytes are in the page file). Nothing is written to the file.
    static func presentAsCurrent(_ db: SQLiteDatabase, version: Int64) throws {
        guard version > 0, version < currentVersion else { return }
        let blob = version < 2 ? "NULL AS blob" : "blob"
        try db.execute("""
            PRAGMA temp_store = MEMORY;
            CREATE TEMP VIEW page AS SELECT key, tree, data, root, \(blob), NULL AS at, NULL AS size FROM main.page;
            CREATE TEMP TABLE page_file (id INTEGER PRIMARY KEY, synced INTEGER NOT NULL);
            CREATE TEMP TABLE page_file_write (at INTEGER PRIMARY KEY, size INTEGER NOT NULL, book INTEGER NOT NULL,
                                               first INTEGER NOT NULL, count INTEGER NOT NULL);
            """)
        if version < 2 {
            try db.execute("CREATE TEMP TABLE blob (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, data BLOB NOT NULL)")
        }
    }

    /// Checks the file (`check`) and brings it to the current version: a new, empty file
    /// becomes a store.
    static func prepare(_ db: SQLiteDatabase) throws {
        let version = try check(db)
        for target in (version + 1)...max(version + 1, currentVersion) where target <= currentVersion {
            try db.transaction {
                try db.execute(migrations[Int(target - 1)])
                try db.execute("PRAGMA application_id = \(applicationID); PRAGMA user_version = \(target);")
            }
        }
    }
}
