import Books
import Foundation
import Sodium
import Swarm

/// The task messenger of one peer: tasks, invites, chat and bookkeeping over the peer's
/// book store (this file), and the connection protocol over its swarm
/// (`Messenger+Network.swift`).
///
/// Everything durable lives in books, so a vault is its store plus its identity:
/// * a task is the peer's **journal** for it (`TaskBookName.journal`), whose page 0 is a
///   `task` page holding the invite (creator ‖ task id) and, for the creator, the title;
/// * a message is a `chat` page appended to the journal and to every pairwise book the
///   peer writes in the task (one per reader), all with the same message id; a pairwise
///   book created later starts with its reader's address, the title (creator only), and
///   the history from the journal — so `send` works offline and late joiners catch up.
/// Only the read markers (unread counts) live outside the store, in a small JSON file.
public actor Messenger {
    public nonisolated let localPeer: PeerID
    public nonisolated let store: BookStore
    /// Milliseconds since the Unix epoch, for `meta.time` (injected so tests fix it).
    let wallClock: @Sendable () -> UInt64
    let markers: ReadMarkers

    struct TaskRecord {
        let id: TaskID
        let creator: PeerID
        /// The title from our own journal (creator) — joiners read it from the creator's book.
        let ownTitle: String?
        var invite: InviteCode { InviteCode(creator: creator, task: id) }
    }

    var tasks: [TaskID: TaskRecord] = [:]
    /// Set while the network runs (see `Messenger+Network.swift`).
    var network: NetworkState?
    var subscribers: [Int: AsyncStream<MessengerEvent>.Continuation] = [:]
    var nextSubscriber = 0
    var recentEvents: [EventReport] = []
    var refusals: [EventReport] = []
    /// Books the other party of the pair refused as forked (two histories under one key, as
    /// after a store restored from `identity.key` alone): ours, refused by its reader, or
    /// theirs, refused by its author. Nobody else's refusal counts (`refused`).
    var refusedAsForked: Set<BookID> = []
    /// Tasks whose `leave` is under way (`join` waits for it to end).
    var leaving: Set<TaskID> = []
    /// What the log has read of each book so far (`bookLogUpdate(of:name:)`).
    var logCache: [BookID: BookLogCache] = [:]
    /// Numbers the book caches and task orders made (`BookLogCache.Version.cache`,
    /// `TaskLogCache.build`).
    var nextLogCache: UInt64 = 0
    /// Each task's log as last built (`taskLog(of:)`).
    var taskLogs: [TaskID: TaskLogCache] = [:]
    /// Titles found in the creator's books (`title(of:)`): a task's title never changes.
    var foundTitles: [TaskID: String] = [:]
    /// The replication policy's view of which topic opens which book (set while online).
    var bookTopics: BookTopics?
    /// How often a book given up was asked of its reader again after a refusal
    /// (`retryTakingBack`).
    var takeBackRetries: [BookID: Int] = [:]
    /// This peer's X25519 key pair (its identity's), which opens the invites of successors
    /// sealed to it.
    let agreementKeys: X25519.KeyPair
    /// Tasks whose successors are being followed now (`followSuccessors`), and successor
    /// pages whose invite did not open (reported once).
    var followingSuccessors: Set<TaskID> = []
    var unopenedSuccessors: Set<String> = []

    /// Opens the messenger of a store. `stateFile` keeps the read markers (nil: in memory);
    /// of a store opened for reading only (`BookStore.writeRefusal`), it is read and not
    /// written, so that the messenger writes nothing: anything that would write to the store
    /// fails with the store's refusal. Such a messenger reads; `run` on it serves what the
    /// store holds and opens the store for writing again once it can be (a daemon started
    /// on a full disk, `Messenger+FullDisk.swift`).
    public init(identity: Ed25519.KeyPair, store: BookStore, stateFile: String? = nil,
                wallClock: @escaping @Sendable () -> UInt64 = { Messenger.milliseconds(since1970: Date()) }) throws {
        localPeer = PeerID(identity.publicKey)
        agreementKeys = try identity.x25519()
        self.store = store
        self.wallClock = wallClock
        markers = ReadMarkers(file: stateFile, saving: store.writeRefusal == nil)
        tasks = try Self.loadTasks(store: store, localPeer: localPeer)
    }

    /// `date` in milliseconds since the Unix epoch, as `meta.time` holds it: 0 for a date
    /// before 1970 (a system clock set back that far; `UInt64` of a negative trapped).
    @usableFromInline static func milliseconds(since1970 date: Date) -> UInt64 {
        let ms = date.timeIntervalSince1970 * 1000
        return ms > 0 ? UInt64(min(ms, 1.8e19)) : 0
    }

    private static func loadTasks(store: BookStore, localPeer: PeerID) throws -> [TaskID: TaskRecord] {
        var found: [TaskID: TaskRecord] = [:]
        for entry in try storage({ try store.list() }) {
            guard let name = entry.name.flatMap(TaskBookName.init(parsing:)), name.isJournal, name.author == localPeer,
                  entry.isWritable else { continue }
            let book = try storage { try store.open(id: entry.id) }
            guard let bytes = try storage({ try book.get(0) }), let page = try? MessengerPage(decoding: bytes),
                  case .task = page.kind, page.data.count == 32 + TaskID.length,
                  let creator = try? PeerID(bytes: Array(page.data.prefix(32))),
                  let task = TaskID(bytes: Array(page.data.suffix(TaskID.length))), task == name.task else { continue }
            found[task] = TaskRecord(id: task, creator: creator, ownTitle: page.meta.fields["title"])
        }
        return found
    }

    // MARK: - Tasks

    /// Creates a task with a random id; the creator's journal records its title.
    public func newTask(title: String) async throws -> TaskSummary {
        let trimmed = title.trimmingCharacters(in: .whitespacesAndNewlines)
        // One line of text, like a name: a title is shown on one line and typed to name the
        // task; a line break or an escape sequence in it could only be shown escaped.
        let refused: (Unicode.Scalar) -> Bool = {
            TerminalText.acts($0) || $0.properties.generalCategory == .lineSeparator || $0.properties.generalCategory == .paragraphSeparator
        }
        guard !trimmed.isEmpty, trimmed.utf8.count <= MessengerPage.maxMetaFieldLength, !trimmed.unicodeScalars.contains(where: refused) else {
            throw MessengerError(.invalidMessage, "a task title is 1…\(MessengerPage.maxMetaFieldLength) bytes of text on one line, "
                                 + "without control characters (\(Self.problem(of: trimmed, typed: title, refused: refused)))")
        }
        let id = TaskID.random()
        try startJournal(task: id, creator: localPeer, title: trimmed)
        tasks[id] = TaskRecord(id: id, creator: localPeer, ownTitle: trimmed)
        if network != nil { await startTask(id) }
        return try summary(of: id)
    }

    /// Records a task of an invite code (the network part of joining is `startTask`): its
    /// journal starts with a `join` page, which every member will show as "… joined".
    /// Joining a task again is harmless (nothing is written); joining after leaving it, or
    /// after losing the store, starts a new journal, so a new `join`.
    @discardableResult
    public func join(_ invite: InviteCode) async throws -> TaskSummary {
        // A leave of this task under way deletes its books once its awaits are done: a
        // journal started now would go with them.
        guard !leaving.contains(invite.task) else {
            throw MessengerError(.alreadyMember, "task \(invite.task.hex) is being left right now; join it again once that is done")
        }
        if tasks[invite.task] == nil {
            try startJournal(task: invite.task, creator: invite.creator, title: nil, joining: true)
            tasks[invite.task] = TaskRecord(id: invite.task, creator: invite.creator, ownTitle: nil)
        }
        if network != nil { await startTask(invite.task) }
        return try summary(of: invite.task)
    }

    /// Starts the journal of a task: its `task` page, then the `name` page (if a name was
    /// chosen), then — `joining` by an invite — a `join` page naming this peer, with a fresh
    /// id, one batch (PROTOCOL.md §10.3). The join travels into every pairwise book this peer
    /// writes in the task (`createPairwiseBook`), so each member shows when it joined; the
    /// creator writes none (its task starts with it).
    private func startJournal(task: TaskID, creator: PeerID, title: String?, joining: Bool = false) throws {
        let journal = try storage { try store.createOrOpen(name: TaskBookName.journal(of: localPeer, task: task).text) }
        guard journal.length == 0 else { return }
        var fields: [String: String] = [:]
        if let title { fields["title"] = title }
        var specs = [PageSpec(kind: .task, data: creator.bytes + task.bytes, fields: fields)] + (try namePage())
        if joining { specs.append(PageSpec(kind: .join, data: localPeer.bytes, fields: ["id": SecureRandom.bytes(12).hexString])) }
        try append(specs, to: journal)
    }

    /// Finds a task from what a person typed: its id or an unambiguous prefix of it (at
    /// least 4 hex digits), its invite code, or its exact title (of a task and the one it
    /// moved on to, the latter).
    public func resolveTask(_ text: String) throws -> TaskID {
        let typed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if let invite = try? InviteCode(parsing: typed), tasks[invite.task] != nil { return invite.task }
        let lower = typed.lowercased()
        if lower.count >= 4, lower.allSatisfy(\.isHexDigit) {
            let hits = tasks.keys.filter { $0.hex.hasPrefix(lower) }
            if hits.count == 1 { return hits[0] }
            if hits.count > 1 { throw MessengerError(.ambiguousTask, "\"\(typed)\" matches \(hits.count) tasks; type more of the id") }
        }
        let titles = tasks.keys.compactMap { task in title(of: task).map { (task, $0) } }
        let titled = current(titles.filter { $0.1 == typed }.map(\.0))
        if titled.count == 1 { return titled[0] }
        if titled.count > 1 {
            let ids = titled.map { String($0.hex.prefix(8)) }.sorted()
            throw MessengerError(.ambiguousTask, "\(titled.count) tasks are titled \"\(typed)\"; use the id: "
                                 + ids.dropLast().joined(separator: ", ") + " or " + ids.last!)
        }
        // Then the title as typed in any case (and width, and accents), whole, or the
        // beginning of one title only: `log roof` for "Fix the roof" is not a match, `log fix` is.
        let folded = Self.folded
        let key = folded(typed)
        if !key.isEmpty {
            let whole = titles.filter { folded($0.1) == key }
            let found = whole.isEmpty ? titles.filter { folded($0.1).hasPrefix(key) } : whole
            let matches = current(found.map(\.0))
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                let shown = matches.map { title(of: $0) ?? "task \($0.hex.prefix(8))" }.sorted()
                let listed = shown.prefix(3).map { "\"\($0)\"" }.joined(separator: ", ") + (shown.count > 3 ? ", …" : "")
                throw MessengerError(.ambiguousTask, "\"\(typed)\" matches \(shown.count) tasks (\(listed)); type more of the title, or use the id")
            }
        }
        // An invite code (or what looks like one) of a task not joined here.
        let hint = typed.lowercased().hasPrefix("bsw1") ? "to join it: bookswarm join CODE" : "see: bookswarm tasks"
        throw MessengerError(.unknownTask, "unknown task \"\(typed)\" (\(hint))")
    }

    /// Text as typed names match it: in any case, accents and width.
    static func folded(_ text: String) -> String {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil)
    }

    /// The tasks that tasks a title matches stand for (§10.3, Successors): after a move, the
    /// title names the new task. Each task is followed to the newest task it moved on to
    /// (or this peer followed a member to) or the task that superseded it, held here, as far
    /// as that goes — even before the new task's own title has arrived. Without repeats.
    private func current(_ matching: [TaskID]) -> [TaskID] {
        var named: [TaskID] = []
        let superseding = matching.isEmpty ? [:] : supersessions()
        for task in matching {
            var newest = task
            var seen: Set<TaskID> = [task]
            while let next = (try? taskLog(of: newest).log.movedOn.last(where: { tasks[$0.task] != nil })?.task) ?? superseding[newest],
                  seen.insert(next).inserted {
                newest = next
            }
            if !named.contains(newest) { named.append(newest) }
        }
        return named
    }

    public func taskIDs() -> [TaskID] { Array(tasks.keys) }

    public func invite(of task: TaskID) throws -> InviteCode {
        guard let record = tasks[task] else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        return record.invite
    }

    /// The title: the creator's own (its journal's), or the `title` page of the creator's
    /// book for us — or, for a creator whose journal has none (a vault restored from its key
    /// alone starts a new journal), of a book it wrote itself and took back from a reader
    /// (PROTOCOL.md §10.3). Only the creator writes `title` pages, and only books of the
    /// creator's (their pages signed by keys of its books) are looked at.
    func title(of task: TaskID) -> String? {
        guard let record = tasks[task] else { return nil }
        if let own = record.ownTitle { return own }
        if let found = foundTitles[task] { return found }
        // The creator's pairwise books held here: its books for us (any generation), or, for the
        // creator itself, its books for everyone.
        let candidates = ((try? books(of: task)) ?? []).filter { $0.name.author == record.creator && !$0.name.isJournal }
            .sorted { ($0.name.generation, $0.name.reader) < ($1.name.generation, $1.name.reader) }
        for (_, book) in candidates {
            for index in 0..<min(book.contiguousLength, 4) {
                if let bytes = try? book.get(index), let page = try? MessengerPage(decoding: bytes), case .title = page.kind {
                    let title = String(validating: page.data, as: UTF8.self)
                    foundTitles[task] = title
                    return title
                }
            }
        }
        return nil
    }

    /// The task's books held here, by name.
    func books(of task: TaskID) throws -> [(name: TaskBookName, book: Book)] {
        try storage {
            try store.list().compactMap { entry in
                guard let name = entry.name.flatMap(TaskBookName.init(parsing:)), name.task == task,
                      name.author == localPeer || name.reader == localPeer else { return nil }
                return (name, try store.open(id: entry.id))
            }
        }
    }

    /// The book of the pair (`author` writes for `reader`) in use among `books`: its newest
    /// generation (PROTOCOL.md §10.3).
    func newest(_ books: [(name: TaskBookName, book: Book)], author: PeerID, reader: PeerID) -> (name: TaskBookName, book: Book)? {
        books.filter { $0.name.author == author && $0.name.reader == reader }.max { $0.name.generation < $1.name.generation }
    }

    /// Everyone this peer knows in the task: the creator and every other party of a book.
    func members(of task: TaskID) throws -> Set<PeerID> {
        var members: Set<PeerID> = []
        if let creator = tasks[task]?.creator { members.insert(creator) }
        for (name, _) in try books(of: task) {
            members.insert(name.author)
            members.insert(name.reader)
        }
        members.remove(localPeer)
        return members
    }

    /// What stops messages between this peer and `peer`, if a fork does: the book we write
    /// for them has two signed histories (they hold pages of one we no longer have, as after
    /// a store lost and the vault restored from its key; we learn it from their status, or
    /// from their refusal), or their book for us has.
    private func problem(mine: Book?, theirs: Book?, peer: PeerID) -> String? {
        if let mine, isForked(mine) {
            return "\(peer.short) holds another history of the book you write for them (this vault's store was lost and "
                + "restored from identity.key alone?): your messages do not reach them"
        }
        if let theirs, isForked(theirs) {
            return "\(peer.short) signed two different histories of the book they write for you (their vault restored "
                + "from identity.key without its store?): their messages after the fork are not shown"
        }
        return nil
    }

    public func summaries() throws -> [TaskSummary] {
        let superseding = supersessions()
        return try tasks.keys.map { try summary(of: $0, superseding: superseding) }.sorted { ($0.title ?? "", $0.id) < ($1.title ?? "", $1.id) }
    }

    public func summary(of task: TaskID) throws -> TaskSummary { try summary(of: task, superseding: nil) }

    /// `superseding`: `supersessions()`, when the caller made it already.
    private func summary(of task: TaskID, superseding: [TaskID: TaskID]?) throws -> TaskSummary {
        guard let record = tasks[task] else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        let books = try books(of: task)
        let online = network.map { n in Set(n.connections.keys) } ?? []
        let log = try taskLog(of: task, books: books)
        let names = log.names
        let members = try members(of: task).sorted().map { peer in
            let mine = newest(books, author: localPeer, reader: peer)
            let theirs = newest(books, author: peer, reader: localPeer)
            return MemberSummary(peer: peer.publicKey.hex, name: names[peer.publicKey.hex], online: online.contains(peer),
                                 writesTo: mine != nil, readsFrom: theirs != nil,
                                 problem: problem(mine: mine?.book, theirs: theirs?.book, peer: peer))
        }
        // Messages (chats and files) only: a join is shown, but neither counted nor ever unread (§10.7).
        let messages = log.order.messages
        let fromOthers = messages - (log.order.messagesByAuthor[localPeer.publicKey.hex] ?? 0)
        return TaskSummary(id: task.hex, title: title(of: task), creator: record.creator.publicKey.hex,
                           invite: record.invite.text, members: members, messages: messages,
                           unread: max(0, fromOthers - markers.seen(task)), successor: log.log.movedOn.last?.task.hex,
                           supersededBy: (superseding ?? supersessions())[task]?.hex)
    }

    // MARK: - Chat

    /// Appends a chat message to the journal and to every pairwise book this peer writes in
    /// the task. Durable when it returns; readers get it by replication, now or later.
    @discardableResult
    public func send(_ text: String, to task: TaskID) throws -> LogEntry {
        guard tasks[task] != nil else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        let bytes = Array(text.utf8)
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw MessengerError(.invalidMessage, "the message is empty (nothing but white space): nothing sent")
        }
        guard bytes.count <= 64 * 1024 else {
            throw MessengerError(.invalidMessage, "the message is \(bytes.count) bytes; at most 65536 are sent as one message")
        }
        let id = SecureRandom.bytes(12).hexString
        let time = wallClock()
        let written = try appendToBooksWritten([PageSpec(kind: .chat, data: bytes, fields: ["id": id], time: time)], in: task)
        notify(.changed(task))
        guard let journal = written else { throw MessengerError(.storage, "the journal of task \(task.hex) is missing") }
        return LogEntry(author: localPeer.publicKey.hex, id: id, time: time, text: text, book: journal.book.hex, index: journal.index)
    }

    /// Appends `specs` to every book this peer writes in the task, the journal first. A
    /// pairwise book found forked between choosing it and appending (replication records a
    /// fork proof from other threads) is passed over: the next generation, which starts with
    /// everything the journal holds, carries these pages to its reader. Returns where the
    /// journal took them.
    @discardableResult
    func appendToBooksWritten(_ specs: [PageSpec], in task: TaskID) throws -> (book: BookID, index: UInt64)? {
        try appendToBooksWritten(count: specs.count, in: task) { offset, _, _, _ in specs[offset] }
    }

    /// `appendToBooksWritten(_:in:)` for pages made one at a time, as each book's batch is
    /// stored: `spec(offset, reading, first, reader)` is called once per page and book, in
    /// order. `first` is nil for the first book to store the batch, then where that book
    /// stored it (committed, durable): a later book may copy its pages from there through
    /// `reading` rather than make them again (`attach`, whose source could change in
    /// between). `reader` is the book's (this peer for the journal), for pages made for it
    /// (`moveOn`).
    @discardableResult
    func appendToBooksWritten(count: Int, in task: TaskID,
                              _ spec: (Int, BookStore.Reading, _ first: (book: BookID, start: UInt64)?, _ reader: PeerID) throws -> PageSpec) throws
        -> (book: BookID, index: UInt64)? {
        var journal: (book: BookID, index: UInt64)?
        var first: (book: BookID, start: UInt64)?
        for (name, book) in try booksWritten(in: task).sorted(by: { $0.name.isJournal && !$1.name.isJournal }) {
            do {
                let range = try append(count: count, to: book) { offset, reading in try spec(offset, reading, first, name.reader) }
                if name.isJournal { journal = (book.id, range.lowerBound) }
                if first == nil { first = (book.id, range.lowerBound) }
            } catch where !name.isJournal && isForked(book) {
                continue
            }
        }
        return journal
    }

    /// The books this peer writes to in the task: its journal and, per reader, the newest
    /// generation of their pairwise book — never a forked one (the store refuses it; the
    /// next generation replaces it, see `currentPairwiseName`).
    func booksWritten(in task: TaskID) throws -> [(name: TaskBookName, book: Book)] {
        let own = try books(of: task).filter { $0.name.author == localPeer }
        var newest: [PeerID: UInt32] = [:]
        for (name, _) in own { newest[name.reader] = max(newest[name.reader] ?? 0, name.generation) }
        return own.filter { $0.name.generation == newest[$0.name.reader] && ($0.name.isJournal || !isForked($0.book)) }
    }

    // MARK: - Pages

    /// A page to write: what it is, its refs and meta fields, and its time (nil: now).
    struct PageSpec {
        var kind: MessengerPage.Kind
        var data: [UInt8]
        var refs: [MessengerPage.Ref] = []
        var fields: [String: String] = [:]
        var time: UInt64? = nil
    }

    /// Appends pages as one batch (one transaction), each with its head (author, book,
    /// index, hash of the previous page).
    @discardableResult
    func append(_ specs: [PageSpec], to book: Book) throws -> Range<UInt64> {
        try append(count: specs.count, to: book) { offset, _ in specs[offset] }
    }

    /// `append(_:to:)` for a batch made one page at a time, as it is stored
    /// (`Book.append(count:_:)`): `spec(offset, reading)` gives page `offset` of the batch
    /// and may read the store's books through `reading` only.
    @discardableResult
    func append(count: Int, to book: Book, _ spec: (Int, BookStore.Reading) throws -> PageSpec) throws -> Range<UInt64> {
        let now = wallClock()
        var start: UInt64?
        return try storage {
            try book.append(count: count) { index, inBatch, reading in
                var previous = inBatch?.bytes
                if start == nil {
                    start = index
                    // The page before the batch, read inside its transaction: no other
                    // append can come between.
                    if index > 0 {
                        guard let last = try reading.page(index - 1, of: book.id) else {
                            throw MessengerError(.storage, "the last page of book \(book.id.hex.prefix(16))… is missing")
                        }
                        previous = PageHash.leaf(last).bytes
                    }
                }
                let spec = try spec(Int(index - start!), reading)
                let page = MessengerPage(head: .init(author: localPeer.bytes, book: book.id.bytes, index: index, previous: previous),
                                         refs: spec.refs, kind: spec.kind, data: spec.data,
                                         meta: .init(time: spec.time ?? now, fields: spec.fields))
                return page.encoded()
            }
        }
    }

    /// Whether the pair can no longer use `book`: its author signed two histories (we hold
    /// the proof) or a member refused it as forked.
    func isForked(_ book: Book) -> Bool { book.forkProof != nil || refusedAsForked.contains(book.id) }

    /// The name of the book this peer writes for `reader` in `task` now: the newest
    /// generation in the store, or the next one when that is forked (a vault restored from
    /// `identity.key` alone wrote it again from page 0, and the reader holds the old pages).
    func currentPairwiseName(for reader: PeerID, task: TaskID) throws -> TaskBookName {
        guard let newest = newest(try books(of: task), author: localPeer, reader: reader) else {
            return TaskBookName(author: localPeer, reader: reader, task: task)
        }
        // At the cap the forked book stays the pair's (readers refuse more: PROTOCOL.md §10.3).
        guard isForked(newest.book), newest.name.generation + 1 < Self.maxGenerations else { return newest.name }
        return newest.name.generation(newest.name.generation + 1)
    }

    /// Creates the pairwise book this peer writes for `reader` in `task`, if new: its
    /// reader's address first, then the title (creator only), then the history — the
    /// messages, files and joins of books this vault took back after losing its store (§10.3)
    /// that its journal lacks, oldest first, then the journal's — so a new generation, or a
    /// member who joins later, gets every message and file this vault holds and sees when it
    /// joined. Returns the book of the current generation (`currentPairwiseName`).
    func createPairwiseBook(for reader: PeerID, task: TaskID) throws -> Book {
        let name = try currentPairwiseName(for: reader, task: task)
        let book = try storage { try store.createOrOpen(name: name.text) }
        guard book.length == 0 else { return book }
        var specs = [PageSpec(kind: .address, data: reader.bytes + task.bytes)]
        // A restored creator's title comes from a book it took back (`title(of:)`), once it has.
        if let record = tasks[task], record.creator == localPeer, let title = title(of: task) {
            specs.append(PageSpec(kind: .title, data: Array(title.utf8)))
        }
        specs += try namePage()
        /// A page of the history: where it is, and what orders and deduplicates it.
        struct Source {
            var book: BookID
            var index: UInt64
            var key: String?
            var order: (UInt64, String, UInt64, UInt64)
        }
        /// The `chat`, `join`, `chunk`, `file` and `withdraw` pages of a book of ours (a join
        /// only if it names us, as every reader requires), and the journal's `successor`
        /// pages — where they are, not their bytes: a task's files can be far larger than memory.
        func history(of book: Book, isJournal: Bool = false) throws -> [Source] {
            try (0..<book.contiguousLength).compactMap { index in
                guard let bytes = try storage({ try book.get(index) }), let page = try? MessengerPage(decoding: bytes) else { return nil }
                switch page.kind {
                case .chat, .chunk, .file, .withdraw: break
                case .successor: guard isJournal else { return nil }
                case .join: guard page.data == localPeer.bytes else { return nil }
                default: return nil
                }
                return Source(book: book.id, index: index, key: key(page), order: order(page))
            }
        }
        /// A page's identity in the log: its kind and id (a chat and a join may share an id),
        /// and a chunk's part.
        func key(_ page: MessengerPage) -> String? {
            page.meta.fields["id"].map { "\(page.kind.code)/\($0)" + (page.kind == .chunk ? "/\(page.meta.fields["part"] ?? "")" : "") }
        }
        /// The order of pages taken back: time, id, type (a file's chunks before it), part.
        func order(_ page: MessengerPage) -> (UInt64, String, UInt64, UInt64) {
            (page.meta.time, page.meta.fields["id"] ?? "", page.kind.code, Attachments.number(page.meta.fields["part"]) ?? 0)
        }
        let journal = try history(of: try storage { try store.createOrOpen(name: TaskBookName.journal(of: localPeer, task: task).text) },
                                  isJournal: true)
        var seen = Set(journal.compactMap(\.key))
        var recovered: [Source] = []
        for (other, taken) in try books(of: task) where other.author == localPeer && !other.isJournal && !taken.isWritable {
            for page in try history(of: taken) {
                // Only pages with an id: one without is known by its book and index.
                guard let key = page.key, seen.insert(key).inserted else { continue }
                recovered.append(page)
            }
        }
        recovered.sort { $0.order < $1.order }
        let sources = recovered + journal
        // One batch, made a page at a time as it is stored: the history's files are never
        // all in memory at once.
        try append(count: specs.count + sources.count, to: book) { offset, reading in
            guard offset >= specs.count else { return specs[offset] }
            let source = sources[offset - specs.count]
            guard let bytes = try reading.page(source.index, of: source.book) else {
                throw MessengerError(.storage, "page \(source.index) of book \(source.book.hex.prefix(16))… went away while its copy was written")
            }
            let page = try MessengerPage(decoding: bytes)
            // The same kind, id and time: readers deduplicate and order it as the original;
            // a successor's invite made for this reader.
            let data = page.kind == .successor ? try successorData(page.data, for: reader) : page.data
            return PageSpec(kind: page.kind, data: data, refs: page.refs, fields: page.meta.fields, time: page.meta.time)
        }
        return book
    }

    // MARK: - Followers

    /// Events for followers; ends when the subscriber stops iterating.
    public func subscribe() -> AsyncStream<MessengerEvent> {
        let (stream, continuation) = AsyncStream<MessengerEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let key = nextSubscriber
        nextSubscriber += 1
        subscribers[key] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(key) }
        }
        return stream
    }

    private func unsubscribe(_ key: Int) { subscribers[key] = nil }

    func notify(_ event: MessengerEvent) {
        for continuation in subscribers.values { continuation.yield(event) }
    }

    /// Remembers an event for `inspect` (the newest 200): the protocol's, and what became of
    /// a daemon's control request whose client went away (PROTOCOL.md §10.7).
    public func record(_ kind: String, _ detail: String) {
        recentEvents.append(EventReport(time: wallClock(), kind: kind, detail: detail))
        if recentEvents.count > 200 { recentEvents.removeFirst(recentEvents.count - 200) }
    }
}

/// Runs a store call, describing a Books failure as a messenger one.
func storage<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as BooksError {
        throw MessengerError(.storage, error.file.map { "\(error.detail) (\($0))" } ?? error.detail)
    }
}
