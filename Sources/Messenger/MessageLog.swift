import Books
import Sodium
import Swarm

/// One entry of a task's log: a chat message, a file attached, or a member's join
/// (PROTOCOL.md §10.3). A file its author withdrew stays an entry, in its place, without
/// its name and caption (`withdrawn`).
public struct LogEntry: Codable, Hashable, Sendable {
    /// What the entry records: the page type it was read from.
    public enum Kind: String, Codable, Hashable, Sendable {
        /// A `chat` page: `text` is the message.
        case chat
        /// A `join` page: the author joined the task (by its invite) at `time`; `text` is "".
        case join
        /// A `file` page: the author attached a file (`LogEntry.file`); `text` is its caption.
        case file
        /// A `successor` page: the author moved the task on to a task of its own without the
        /// members in `without` (`LogEntry.without`, `LogEntry.with`); `text` is "".
        case successor

        /// The page type (§10.2): the last key of the log's order.
        var pageType: UInt64 {
            switch self {
            case .chat: return 1
            case .join: return 3
            case .file: return 9
            case .successor: return 10
            }
        }

        /// Whether the entry counts as a message (§10.3): a chat or a file, never a join or
        /// a move to a successor.
        public var isMessage: Bool { self == .chat || self == .file }
    }

    /// Author's peer id (hex).
    public var author: String
    /// The author's message id (`meta.fields["id"]`), the same in every book it was written to.
    public var id: String
    /// Milliseconds since the Unix epoch, by the author's clock.
    public var time: UInt64
    /// The message; a file's caption ("" if none); "" for a join.
    public var text: String
    /// The book and index it was read from.
    public var book: String
    public var index: UInt64
    /// The author's display name as their newest `name` page held here says (their claim:
    /// show it with the peer id), or nil.
    public var name: String?
    /// A message or a join. In JSON (§10.7) the key `kind` is written for a join only
    /// (`"kind":"join"`): a chat entry's JSON is what it was before joins were written.
    public var kind: Kind
    /// On a file entry: the file, as its `file` page describes it; nil otherwise.
    public var file: AttachedFile?
    /// On a successor entry: the members left out and those taken along (peer ids, hex);
    /// nil otherwise.
    public var without: [String]?
    public var with: [String]?
    /// On a successor entry: the newest display names of the members it names (peer id hex
    /// → name, those with a name only), so that the line can say whom; nil otherwise.
    public var names: [String: String]?
    /// On a file entry: its author withdrew the file (a `withdraw` page, PROTOCOL.md §10.2,
    /// Withdrawn files). The entry then has no `file` and an empty `text`: its name and
    /// caption are not shown, and it cannot be saved. In JSON only when true.
    public var withdrawn = false

    public init(author: String, id: String, time: UInt64, text: String, book: String, index: UInt64, name: String? = nil,
                kind: Kind = .chat, file: AttachedFile? = nil, without: [String]? = nil, with: [String]? = nil) {
        self.author = author
        self.id = id
        self.time = time
        self.text = text
        self.book = book
        self.index = index
        self.name = name
        self.kind = kind
        self.file = file
        self.without = without
        self.with = with
    }

    /// Identifies the entry across books: one kind, one author, one id (a chat and a join
    /// with the same id are two entries, and so are a file and either). The author is 64 hex digits, so no two keys run
    /// into each other.
    public var key: String { kind.rawValue + "/" + author + "/" + id }

    /// The log's order (§10.3): time, author id, index of the copy kept, id, page type.
    public static func precedes(_ a: LogEntry, _ b: LogEntry) -> Bool {
        (a.time, a.author, a.index, a.id, a.kind.pageType) < (b.time, b.author, b.index, b.id, b.kind.pageType)
    }

    private enum CodingKeys: String, CodingKey { case author, id, time, text, book, index, name, kind, file, without, with, names, withdrawn }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        author = try c.decode(String.self, forKey: .author)
        id = try c.decode(String.self, forKey: .id)
        time = try c.decode(UInt64.self, forKey: .time)
        text = try c.decode(String.self, forKey: .text)
        book = try c.decode(String.self, forKey: .book)
        index = try c.decode(UInt64.self, forKey: .index)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .chat
        file = try c.decodeIfPresent(AttachedFile.self, forKey: .file)
        without = try c.decodeIfPresent([String].self, forKey: .without)
        with = try c.decodeIfPresent([String].self, forKey: .with)
        names = try c.decodeIfPresent([String: String].self, forKey: .names)
        withdrawn = try c.decodeIfPresent(Bool.self, forKey: .withdrawn) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(author, forKey: .author)
        try c.encode(id, forKey: .id)
        try c.encode(time, forKey: .time)
        try c.encode(text, forKey: .text)
        try c.encode(book, forKey: .book)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(name, forKey: .name)
        if kind != .chat { try c.encode(kind, forKey: .kind) }
        try c.encodeIfPresent(file, forKey: .file)
        try c.encodeIfPresent(without, forKey: .without)
        try c.encodeIfPresent(with, forKey: .with)
        try c.encodeIfPresent(names, forKey: .names)
        if withdrawn { try c.encode(true, forKey: .withdrawn) }
    }

    /// The entry of a file its author withdrew: still in its place, as a file, without its
    /// name, size, hash and caption (PROTOCOL.md §10.2, Withdrawn files).
    public mutating func withdraw() {
        withdrawn = true
        text = ""
        file = nil
    }

    /// Names the entry as `name` (peer id hex → newest name) says: its author, and on a
    /// successor entry the members it names. True if anything changed.
    @discardableResult
    public mutating func takeNames(_ name: (String) -> String?) -> Bool {
        let before = (self.name, names)
        self.name = name(author)
        if kind == .successor {
            var named: [String: String] = [:]
            for member in (without ?? []) + (with ?? []) { named[member] = name(member) }
            names = named.isEmpty ? nil : named
        }
        return before != (self.name, names)
    }
}

/// Builds a task's log from the pages of all its books that a peer holds (flow 2).
///
/// * Only `chat`, `join` and `file` pages make entries; each must name the book's author and the
///   book itself in its head, or it is counted as malformed and left out (a book id is
///   bound to its author by the session that announced it, and the author signed the page:
///   a mismatch means a buggy or hostile writer, not a message). A `join` must name its
///   author in its data (32 bytes), or it is malformed too; so must a `file` or `chunk` page
///   break none of §10.2's rules for files. A `chunk` makes no entry: where each part of a
///   file sits is kept for `parts(of:)`. Nor does a `withdraw`: it marks its author's file
///   of the id it names as withdrawn (`withdrawal(of:)`), whichever of the two is read first.
/// * A peer's own messages and joins sit in its journal and in each of its pairwise books:
///   they are deduplicated by (kind, author, id); the journal's copy wins, so every peer
///   orders a given author's entries the same way.
/// * Order: author's time, then author id, then index in the canonical book, then id, then
///   page type — a total order that every member computes identically from the same pages.
public struct MessageLog: Sendable {
    public private(set) var entries: [LogEntry] = []
    public private(set) var malformed = 0
    /// Each author's newest display name (peer id hex → name), from `name` pages: the one
    /// with the latest author's time, then the later generation, then the later index.
    public var names: [String: String] { newestNames.mapValues(\.name) }
    private var newestNames: [String: (order: NameOrder, name: String)] = [:]
    /// Each book read (book id hex → its reader and generation), to choose between copies.
    private var bookOrder: [String: (reader: String, generation: UInt32)] = [:]
    private typealias NameOrder = (time: UInt64, generation: UInt32, index: UInt64)
    /// Every copy of every part of a file read: "author/id" → part number → copies.
    private var partCopies: [String: [UInt64: [PartCopy]]] = [:]
    /// Every `successor` page read, in the books of their authors for other members (not
    /// journals): where a member finds the invite sealed to it.
    public private(set) var successors: [SuccessorCopy] = []
    /// The `successor` pages this peer followed ("author hex/id"), from its journal's
    /// `followed` pages, and the successor task each led to.
    public private(set) var followed: [String: InviteCode] = [:]
    /// The successor tasks this peer moved this task on to or followed a member to, in its
    /// journal's order (its `successor` and `followed` pages): the newest last.
    public private(set) var movedOn: [InviteCode] = []
    /// The task's first move (§10.3, Concurrent moves), as the peer whose journal this log
    /// read sees it: of every `successor` page read, the first by author's time, then author
    /// id, then id — leaving out, first, the moves of members that a move this peer made or
    /// followed left out (none of them can undo that move with one dated earlier), then, of
    /// those left, the moves of members another of them left out (unless that leaves none).
    /// Members who moved the task on without seeing each other's move all follow this one.
    public var firstMove: Move? {
        let committed = Set(moves.values.filter { ownMoves.contains($0.key) || followed[$0.key] != nil }.flatMap(\.without))
        let open = moves.values.filter { !committed.contains($0.author) }
        let leftOut = Set(open.flatMap(\.without))
        let eligible = open.filter { !leftOut.contains($0.author) }
        return (eligible.isEmpty ? open : eligible).min()
    }
    /// Every move read, by key; the keys of this peer's own (its journal's).
    private var moves: [String: Move] = [:]
    private var ownMoves: Set<String> = []
    /// Every file withdrawn by its author ("author hex/file id", the `ref` of a `withdraw`
    /// page that author wrote) → its first withdrawal (by time, then id). A withdrawal
    /// applies to its author's own file only: one that names another member's file names
    /// no file of its author's, and changes nothing.
    public private(set) var withdrawals: [String: Withdrawal] = [:]

    /// A `withdraw` page, as the log keeps it: its time and its own id.
    public struct Withdrawal: Hashable, Sendable, Comparable {
        public var time: UInt64
        public var id: String
        public static func < (a: Withdrawal, b: Withdrawal) -> Bool { (a.time, a.id) < (b.time, b.id) }
    }

    private mutating func noteWithdrawal(_ key: String, _ withdrawal: Withdrawal) {
        if withdrawals[key].map({ withdrawal < $0 }) ?? true { withdrawals[key] = withdrawal }
    }

    /// The withdrawal of a file entry, if its author withdrew it; nil for any other entry.
    public func withdrawal(of entry: LogEntry) -> Withdrawal? {
        entry.kind == .file ? withdrawals[Self.key(entry.author, entry.id)] : nil
    }

    /// A move, as the log orders moves, and the members it left out (peer ids, hex).
    public struct Move: Hashable, Sendable, Comparable {
        public var time: UInt64
        public var author: String
        public var id: String
        public var without: [String]
        /// "author hex/id", as `followed` and `SuccessorCopy.key` have it.
        public var key: String { MessageLog.key(author, id) }
        public static func < (a: Move, b: Move) -> Bool { (a.time, a.author, a.id) < (b.time, b.author, b.id) }
    }

    private mutating func noteMove(_ move: Move) { moves[move.key] = move }

    /// A `successor` page in a member's book for another.
    public struct SuccessorCopy: Sendable {
        public var author: PeerID
        public var reader: PeerID
        public var id: String
        public var successor: Successor
        /// "author hex/id", as `followed` has it.
        public var key: String { MessageLog.key(author.publicKey.hex, id) }
    }

    /// Where one copy of a part of a file sits (a `chunk` page), and its length.
    public struct PartCopy: Hashable, Sendable {
        public var book: String
        public var index: UInt64
        public var length: Int
    }

    public init() {}

    /// What the log keys an author's page by, across its books: "author hex/id" (`followed`,
    /// moves, withdrawals, a file's parts).
    static func key(_ author: String, _ id: String) -> String { author + "/" + id }

    /// The book pages come from, with the texts every entry of it repeats, made once.
    public struct Source: Sendable {
        public let book: BookID
        public let name: TaskBookName
        let bookHex: String
        let authorHex: String
        let readerHex: String
        let authorBytes: [UInt8]
        let bookBytes: [UInt8]

        public init(book: BookID, name: TaskBookName) {
            self.book = book
            self.name = name
            bookHex = book.hex
            authorHex = name.author.publicKey.hex
            readerHex = name.reader.publicKey.hex
            authorBytes = name.author.bytes
            bookBytes = book.bytes
        }
    }

    /// One page of a task book.
    public mutating func add(page bytes: [UInt8], index: UInt64, book: BookID, name: TaskBookName) {
        add(page: bytes, index: index, from: Source(book: book, name: name))
    }

    /// One page of the book `source` names.
    public mutating func add(page bytes: [UInt8], index: UInt64, from source: Source) {
        let name = source.name
        guard let page = try? MessengerPage(decoding: bytes) else {
            malformed += 1
            return
        }
        guard page.head.author == source.authorBytes, page.head.book == source.bookBytes, page.head.index == index else {
            malformed += 1
            return
        }
        if case .name = page.kind {
            addName(page, index: index, name: name, author: source.authorHex)
            return
        }
        let kind: LogEntry.Kind
        let text: String
        var file: AttachedFile?
        var moved: Successor?
        switch page.kind {
        case .chat:
            guard let chat = page.text else {
                malformed += 1
                return
            }
            (kind, text) = (.chat, chat)
        case .join:
            // §10.2: the data is the peer id of the member who joined, the page's author.
            guard page.data == name.author.bytes else {
                malformed += 1
                return
            }
            (kind, text) = (.join, "")
        case .file:
            guard let manifest = Attachments.manifest(of: page) else {
                malformed += 1
                return
            }
            (kind, text, file) = (.file, manifest.caption, manifest.file)
        case .successor:
            guard let id = page.meta.fields["id"], Attachments.isHex(id, count: 24),
                  let successor = Successor(data: page.data, author: name.author, reader: name.reader) else {
                malformed += 1
                return
            }
            if name.isJournal {
                ownMoves.insert(Self.key(source.authorHex, id))
                if let task = TaskID(bytes: Array(successor.invite.suffix(TaskID.length))) {
                    movedOn.append(InviteCode(creator: name.author, task: task))
                }
            } else {
                successors.append(SuccessorCopy(author: name.author, reader: name.reader, id: id, successor: successor))
            }
            (kind, text) = (.successor, "")
            moved = successor
            noteMove(Move(time: page.meta.time, author: source.authorHex, id: id, without: successor.without.map(\.publicKey.hex)))
        case .followed:
            // §10.2: the author of the page followed ‖ the successor's invite; journals only.
            guard name.isJournal, let id = page.meta.fields["id"], Attachments.isHex(id, count: 24), page.data.count == 80,
                  let author = try? PeerID(bytes: Array(page.data.prefix(32))), Array(page.data[32..<64]) == Array(page.data.prefix(32)),
                  let task = TaskID(bytes: Array(page.data.suffix(TaskID.length))) else {
                malformed += 1
                return
            }
            followed[Self.key(author.publicKey.hex, id)] = InviteCode(creator: author, task: task)
            movedOn.append(InviteCode(creator: author, task: task))
            return
        case .chunk:
            guard let (id, part) = Attachments.chunk(of: page) else {
                malformed += 1
                return
            }
            bookOrder[source.bookHex] = (source.readerHex, name.generation)
            partCopies[Self.key(source.authorHex, id), default: [:]][part, default: []]
                .append(PartCopy(book: source.bookHex, index: index, length: page.data.count))
            return
        case .withdraw:
            // §10.2: no data; its own id, and the id of the file its author withdraws.
            guard page.data.isEmpty, let id = page.meta.fields["id"], Attachments.isHex(id, count: 24),
                  let file = page.meta.fields["ref"], Attachments.isHex(file, count: 24) else {
                malformed += 1
                return
            }
            noteWithdrawal(Self.key(source.authorHex, file), Withdrawal(time: page.meta.time, id: id))
            return
        default:
            return
        }
        let id = page.meta.fields["id"] ?? "\(source.bookHex.prefix(16)):\(index)"
        bookOrder[source.bookHex] = (source.readerHex, name.generation)
        entries.append(LogEntry(author: source.authorHex, id: id, time: page.meta.time, text: text,
                                book: source.bookHex, index: index, kind: kind, file: file,
                                without: moved.map { $0.without.map(\.publicKey.hex) }, with: moved.map { $0.with.map(\.publicKey.hex) }))
    }

    /// Lets go of the entries (kept in an `OrderedLog`), keeping what else was read: the
    /// names, the books' ranks and the files' parts.
    mutating func forgetEntries() { entries = [] }

    /// Whether nothing was read into this log.
    public var isEmpty: Bool {
        entries.isEmpty && malformed == 0 && newestNames.isEmpty && partCopies.isEmpty && successors.isEmpty && followed.isEmpty
            && moves.isEmpty && withdrawals.isEmpty
    }

    /// Takes in what another log (of other books of the same task) has read.
    public mutating func absorb(_ other: MessageLog) {
        entries += other.entries
        bookOrder.merge(other.bookOrder) { mine, _ in mine }
        malformed += other.malformed
        for (file, parts) in other.partCopies {
            partCopies[file, default: [:]].merge(parts) { $0 + $1 }
        }
        successors += other.successors
        followed.merge(other.followed) { mine, _ in mine }
        movedOn += other.movedOn
        for move in other.moves.values { noteMove(move) }
        ownMoves.formUnion(other.ownMoves)
        for (key, withdrawal) in other.withdrawals { noteWithdrawal(key, withdrawal) }
        absorbNames(other)
    }

    /// Takes in the names another log has read: each author's newest.
    private mutating func absorbNames(_ other: MessageLog) {
        for (author, named) in other.newestNames where newestNames[author].map({ $0.order < named.order }) ?? true {
            newestNames[author] = named
        }
    }

    /// A `name` page whose text is not a valid display name (too long, control characters)
    /// is malformed: nothing is shown for it.
    private mutating func addName(_ page: MessengerPage, index: UInt64, name: TaskBookName, author: String) {
        guard let text = String(validating: page.data, as: UTF8.self), let shown = Messenger.displayName(text), shown == text else {
            malformed += 1
            return
        }
        let order: NameOrder = (page.meta.time, name.generation, index)
        if let existing = newestNames[author], existing.order >= order { return }
        newestNames[author] = (order, text)
    }

    /// The log: deduplicated and ordered, each entry with its author's name. Of several
    /// copies of a message or a join, the one in `preferredBooks` (the journal) is kept, else
    /// the one in the book of the least reader id, then of the earliest generation, then of
    /// the lower index (PROTOCOL.md §10.3): the same choice whatever order the books were
    /// read in.
    public func ordered(preferring preferredBooks: Set<String> = []) -> [LogEntry] {
        OrderedLog(self, preferring: preferredBooks).entries
    }

    /// Whether copy `a` of an entry is kept rather than copy `b` (§10.3; see `ordered`).
    func keeps(_ a: LogEntry, over b: LogEntry, preferring preferredBooks: Set<String>) -> Bool {
        let (ra, rb) = (rank(book: a.book, preferring: preferredBooks), rank(book: b.book, preferring: preferredBooks))
        return (ra.0, ra.1, ra.2, a.index) < (rb.0, rb.1, rb.2, b.index)
    }

    /// The display name an entry of `author` (hex) shows.
    func name(of author: String) -> String? { newestNames[author]?.name }

    /// How the log ranks a copy by its book (§10.3): the journal (`preferredBooks`) first, then
    /// the book of the least reader id, then of the least generation.
    private func rank(book: String, preferring preferredBooks: Set<String>) -> (Int, String, UInt32) {
        let order = bookOrder[book]
        return (preferredBooks.contains(book) ? 0 : 1, order?.reader ?? "", order?.generation ?? 0)
    }

    /// The parts of a file entry held here, one copy of each (PROTOCOL.md §10.2, Files): the
    /// copy in the entry's own book, else the first in the log's order of copies (then the
    /// lower index). Parts numbered beyond the file's are not its. Empty for another entry.
    public func parts(of entry: LogEntry, preferring preferredBooks: Set<String> = []) -> [UInt64: PartCopy] {
        guard entry.kind == .file, let file = entry.file, let held = partCopies[Self.key(entry.author, entry.id)] else { return [:] }
        var chosen: [UInt64: PartCopy] = [:]
        for (part, copies) in held where part < file.parts {
            chosen[part] = copies.min { a, b in
                let (ra, rb) = (rank(book: a.book, preferring: preferredBooks), rank(book: b.book, preferring: preferredBooks))
                return (a.book == entry.book ? 0 : 1, ra.0, ra.1, ra.2, a.index) < (b.book == entry.book ? 0 : 1, rb.0, rb.1, rb.2, b.index)
            }
        }
        return chosen
    }
}

/// A task's log in its order (§10.3), with the copy kept of each entry by key, so that the
/// entries read since can be put in their places without ordering the whole log again
/// (`take`): a change of a long task (a message, a member's join) then costs a few lookups,
/// not a sort of every entry.
struct OrderedLog: Sendable {
    /// Identifies an entry across books (`LogEntry.key`), without building a text.
    struct Key: Hashable, Sendable {
        let kind: LogEntry.Kind
        let author: String
        let id: String

        init(_ entry: LogEntry) { (kind, author, id) = (entry.kind, entry.author, entry.id) }

        /// The file entry a withdrawal names ("author hex/file id", `MessageLog.withdrawals`).
        init?(withdrawn key: String) {
            guard let slash = key.firstIndex(of: "/") else { return nil }
            (kind, author, id) = (.file, String(key[..<slash]), String(key[key.index(after: slash)...]))
        }
    }

    private(set) var entries: [LogEntry] = []
    /// The copy kept of each entry, as it stands in `entries`.
    private var kept: [Key: LogEntry] = [:]
    /// Messages (`LogEntry.Kind.isMessage`) among `entries`, by author (hex).
    private(set) var messagesByAuthor: [String: Int] = [:]
    /// The entries `take` added (not those `init` ordered), in the order they came: what a
    /// follower of the log has not seen yet is at the end.
    private(set) var arrivals: [LogEntry] = []

    /// Messages among the entries: chats and files, never joins (§10.3).
    var messages: Int { messagesByAuthor.values.reduce(0, +) }

    /// The whole log of `log`, ordered.
    init(_ log: MessageLog, preferring preferredBooks: Set<String>) {
        // The copy kept of each entry is chosen, and the entries ordered, by their places in
        // `log.entries`; each is copied once, at the end. (Copying entries into a table as
        // they were chosen, then sorting the entries themselves — a dozen references moved
        // at every step — took two thirds of a cold read.)
        var chosen: [Key: Int] = [:]
        var places: [Int] = []
        log.entries.withUnsafeBufferPointer { all in
            for i in all.indices {
                let key = Key(all[i])
                if let current = chosen[key], !log.keeps(all[i], over: all[current], preferring: preferredBooks) { continue }
                chosen[key] = i
            }
            places = Array(chosen.values)
            places.sort { a, b in
                let (x, y) = (all[a].time, all[b].time)
                return x != y ? x < y : LogEntry.precedes(all[a], all[b])
            }
        }
        entries.reserveCapacity(places.count)
        kept.reserveCapacity(places.count)
        for place in places {
            var entry = log.entries[place]
            entry.takeNames(log.name(of:))
            if log.withdrawal(of: entry) != nil { entry.withdraw() }
            entries.append(entry)
            kept[Key(entry)] = entry
            if entry.kind.isMessage { messagesByAuthor[entry.author, default: 0] += 1 }
        }
    }

    /// Takes in `added`, entries that `log` read since this order was made (or last
    /// taken in), and `withdrawn`, the keys of the withdrawals it read since
    /// (`MessageLog.withdrawals`), its names set (`name(by:)`): the result is what `init`
    /// makes of `log` with every entry and withdrawal it read.
    mutating func take(_ added: [LogEntry], withdrawn: [String] = [], of log: MessageLog, preferring preferredBooks: Set<String>) {
        withdraw(withdrawn)
        var fresh: [Key: LogEntry] = [:]
        for var entry in added {
            entry.takeNames(log.name(of:))
            if log.withdrawal(of: entry) != nil { entry.withdraw() }
            let key = Key(entry)
            let current = fresh[key] ?? kept[key]
            if let current, !log.keeps(entry, over: current, preferring: preferredBooks) { continue }
            fresh[key] = entry
        }
        guard !fresh.isEmpty else { return }
        for (key, entry) in fresh {
            // A copy kept before and now replaced leaves its place.
            if let old = kept[key] {
                let at = position(of: old)
                if at < entries.count, entries[at] == old { entries.remove(at: at) }
            } else if entry.kind.isMessage {
                // A copy replacing another is of the same kind and author: counted once.
                messagesByAuthor[entry.author, default: 0] += 1
            }
            kept[key] = entry
        }
        let sorted = fresh.values.sorted(by: LogEntry.precedes)
        arrivals += sorted
        if let last = entries.last, !LogEntry.precedes(last, sorted[0]) {
            if sorted.count <= 32 {
                for entry in sorted { entries.insert(entry, at: position(of: entry)) }
            } else {
                entries = Self.merge(entries, sorted)
            }
        } else {
            entries += sorted
        }
    }

    /// Marks the file entries kept that `keys` name ("author hex/file id") as withdrawn, in
    /// their places (withdrawing hides a file's name and caption, not its entry: the order
    /// does not change), and hands each to followers among the arrivals once more: what they
    /// showed of it is out of date.
    private mutating func withdraw(_ keys: [String]) {
        for key in keys {
            guard let key = Key(withdrawn: key), let old = kept[key], !old.withdrawn else { continue }
            let at = position(of: old)
            guard at < entries.count, entries[at] == old else { continue }
            var entry = old
            entry.withdraw()
            entries[at] = entry
            kept[key] = entry
            arrivals.append(entry)
        }
    }

    /// Shows each author's name as `names` (author hex → name) says: an author's newest
    /// name is on every entry of theirs. The order does not change (names are not in it).
    mutating func name(by names: [String: String]) {
        for i in entries.indices where entries[i].takeNames({ names[$0] }) {
            kept[Key(entries[i])] = entries[i]
        }
        for i in arrivals.indices { arrivals[i].takeNames { names[$0] } }
    }

    /// The first index whose entry does not precede `entry` (where it stands, or would).
    private func position(of entry: LogEntry) -> Int {
        var (low, high) = (0, entries.count)
        while low < high {
            let middle = (low + high) / 2
            if LogEntry.precedes(entries[middle], entry) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private static func merge(_ a: [LogEntry], _ b: [LogEntry]) -> [LogEntry] {
        var merged: [LogEntry] = []
        merged.reserveCapacity(a.count + b.count)
        var (i, j) = (0, 0)
        while i < a.count && j < b.count {
            if LogEntry.precedes(b[j], a[i]) { merged.append(b[j]); j += 1 } else { merged.append(a[i]); i += 1 }
        }
        merged += a[i...]
        merged += b[j...]
        return merged
    }
}
