import CSQLite
import Foundation
import Sodium
import Synchronization

/// All books of one peer (the DB, modelled on corestore): one SQLite database,
/// `<directory>/books.sqlite`, in WAL mode with `synchronous=FULL` (`NORMAL` while a
/// reader stores a verified answer, `Book.apply`). The WAL is copied back into the
/// database by a `Checkpointer` on a thread and connection of its own, so no call waits
/// for a checkpoint's fsyncs.
///
/// * **Titles** map a name to a book id; **keys** map a book id to its key pair, or to
///   none for a book this peer only reads. A named book's key pair is derived from the
///   master secret and the name (`BookName.keyPair`), so only names are stored and
///   reopening with the same secret recovers the same keys. The store never generates or
///   stores the master secret: the vault owns it.
/// * Thread safety: every call takes one lock around one SQLite connection, so the store
///   and its `Book` handles can be used from any thread or task. Calls are synchronous and
///   short; a durable append waits for one fsync of the WAL.
/// * One store per directory: an exclusive `flock` on `<directory>/books.lock`, held while
///   the store is open (the kernel drops it when the process dies, kill -9 included). A
///   second store, in this process or another, gets `.storeLocked`.
public final class BookStore: @unchecked Sendable {
    public static let fileName = "books.sqlite"
    /// The lock file that keeps a second store off the directory.
    public static let lockFileName = "books.lock"
    /// SQLite's page size for a new store file (PROTOCOL.md §4.1). 16 KiB rather than
    /// SQLite's 4 KiB: a reader storing a stream of 1 KiB pages writes a quarter of the WAL
    /// frames, B-tree pages and checkpoint writes, which made end-to-end replication of
    /// 1 KiB pages about a quarter faster (BENCHMARKS.md, session 9); pages of 16 KiB and
    /// more overflow either way. A file keeps the size it was created with.
    public static let newFilePageSize = 16384
    /// The WAL size, in bytes, from which the checkpointer copies it back, and at which a
    /// writer that outruns it is held (PROTOCOL.md §4.1).
    static let checkpointThresholdBytes = 16 << 20
    static let checkpointHardLimitBytes = 64 << 20
    /// The page cache of the store's connection, as `PRAGMA cache_size` takes it (negative: KiB).
    public static let cacheSize = -2000

    public let directory: String
    /// The database file.
    public let file: String
    private let masterSecret: SecretBytes
    /// Why the store cannot be written, when it was opened for reading only
    /// (`openForReading`): what every write on it fails with. Nil for a store that writes
    /// — from the start, or since `resumeWriting` opened it for writing again.
    public var writeRefusal: BooksError? { lock.withLock { refusal } }

    // Guarded by `lock`, except the subscribers and `delivery` (their own locks).
    let lock = NSLock()
    private var database: SQLiteDatabase?
    private var refusal: BooksError?
    /// Backups reading the store through a connection that takes no lock (`backup` of a
    /// store opened for reading only): `resumeWriting` waits until none runs, since a
    /// writer's checkpoints would change the file under them.
    private var readingBackups = 0
    private var checkpointer: Checkpointer?
    private var lockDescriptor: Int32
    var states: [BookID: BookState] = [:]
    /// Lengths committed under `lock`, handed to subscribers once it is let go.
    private var pendingUpdates: [BookLength] = []

    /// Length subscribers, under a lock of their own that is held for the table alone:
    /// never while another lock is taken, nor while a stream yields or finishes. A stream's
    /// termination handler takes it, and Swift runs that handler while holding the
    /// cancelled task's status lock, which a yield to the same task needs: yielding under
    /// a lock the handler takes deadlocks (seen: an answer stored while a replication
    /// channel closed).
    private let subscribers = Mutex(Subscribers())
    /// Taken before `lock` is let go and held while the updates of that commit are
    /// yielded, so subscribers see lengths in commit order.
    private let delivery = NSLock()

    private struct Subscribers {
        var table: [BookID: [Int: AsyncStream<BookLength>.Continuation]] = [:]
        var next = 0
        var closed = false
    }

    /// What the store knows of one book, kept in memory while the store is open.
    struct BookState {
        let number: Int64
        let id: BookID
        var name: String?
        var keyPair: Ed25519.KeyPair?
        var latest: SignedRoot?
        /// The peaks of the tree at `latest.length`, left to right.
        var peaks: [TreeNode]
        /// Held pages (an author holds 0..<length; a reader's are read at open).
        var held: PageRanges
        var forks: [ForkProof]

        var length: UInt64 { latest?.length ?? 0 }
    }

    init(directory: String, file: String, masterSecret: SecretBytes, database: SQLiteDatabase, lockDescriptor: Int32,
                 writeRefusal: BooksError? = nil) {
        self.directory = directory
        self.file = file
        self.masterSecret = masterSecret
        self.refusal = writeRefusal
        self.database = database
        self.lockDescriptor = lockDescriptor
    }

    /// Opens (or creates) the store in `directory`. `masterSecret` (32 bytes) derives the
    /// key pairs of named books. Checks the schema (a newer version is refused), the
    /// master secret against every named book, and every book's latest signed root
    /// against its signature and stored tree. A damaged file gives `.corruptDatabase`
    /// naming it; nothing is repaired or deleted.
    ///
    /// `readingIfUnwritable`: when the store cannot be written — the disk is full, the
    /// files or their file system are read-only (`BooksError.meansUnwritable`) — open it
    /// for reading only instead (`openForReading`), with that error as its `writeRefusal`.
    /// For a caller that only reads: a full disk is exactly when people look at what they
    /// have. The store opens exactly as without it whenever it can be written.
    public static func open(directory: String, masterSecret: SecretBytes, readingIfUnwritable: Bool = false) throws -> BookStore {
        do {
            return try open(directory: directory, masterSecret: masterSecret, checkpointThreshold: nil, checkpointHardLimit: nil)
        } catch let error as BooksError where readingIfUnwritable && error.meansUnwritable {
            do {
                return try openForReading(directory: directory, masterSecret: masterSecret, refusal: error)
            } catch let reading as BooksError {
                throw BooksError(error.code, "\(error.detail); reading it without writing failed too: \(reading.detail)",
                                 file: error.file, limit: error.limit)
            }
        }
    }

    /// `open`, with the checkpointer's WAL sizes in pages (tests make them small); `nil`:
    /// `checkpointThresholdBytes` and `checkpointHardLimitBytes` in the file's pages.
    static func open(directory: String, masterSecret: SecretBytes, checkpointThreshold: Int?,
                     checkpointHardLimit: Int?) throws -> BookStore {
        guard masterSecret.count == 32 else {
            throw BooksError(.wrongMasterSecret, "the master secret must be 32 bytes, got \(masterSecret.count)", limit: 32)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BooksError(.storage, "cannot create the store directory: \(error)", file: directory)
        }
        let file = (directory as NSString).appendingPathComponent(fileName)
        let lockDescriptor = try lockDirectory(directory, file: file)
        let database: SQLiteDatabase
        do {
            database = try SQLiteDatabase(path: file)
        } catch {
            Glibc.close(lockDescriptor)
            throw error
        }
        // From here the store owns the connection and the lock: a failure closes it, which
        // releases both exactly once.
        let store = BookStore(directory: directory, file: file, masterSecret: masterSecret, database: database,
                              lockDescriptor: lockDescriptor)
        do {
            store.checkpointer = try store.prepareForWriting(database, loadingBooks: true, checkpointThreshold: checkpointThreshold,
                                                             checkpointHardLimit: checkpointHardLimit)
            return store
        } catch {
            store.close()
            throw error
        }
    }

    /// Makes a new read-write connection the store's kind (PROTOCOL.md §4.1): checks the
    /// file, sets the connection up, prepares the schema, loads the books (`loadingBooks`)
    /// and starts the checkpointer it returns. On a failure it stops what it started; the
    /// caller closes the connection.
    private func prepareForWriting(_ database: SQLiteDatabase, loadingBooks: Bool, checkpointThreshold: Int?,
                                   checkpointHardLimit: Int?) throws -> Checkpointer {
        // The file is checked before the journal mode changes anything: switching to
        // WAL rewrites the header, and a file that is not a store (or of a newer
        // version) is refused without a byte written.
        if try Schema.check(database) == 0 {
            // Only a file without a table yet takes a page size (in WAL mode SQLite
            // ignores it); an existing store keeps its own.
            try database.execute("PRAGMA page_size = \(Self.newFilePageSize)")
        }
        guard try database.pragmaText("journal_mode = WAL")?.lowercased() == "wal" else {
            throw BooksError(.storage, "the database cannot use WAL mode", file: file)
        }
        // FULL: the WAL is synced at every commit, so an append that returned survives
        // power loss too, not only a killed process. `apply` lowers it per transaction.
        try database.execute("PRAGMA synchronous = FULL")
        // Reads through a memory map: a holder serving pages copies them straight
        // from the page cache, without a pread per database page.
        try database.execute("PRAGMA mmap_size = 1073741824")
        // SQLite's default budget, 2000 KiB, said again: SQLite sizes the cache in pages
        // for a 4 KiB page before it reads the file's page size and keeps that count,
        // so a 16 KiB store would otherwise cache four times as much (≈ 8 MB).
        try database.execute("PRAGMA cache_size = \(Self.cacheSize)")
        try Schema.prepare(database)
        database.pageFile = try PageFile.open(directory: directory, writable: true)
        // Rows naming bytes of the page file not known to be on disk are checked (§4.10);
        // a store read until now (`resumeWriting`) reloads what the check gave up.
        let givenUp = try database.checkPageFile()
        if loadingBooks {
            try loadBooks(database)
        } else {
            for number in givenUp.keys {
                guard let id = states.first(where: { $0.value.number == number })?.key else { continue }
                states[id]?.held = try database.heldPages(book: number)
            }
        }
        // Checkpoints from here on are the checkpointer's, off every caller's path.
        let pageSize = max(512, Int(try database.pragmaInteger("page_size")))
        let threshold = checkpointThreshold ?? Self.checkpointThresholdBytes / pageSize
        let checkpointer = try Checkpointer(path: file, threshold: threshold,
                                            hardLimit: checkpointHardLimit ?? Self.checkpointHardLimitBytes / pageSize,
                                            pageFile: database.pageFile)
        do {
            try database.execute("PRAGMA wal_autocheckpoint = 0")
            // A checkpoint never shrinks the WAL file: SQLite writes the next frames over it
            // from its start, so a file that once grew to the hard limit (a writer that outran
            // the checkpointer, or one large batch) would keep that size on disk until the
            // store closes. With a limit, the first commit after a pass that caught up (the
            // one that restarts the WAL) truncates the file to it. The limit is the threshold:
            // about what the WAL holds when a pass starts, so a store writing at a steady pace
            // keeps reusing its file (it grows back only by what is committed while a pass
            // runs), while what an outrun or one large batch added is given back.
            try database.execute("PRAGMA journal_size_limit = \(threshold * pageSize)")
        } catch {
            checkpointer.stop()
            throw error
        }
        database.setWALHook(checkpointer)
        let file = file
        database.admitWrite = { [weak checkpointer] in
            if let refusal = checkpointer?.admitWrite() {
                throw BooksError(.storage, "writes refused: \(refusal)", file: file)
            }
        }
        return checkpointer
    }

    /// For `backup`: the refusal of a store opened for reading only, counted as a backup that
    /// reads it until `endReadingBackup`; nil for a store that writes (nothing counted).
    func beginReadingBackup() -> BooksError? {
        lock.withLock {
            if refusal != nil { readingBackups += 1 }
            return refusal
        }
    }

    func endReadingBackup() { lock.withLock { readingBackups -= 1 } }

    /// For a store opened for reading only because it could not be written (`writeRefusal`:
    /// a full disk, `open(…readingIfUnwritable:)`): opens it for writing again, in place —
    /// the same store, its books and `Book` handles, subscribers and lock — once it can be.
    /// Returns true when the store writes (now, or already did); false when it still
    /// cannot be written, reading on as before with the new failure as `writeRefusal` — or
    /// while a backup reads it (`beginReadingBackup`): it is tried again later. Throws a failure of another kind (a damaged file), the store reading on; should
    /// reading it again fail too, the store is closed. Every call on the store waits
    /// meanwhile (an open, a few milliseconds).
    ///
    /// The read-only connection is closed first: a writer recovering the WAL beside it
    /// would wait for its locks, and it would not see what the writer commits. Nothing was
    /// written while it read (every write was refused), so the books it loaded stand.
    @discardableResult
    public func resumeWriting() throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let refused = refusal else { return true }
        guard readingBackups == 0 else { return false }
        guard let reading = database else { throw BooksError(.closed, "the book store is closed", file: file) }
        reading.close()
        database = nil
        do {
            let writing = try SQLiteDatabase(path: file, create: false)
            do {
                checkpointer = try prepareForWriting(writing, loadingBooks: false, checkpointThreshold: nil, checkpointHardLimit: nil)
            } catch {
                writing.close()
                throw error
            }
            database = writing
            refusal = nil
            return true
        } catch {
            let unwritable = (error as? BooksError).flatMap { $0.meansUnwritable ? $0 : nil }
            let next = unwritable ?? refused
            database = try Self.readingConnection(file, refusal: next).database
            refusal = next
            if unwritable != nil { return false }
            throw error
        }
    }

    /// Takes the directory's lock file; `.storeLocked` naming the database when another
    /// store holds it. The lock file must stay while a store is open (deleting it lets a
    /// second store create a new one); a lock file replaced between our open and our lock
    /// is caught by comparing the locked descriptor with the path, and taken again.
    static func lockDirectory(_ directory: String, file: String) throws -> Int32 {
        let path = (directory as NSString).appendingPathComponent(lockFileName)
        var replaced = 0, busy = 0
        while replaced < 8 {
            var fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            // flock needs no write access: a lock file made read-only still works.
            if fd < 0 && (errno == EACCES || errno == EROFS) { fd = Glibc.open(path, O_RDONLY | O_CLOEXEC) }
            guard fd >= 0 else {
                throw BooksError(.storage, "cannot open the lock file \(path): \(errnoText(errno))", file: file)
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let reason = errno
                Glibc.close(fd)
                if reason == EWOULDBLOCK {
                    // A process being spawned holds a copy of every descriptor from fork to
                    // exec (O_CLOEXEC closes it only at exec): a store closed a moment ago by
                    // this process can look taken for that long. Wait up to 100 ms first.
                    if busy < 20 {
                        busy += 1
                        usleep(5_000)
                        continue
                    }
                    throw BooksError(.storeLocked, "the store is open in another process or store (\(lockFileName) is locked)", file: file)
                }
                throw BooksError(.storage, "cannot lock \(path): \(errnoText(reason))", file: file)
            }
            var locked = stat(), current = stat()
            if fstat(fd, &locked) == 0, stat(path, &current) == 0, locked.st_dev == current.st_dev, locked.st_ino == current.st_ino {
                return fd
            }
            // Unlinked or replaced after we opened it: our lock guards nothing.
            Glibc.close(fd)
            replaced += 1
        }
        throw BooksError(.storage, "cannot lock \(path): it keeps being replaced", file: file)
    }

    /// Closes the database. Later calls throw `.closed`; length subscribers finish.
    public func close() {
        lock.lock()
        shutDown()
        lock.unlock()
        let finishing = subscribers.withLock { s in
            s.closed = true
            defer { s.table = [:] }
            return s.table.values.flatMap(\.values)
        }
        // Outside every lock: finishing a stream runs its termination handler, which takes
        // the subscribers' lock.
        for continuation in finishing { continuation.finish() }
    }

    deinit { shutDown() }

    /// The checkpointer first (a pass under way finishes), then the connection (the last
    /// one to close copies the rest of the WAL back and removes it), then the lock.
    private func shutDown() {
        database?.setWALHook(nil)
        database?.admitWrite = nil
        checkpointer?.stop()
        checkpointer = nil
        // The page file on disk and its end recorded: the next open has nothing to check.
        if let database, refusal == nil, let pageFile = database.pageFile, pageFile.writable, pageFile.end > pageFile.recorded {
            if (try? pageFile.sync()) != nil { try? database.transaction { try database.recordPageFileSynced() } }
        }
        database?.close()
        database = nil
        if lockDescriptor >= 0 {
            Glibc.close(lockDescriptor)
            lockDescriptor = -1
        }
    }

    /// Copies the WAL back into the database now and returns when that pass is done
    /// (checkpoints otherwise run in the background once the WAL holds
    /// `checkpointThresholdBytes`, 16 MiB). For a caller about to copy the file, or to
    /// measure without a backlog of earlier writes.
    public func checkpoint() throws {
        guard let checkpointer = try locked({ _ in self.checkpointer }) else { return }
        switch checkpointer.checkpointNow() {
        case nil: return
        case Checkpointer.closing?: throw BooksError(.closed, "the book store is closed", file: file)
        case let failure?: throw BooksError(.storage, "checkpoint failed: \(failure)", file: file)
        }
    }

    /// Tests only: every checkpoint pass fails with `text` until it is set back to nil.
    func injectCheckpointFailure(_ text: String?) { lock.withLock { checkpointer?.injectedFailure = text } }

    /// What the checkpointer did so far (tests, diagnostics).
    var checkpointStats: Checkpointer.Stats { lock.withLock { checkpointer?.stats ?? Checkpointer.Stats() } }

    func loadBooks(_ db: SQLiteDatabase) throws {
        let rows = try db.bookRows()
        // A book's number keys its pages (`PageKey`): outside 0..<2^23 (a damaged or edited
        // table) it would build keys of other books, or trap building them.
        if let bad = rows.first(where: { !(0..<PageKey.maximumBooks).contains($0.number) }) {
            throw BooksError(.corruptDatabase, "a book has the number \(bad.number), outside 0..<\(PageKey.maximumBooks)", file: file)
        }
        // Every book's rows go with its `book` row (deleting a book deletes all, in one
        // transaction): rows of a book the table lacks mean a damaged `book` table, which
        // would otherwise read as books gone — a task list suddenly empty.
        let known = Set(rows.map(\.number))
        if let orphan = try db.referencedBookNumbers().subtracting(known).min() {
            throw BooksError(.corruptDatabase, "the book table has no row for book number \(orphan), whose pages, tree or "
                             + "signed roots are stored: the table is damaged", file: file)
        }
        for row in rows {
            guard let id = try? BookID(bytes: row.key) else {
                throw BooksError(.corruptDatabase, "book \(row.number) has a key of \(row.key.count) bytes", file: file)
            }
            var keyPair: Ed25519.KeyPair?
            if row.writable {
                guard let name = row.name else {
                    throw BooksError(.corruptDatabase, "writable book \(id.hex.prefix(16))… has no name", file: file)
                }
                let derived = try BookName.keyPair(masterSecret: masterSecret, name: name)
                guard derived.publicKey == id.publicKey else {
                    throw BooksError(.wrongMasterSecret, "the master secret does not derive the key of book \"\(name)\"", file: file)
                }
                keyPair = derived
            }
            var state = BookState(number: row.number, id: id, name: row.name, keyPair: keyPair, latest: nil,
                                  peaks: [], held: PageRanges(), forks: try db.forks(book: row.number, id: id))
            if let latest = try db.latestRoot(book: row.number, id: id) {
                guard latest.isValid else {
                    throw BooksError(.corruptDatabase, "the latest signed root (length \(latest.length)) of book \(id.hex.prefix(16))… does not verify", file: file)
                }
                let peaks = try loadPeaks(db, state: state, length: latest.length)
                guard PageHash.root(peaks: peaks) == latest.rootHash else {
                    throw BooksError(.corruptDatabase, "the stored tree of book \(id.hex.prefix(16))… does not match its signed root at length \(latest.length)", file: file)
                }
                state.latest = latest
                state.peaks = peaks
            }
            // An author holds every page it signed, so its set needs no scan of the page
            // table — unless the book was a reader's copy before this peer took up its key
            // (it then has signed roots in the `root` table, and may hold pages sparsely).
            let authoredOnly = try keyPair != nil && db.hasReceivedRoots(book: row.number) == false
            state.held = authoredOnly ? PageRanges([0..<state.length]) : try db.heldPages(book: row.number)
            states[id] = state
        }
    }

    func loadPeaks(_ db: SQLiteDatabase, state: BookState, length: UInt64) throws -> [TreeNode] {
        try FlatTree.roots(length: length).map { index in
            guard let hash = try db.node(book: state.number, index: index) else {
                throw BooksError(.corruptDatabase, "tree node \(index) of book \(state.id.hex.prefix(16))… is missing", file: file)
            }
            return TreeNode(index: index, hash: hash)
        }
    }

    // MARK: - Books

    /// The book this peer writes under `name`, created if new. Its key pair is derived
    /// from the master secret and the name.
    public func createOrOpen(name: String) throws -> Book {
        let keyPair = try BookName.keyPair(masterSecret: masterSecret, name: name)
        let id = BookID(keyPair.publicKey)
        return try locked { db in
            if let existing = states.values.first(where: { $0.name == name }), existing.id != id {
                throw BooksError(.invalidName, "the name \"\(name)\" already titles the read-only book \(existing.id.hex.prefix(16))…", file: file)
            }
            if var state = states[id] {
                if state.keyPair == nil {
                    // Someone sent us our own book id first: we hold its key after all.
                    try db.updateBook(number: state.number, name: name, writable: true)
                    state.name = name
                    state.keyPair = keyPair
                    states[id] = state
                }
            } else {
                let number = try db.insertBook(key: id.bytes, name: name, writable: true)
                states[id] = BookState(number: number, id: id, name: name, keyPair: keyPair, latest: nil,
                                       peaks: [], held: PageRanges(), forks: [])
            }
            return Book(id: id, store: self)
        }
    }

    /// The book `id`, to read (or to write, if it is one of this peer's named books). An
    /// unknown id gets a local, read-only record; `title` names it, if given.
    public func open(id: BookID, title: String? = nil) throws -> Book {
        if let title { try BookName.validate(title) }
        return try locked { db in
            if let title, let other = states.values.first(where: { $0.name == title }), other.id != id {
                throw BooksError(.invalidName, "the name \"\(title)\" already titles book \(other.id.hex.prefix(16))…", file: file)
            }
            if var state = states[id] {
                if let title, state.name != title {
                    guard state.keyPair == nil else {
                        throw BooksError(.invalidName, "book \(id.hex.prefix(16))… is this peer's book \"\(state.name ?? "")\"; its name is fixed", file: file)
                    }
                    try db.updateBook(number: state.number, name: title, writable: false)
                    state.name = title
                    states[id] = state
                }
            } else {
                let number = try db.insertBook(key: id.bytes, name: title, writable: false)
                states[id] = BookState(number: number, id: id, name: title, keyPair: nil, latest: nil,
                                       peaks: [], held: PageRanges(), forks: [])
            }
            return Book(id: id, store: self)
        }
    }

    /// The id of the book this peer writes (or will write) under `name`: its derived public
    /// key, whether or not the book exists yet.
    public func derivedID(name: String) throws -> BookID {
        BookID(try BookName.keyPair(masterSecret: masterSecret, name: name).publicKey)
    }

    /// Book `id`, if the store has it — unlike `open(id:)`, which takes a new book in as a
    /// reader's: for whoever must not bring back a book deleted meanwhile (§4.8).
    public func book(id: BookID) throws -> Book? {
        try locked { _ in states[id].map { Book(id: $0.id, store: self) } }
    }

    /// The book titled `name`, if the store has one.
    public func book(named name: String) throws -> Book? {
        try locked { _ in states.values.first { $0.name == name }.map { Book(id: $0.id, store: self) } }
    }

    /// Deletes books and all the store holds of them — pages, tree nodes, signed roots, fork
    /// proofs, name and key — in one durable transaction: after a crash all of them are
    /// there or none is (PROTOCOL.md §4.8). Handles to them fail with `.unknownBook` from
    /// then on, and their length subscribers' streams finish. Ids not in the store are
    /// ignored. A book created later under a deleted one's name is a new book (a named
    /// book's key is derived again from the name: the same key, §3.7).
    public func delete(_ ids: [BookID]) throws {
        let deleted = try locked { db -> [BookID] in
            let doomed = ids.compactMap { states[$0] }
            guard !doomed.isEmpty else { return [] }
            let freed = try db.transaction { try doomed.flatMap { try db.deleteBook(number: $0.number) } }
            db.pageFile?.free(freed)
            for state in doomed { states[state.id] = nil }
            return doomed.map(\.id)
        }
        let continuations = subscribers.withLock { s in deleted.flatMap { s.table.removeValue(forKey: $0).map { Array($0.values) } ?? [] } }
        for continuation in continuations { continuation.finish() }
    }

    /// The id of the book titled `name`.
    public func id(named name: String) throws -> BookID? {
        try locked { _ in states.values.first { $0.name == name }?.id }
    }

    /// One line of `list()`.
    public struct Entry: Hashable, Sendable {
        public let id: BookID
        public let name: String?
        /// True when this peer holds the book's secret key.
        public let isWritable: Bool
        public let length: UInt64
        public let isForked: Bool
    }

    /// Every book in the store, by name then id.
    public func list() throws -> [Entry] {
        try locked { _ in
            states.values.map { Entry(id: $0.id, name: $0.name, isWritable: $0.keyPair != nil, length: $0.length, isForked: !$0.forks.isEmpty) }
                .sorted { ($0.name ?? "\u{10FFFF}", $0.id) < ($1.name ?? "\u{10FFFF}", $1.id) }
        }
    }

    // MARK: - Internals shared with Book

    /// Runs `body` under the lock with the open connection; then, with the lock let go, yields
    /// the lengths it committed to their subscribers.
    func locked<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T {
        lock.lock()
        let result: Result<T, any Error>
        if let database {
            result = Result { try body(database) }
        } else {
            result = .failure(BooksError(.closed, "the book store is closed", file: file))
        }
        let updates = pendingUpdates
        if !updates.isEmpty {
            pendingUpdates = []
            delivery.lock()
        }
        lock.unlock()
        if !updates.isEmpty {
            for update in updates {
                let continuations = subscribers.withLock { $0.table[update.book].map { Array($0.values) } ?? [] }
                for c in continuations { c.yield(update) }
            }
            delivery.unlock()
        }
        return try result.get()
    }

    /// Runs `body` under the lock with the state of book `id`, then stores the state back.
    func withState<T>(_ id: BookID, _ body: (inout BookState, SQLiteDatabase) throws -> T) throws -> T {
        try locked { db in
            guard var state = states[id] else {
                throw BooksError(.unknownBook, "book \(id.hex.prefix(16))… is not in the store", file: file)
            }
            defer { states[id] = state }
            return try body(&state, db)
        }
    }

    /// Subscribes to length changes of book `id` (caller holds no lock).
    func lengthUpdates(of id: BookID) -> AsyncStream<BookLength> {
        // Newest-only buffering: a length is state, not an event, so a slow consumer only
        // needs the latest one.
        let (stream, continuation) = AsyncStream<BookLength>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key: Int? = subscribers.withLock { s in
            guard !s.closed else { return nil }
            defer { s.next += 1 }
            s.table[id, default: [:]][s.next] = continuation
            return s.next
        }
        guard let key else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.table[id]?[key] = nil }
        }
        return stream
    }

    /// Queues the book's new length for its subscribers (called under the lock; `locked`
    /// yields it once the lock is let go).
    func notify(_ state: BookState) {
        guard subscribers.withLock({ $0.table[state.id]?.isEmpty == false }) else { return }
        pendingUpdates.append(BookLength(book: state.id, length: state.length,
                                         contiguousLength: state.held.contiguousCount, signedRoot: state.latest))
    }
}

extension BookStore {
    /// Reads the store's books while it is locked for a batch being written
    /// (`Book.append(count:_:)`): valid only during that call.
    public struct Reading {
        let store: BookStore
        let db: SQLiteDatabase

        /// Page `index` of book `id`, or nil when it is not held. Of the book being
        /// written, the pages it held before the batch (its state is stored back after).
        public func page(_ index: UInt64, of id: BookID) throws -> [UInt8]? {
            guard let state = store.states[id] else {
                throw BooksError(.unknownBook, "book \(id.hex.prefix(16))… is not in the store", file: store.file)
            }
            guard state.held.contains(index) else { return nil }
            return try db.page(book: state.number, index: index)
        }
    }
}

/// A book's length as its readers see it: what `Book.lengthUpdates` yields after every
/// append and every verified arrival, and what replication pushes to remote readers.
public struct BookLength: Hashable, Sendable {
    public let book: BookID
    /// The length of the latest verified signed root.
    public let length: UInt64
    /// The pages held from page 0 without a gap.
    public let contiguousLength: UInt64
    /// The latest signed root (nil while the book is empty).
    public let signedRoot: SignedRoot?
}
