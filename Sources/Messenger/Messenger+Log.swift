import Books
import Swarm

/// A task's log (PROTOCOL.md §10.3) as the messenger keeps it: read from its books a page
/// once, kept in order per task, handed to followers by what arrived since their cursor.
extension Messenger {
    /// The task's log from every book held here, deduplicated and ordered: its messages and
    /// its members' joins (`LogEntry.kind`).
    public func log(of task: TaskID) throws -> [LogEntry] { try taskLog(of: task).order.entries }

    /// The task's log as it stands, kept between calls: the pages that arrived since the last
    /// call are read (`bookLogUpdate`) and their entries put in their places in the order
    /// kept (`OrderedLog.take`); a book new to the task (a member met) is read whole the
    /// same way, and a changed display name is set on its author's entries in place. The
    /// log is read anew from every book only when what was kept no longer describes them:
    /// a book gone, or read again from its start (a forked book given up). The order holds
    /// each entry once; what the books said besides (names, files' parts) is kept in `log`,
    /// without its entries.
    func taskLog(of task: TaskID, books given: [(name: TaskBookName, book: Book)]? = nil) throws -> TaskLogCache {
        guard tasks[task] != nil else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        let books = try given ?? self.books(of: task)
        let journals = Set(books.filter(\.name.isJournal).map(\.book.id.hex))
        // Taken out while it changes: a copy left in the table would make every change copy
        // the whole log.
        if var cache = taskLogs.removeValue(forKey: task), cache.journals == journals,
           Set(cache.books.keys).isSubset(of: books.map(\.book.id)) {
            var added: [LogEntry] = []
            var withdrawn: [String] = []
            var consistent = true
            for (name, book) in books {
                let update = try bookLogUpdate(of: book, name: name)
                let known = cache.books[book.id]
                guard known == update.before || (known == nil && update.before.pages == 0) else {
                    consistent = false
                    break
                }
                cache.books[book.id] = update.after
                guard !update.delta.isEmpty else { continue }
                cache.log.absorb(update.delta)
                added += update.delta.entries
                withdrawn += update.delta.withdrawals.keys
            }
            if consistent {
                cache.log.forgetEntries()
                let names = cache.log.names
                if names != cache.names {
                    cache.names = names
                    cache.order.name(by: names)
                    cache.build = newBuild()
                }
                cache.order.take(added, withdrawn: withdrawn, of: cache.log, preferring: journals)
                taskLogs[task] = cache
                return cache
            }
        }
        var log = MessageLog()
        var versions: [BookID: BookLogCache.Version] = [:]
        for (name, book) in books {
            logCache[book.id] = nil
            let update = try bookLogUpdate(of: book, name: name)
            log.absorb(update.delta)
            versions[book.id] = update.after
        }
        let order = OrderedLog(log, preferring: journals)
        log.forgetEntries()
        let cache = TaskLogCache(books: versions, journals: journals, log: log, names: log.names, order: order, build: newBuild())
        taskLogs[task] = cache
        return cache
    }

    /// Reads the pages of one book that arrived since the last call into a log of their own
    /// (`BookLogUpdate.delta`): a chat that follows a long task reads each new page once,
    /// not the whole task on every message. Books only grow, but for a forked one given up
    /// (`Book.becomeReader`), which turns read-only and empty before it fills again with
    /// another history: a book whose held pages no longer include all those read, or whose
    /// role changed, is read again from its start (a new `BookLogCache.Version.cache`).
    func bookLogUpdate(of book: Book, name: TaskBookName) throws -> BookLogUpdate {
        let held = book.heldRanges()
        var cache = logCache.removeValue(forKey: book.id) ?? newBookLogCache(writable: book.isWritable)
        if cache.writable != book.isWritable || !cache.read.ranges.allSatisfy(held.containsAll) {
            cache = newBookLogCache(writable: book.isWritable)
        }
        let before = cache.version
        var delta = MessageLog()
        let source = MessageLog.Source(book: book.id, name: name)
        for range in held.ranges {
            for unread in cache.read.missing(in: range) {
                // In runs of pages copied out under the store's lock, read out of it.
                var next = unread.lowerBound
                while next < unread.upperBound {
                    var pages: [[UInt8]] = []
                    let handed = try storage {
                        try book.withPages(in: next..<min(unread.upperBound, next + 1024), maxBytes: 4 << 20) { pages.append(Array($0)) }
                    }
                    for (offset, page) in pages.enumerated() { delta.add(page: page, index: next + UInt64(offset), from: source) }
                    next = handed.upperBound
                }
            }
        }
        if !delta.isEmpty { cache.version.pages += 1 }
        cache.read = held
        logCache[book.id] = cache
        return BookLogUpdate(delta: delta, before: before, after: cache.version)
    }

    private func newBookLogCache(writable: Bool) -> BookLogCache {
        BookLogCache(writable: writable, version: .init(cache: newBuild(), pages: 0))
    }

    /// A number no book cache or task order had before.
    private func newBuild() -> UInt64 {
        nextLogCache += 1
        return nextLogCache
    }

    /// Where a follower of a task's log stands (`logEntries(of:after:)`).
    public struct LogCursor: Sendable, Equatable {
        let build: UInt64
        let arrivals: Int
    }

    /// The task's log entries a follower has not had since `cursor`, and where it stands
    /// then: after a change, the entries taken in since (each change costs what it added,
    /// however long the task); the whole log, in order, for no cursor or when the log was
    /// ordered anew since (a book read again, a display name changed) — the follower then
    /// tells the entries it has already shown by their keys.
    public func logEntries(of task: TaskID, after cursor: LogCursor?) throws -> (entries: [LogEntry], cursor: LogCursor) {
        let cache = try taskLog(of: task)
        let next = LogCursor(build: cache.build, arrivals: cache.order.arrivals.count)
        guard let cursor, cursor.build == next.build, cursor.arrivals <= next.arrivals else { return (cache.order.entries, next) }
        return (Array(cache.order.arrivals[cursor.arrivals...]), next)
    }

    /// Marks every message of the task as read (the marker counts messages and files, never joins).
    public func markRead(_ task: TaskID) throws {
        let order = try taskLog(of: task).order
        markers.markSeen(task, count: order.messages - (order.messagesByAuthor[localPeer.publicKey.hex] ?? 0))
    }
}

/// Which pages of one book the task's log has read (`Messenger.bookLogUpdate`).
struct BookLogCache {
    /// Which cache of the book (one per reading from its start) and how many reads added to
    /// it: a task's log built from `version` can take in what a later read adds.
    struct Version: Equatable, Sendable {
        var cache: UInt64
        var pages: Int
    }

    var read = PageRanges()
    /// Whether the book was the author's when read (a given-up book turns read-only).
    var writable: Bool
    var version: Version
}

/// What a read of one book's new pages gives (`Messenger.bookLogUpdate`): what this read
/// found, and the book's version before and after it.
struct BookLogUpdate {
    var delta: MessageLog
    var before: BookLogCache.Version
    var after: BookLogCache.Version
}

/// A task's log as `Messenger.taskLog` keeps it: the version of each book it was built
/// from, what the books said besides the entries (`log`, its entries forgotten: names,
/// files' parts), the names, and the order (each entry once).
struct TaskLogCache {
    var books: [BookID: BookLogCache.Version]
    var journals: Set<String>
    var log: MessageLog
    var names: [String: String]
    var order: OrderedLog
    /// Which ordering of the log `order` is (`Messenger.LogCursor`).
    var build: UInt64
}
