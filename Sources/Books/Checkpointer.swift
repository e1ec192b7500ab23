import CSQLite
import Foundation

/// Copies the WAL back into the database on a thread of its own, through a second
/// connection, so that no caller of the store waits for a checkpoint's fsyncs
/// (PROTOCOL.md §4.1).
///
/// The store's connection has SQLite's automatic checkpoint turned off; its WAL hook
/// reports the WAL's size after every commit (`committed(walPages:)`). From `threshold`
/// pages on, the checkpointer runs a PASSIVE checkpoint: it never blocks the writer, and
/// copies what was committed when it started. A writer that keeps committing can outrun
/// it (the WAL restarts from its beginning only after a pass that caught up), so at
/// `hardLimit` pages the committing call waits for a pass that starts after its commit:
/// the disk then bounds the writer, and the WAL stays below about `hardLimit` pages.
///
/// The thread starts at the first checkpoint needed; `stop()` ends it and closes the
/// connection. A failed pass (the disk, a transient lock) is counted and the next commit
/// past the threshold tries again, as SQLite's own automatic checkpoint does. Failures that
/// persist are not left to grow the WAL unheard: once `failuresBeforeRefusing` passes in a
/// row have failed with the WAL at the hard limit, `admitWrite()` (asked before every write
/// transaction) tries one more pass and, if that fails too, refuses the write with the reason.
final class Checkpointer: @unchecked Sendable {
    struct Stats: Equatable, Sendable {
        var passes = 0
        var failures = 0
        /// Pages copied into the database over all passes.
        var pagesCopied = 0
        /// Commits that waited for a pass because the WAL reached the hard limit.
        var writerWaits = 0
        /// The largest WAL size a commit reported, in pages.
        var largestWAL = 0
    }

    let threshold: Int
    let hardLimit: Int
    /// Failed passes in a row, with the WAL at the hard limit, after which writes are refused.
    static let failuresBeforeRefusing = 3
    private let path: String
    /// The store's page file (§4.10), synced at the start of every pass: then the end it
    /// had is on disk (`PageFile.durableEnd`) before the database copies rows naming it.
    private let pageFile: PageFile?
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var connection: SQLiteDatabase?
    private var thread: Thread?
    private var requested = false
    private var stopping = false
    private var exited = false
    private var started: UInt64 = 0
    private var completed: UInt64 = 0
    private var counters = Stats()
    private var lastFailure: (pass: UInt64, detail: String)?
    /// Passes failed since the last that succeeded.
    private var failuresInARow = 0
    /// The number of the last pass that succeeded.
    private var lastSuccess: UInt64 = 0
    /// The WAL's size in pages after the last commit.
    private var walPages = 0
    /// Tests only: every pass fails with this text while it is set.
    var injectedFailure: String? {
        get { condition.withLock { injected } }
        set { condition.withLock { injected = newValue } }
    }
    private var injected: String?

    /// Opens the checkpointing connection to the database at `path` (already in WAL mode).
    init(path: String, threshold: Int, hardLimit: Int, pageFile: PageFile? = nil) throws {
        precondition(threshold > 0 && hardLimit > threshold, "the hard limit lies above the threshold")
        self.path = path
        self.pageFile = pageFile
        self.threshold = threshold
        self.hardLimit = hardLimit
        let connection = try SQLiteDatabase(path: path, create: false)
        do {
            // A checkpoint syncs the WAL before copying and the database after, whatever
            // the level, unless it is OFF.
            try connection.execute("PRAGMA synchronous = NORMAL")
            // Reading the schema opens the WAL on this connection: without a read, its
            // passes would find no WAL to copy.
            _ = try connection.pragmaInteger("user_version")
        } catch {
            connection.close()
            throw error
        }
        self.connection = connection
    }

    deinit { stop() }

    var stats: Stats {
        condition.lock()
        defer { condition.unlock() }
        return counters
    }

    /// The last failed pass, if any (for diagnostics).
    var failure: String? {
        condition.lock()
        defer { condition.unlock() }
        return lastFailure?.detail
    }

    /// Called by the store's WAL hook after every commit, on the committing thread.
    func committed(walPages: Int) {
        guard walPages >= threshold || (pageFile?.backlog ?? 0) >= PageFile.syncBacklog else { return }
        condition.lock()
        defer { condition.unlock() }
        self.walPages = walPages
        counters.largestWAL = max(counters.largestWAL, walPages)
        guard !stopping, connection != nil else { return }
        if thread == nil { startThread() }
        requested = true
        condition.signal()
        guard walPages >= hardLimit else { return }
        // A pass already running copies only what was committed before it began.
        counters.writerWaits += 1
        let target = started + 1
        while completed < target, !exited { condition.wait() }
    }

    /// What `checkpointNow()` returns when the store closes before a pass could run.
    static let closing = "the store is closing"

    /// Runs a pass now and waits for it; returns why it failed, if it did. Success means a
    /// pass that began after this call succeeded (it copied everything committed before).
    func checkpointNow() -> String? {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, connection != nil else { return Checkpointer.closing }
        if thread == nil { startThread() }
        requested = true
        condition.signal()
        let target = started + 1
        while completed < target, !exited { condition.wait() }
        if lastSuccess >= target { return nil }
        if let lastFailure, lastFailure.pass >= target { return lastFailure.detail }
        return Checkpointer.closing
    }

    /// Asked before a write transaction begins. Nil (write) unless passes keep failing with
    /// the WAL at the hard limit; then one more pass runs now, and if it fails too the
    /// answer is why, and the write should be refused: the WAL would otherwise grow without
    /// bound while no caller hears of it (a full disk, a file that became read-only).
    func admitWrite() -> String? {
        condition.lock()
        let refusing = failuresInARow >= Checkpointer.failuresBeforeRefusing && walPages >= hardLimit
        let (pages, inARow) = (walPages, failuresInARow)
        condition.unlock()
        guard refusing, let failure = checkpointNow() else { return nil }
        return "\(inARow + 1) checkpoints in a row failed with \(pages) pages in the WAL, the last: \(failure)"
    }

    /// Ends the thread (after the pass under way, if any) and closes the connection.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        if thread != nil {
            while !exited { condition.wait() }
        }
        // The thread's block holds this checkpointer: dropping the thread ends the cycle.
        thread = nil
        connection?.close()
        connection = nil
        condition.unlock()
    }

    private func startThread() {
        let thread = Thread { [self] in
            // Named from inside: set before `start`, the name does not reach the kernel.
            Thread.current.name = "books-ckpt"
            run()
        }
        // Copying pages is not urgent: the writers' work comes first.
        thread.qualityOfService = .utility
        self.thread = thread
        thread.start()
    }

    private func run() {
        condition.lock()
        while true {
            while !requested, !stopping { condition.wait() }
            if stopping { break }
            requested = false
            started += 1
            let generation = started
            let db = connection
            let injected = self.injected
            condition.unlock()
            let result = injected.map { .failure($0) } ?? db.map { checkpoint($0) } ?? .failure("no connection")
            condition.lock()
            completed = generation
            counters.passes += 1
            switch result {
            case let .success(pages):
                counters.pagesCopied += pages
                failuresInARow = 0
                lastSuccess = generation
            case let .failure(detail):
                counters.failures += 1
                failuresInARow += 1
                lastFailure = (generation, detail)
            }
            condition.broadcast()
        }
        completed = started
        exited = true
        condition.broadcast()
        condition.unlock()
    }

    private enum Outcome {
        case success(Int)
        case failure(String)
    }

    private func checkpoint(_ db: SQLiteDatabase) -> Outcome {
        guard let handle = db.rawHandle else { return .failure("the connection is closed") }
        do {
            try pageFile?.sync()
        } catch {
            return .failure("\(error)")
        }
        var logFrames: Int32 = 0
        var copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &copied)
        guard rc == SQLITE_OK else { return .failure(db.failure(rc).description) }
        return .success(Int(max(0, copied)))
    }
}

extension SQLiteDatabase {
    /// Hands the WAL size after every commit of this connection to `checkpointer`, and
    /// turns SQLite's own automatic checkpoint off (the hook replaces it). Pass nil to
    /// remove the hook before the checkpointer goes away.
    func setWALHook(_ checkpointer: Checkpointer?) {
        guard let handle = rawHandle else { return }
        guard let checkpointer else {
            sqlite3_wal_hook(handle, nil, nil)
            return
        }
        let context = Unmanaged.passUnretained(checkpointer).toOpaque()
        sqlite3_wal_hook(handle, { context, _, _, pages in
            guard let context else { return SQLITE_OK }
            Unmanaged<Checkpointer>.fromOpaque(context).takeUnretainedValue().committed(walPages: Int(pages))
            return SQLITE_OK
        }, context)
    }
}
