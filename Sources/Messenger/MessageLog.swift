import Books
import Sodium
import Swarm

/// One chat message as the log shows it.
public struct LogEntry: Codable, Hashable, Sendable {
    /// Author's peer id (hex).
    public var author: String
    /// The author's message id (`meta.fields["id"]`), the same in every book it was written to.
    public var id: String
    /// Milliseconds since the Unix epoch, by the author's clock.
    public var time: UInt64
    public var text: String
    /// The book and index it was read from.
    public var book: String
    public var index: UInt64
    /// The author's display name as their newest `name` page held here says (their claim:
    /// show it with the peer id), or nil.
    public var name: String?

    public init(author: String, id: String, time: UInt64, text: String, book: String, index: UInt64, name: String? = nil) {
        self.author = author
        self.id = id
        self.time = time
        self.text = text
        self.book = book
        self.index = index
        self.name = name
    }

    /// Identifies the message across books: one author, one id.
    public var key: String { author + "/" + id }
}

/// Builds a task's log from the pages of all its books that a peer holds (flow 2).
///
/// * Only `chat` pages count; each must name the book's author and the book itself in its
///   head, or it is counted as malformed and left out (a book id is bound to its author by
///   the session that announced it, and the author signed the page: a mismatch means a
///   buggy or hostile writer, not a message).
/// * A peer's own messages sit in its journal and in each of its pairwise books: they are
///   deduplicated by (author, message id); the journal's copy wins, so every peer orders a
///   given author's messages the same way.
/// * Order: author's time, then author id, then index in the canonical book — a total
///   order that every member computes identically from the same messages.
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

    public init() {}

    /// One page of a task book.
    public mutating func add(page bytes: [UInt8], index: UInt64, book: BookID, name: TaskBookName) {
        guard let page = try? MessengerPage(decoding: bytes) else {
            malformed += 1
            return
        }
        guard page.head.author == name.author.bytes, page.head.book == book.bytes, page.head.index == index else {
            malformed += 1
            return
        }
        if case .name = page.kind {
            addName(page, index: index, name: name)
            return
        }
        guard case .chat = page.kind else { return }
        guard let text = page.text else {
            malformed += 1
            return
        }
        let id = page.meta.fields["id"] ?? "\(book.hex.prefix(16)):\(index)"
        bookOrder[book.hex] = (name.reader.publicKey.hex, name.generation)
        entries.append(LogEntry(author: name.author.publicKey.hex, id: id, time: page.meta.time, text: text,
                                book: book.hex, index: index))
    }

    /// Takes in what another log (of other books of the same task) has read.
    public mutating func absorb(_ other: MessageLog) {
        entries += other.entries
        bookOrder.merge(other.bookOrder) { mine, _ in mine }
        malformed += other.malformed
        absorbNames(other)
    }

    /// Takes in only the names another log has read (for who is who, without the messages).
    public mutating func absorbNames(_ other: MessageLog) {
        for (author, named) in other.newestNames where newestNames[author].map({ $0.order < named.order }) ?? true {
            newestNames[author] = named
        }
    }

    /// A `name` page whose text is not a valid display name (too long, control characters)
    /// is malformed: nothing is shown for it.
    private mutating func addName(_ page: MessengerPage, index: UInt64, name: TaskBookName) {
        guard let text = String(validating: page.data, as: UTF8.self), let shown = Messenger.displayName(text), shown == text else {
            malformed += 1
            return
        }
        let author = name.author.publicKey.hex
        let order: NameOrder = (page.meta.time, name.generation, index)
        if let existing = newestNames[author], existing.order >= order { return }
        newestNames[author] = (order, text)
    }

    /// The log: deduplicated and ordered, each entry with its author's name. Of several
    /// copies of a message, the one in `preferredBooks` (the journal) is kept, else the one in
    /// the book of the least reader id, then of the earliest generation (PROTOCOL.md §10.3):
    /// the same choice whatever order the books were read in.
    public func ordered(preferring preferredBooks: Set<String> = []) -> [LogEntry] {
        func rank(_ entry: LogEntry) -> (Int, String, UInt32) {
            let order = bookOrder[entry.book]
            return (preferredBooks.contains(entry.book) ? 0 : 1, order?.reader ?? "", order?.generation ?? 0)
        }
        var byKey: [String: LogEntry] = [:]
        for var entry in entries {
            if let existing = byKey[entry.key], rank(existing) <= rank(entry) { continue }
            entry.name = newestNames[entry.author]?.name
            byKey[entry.key] = entry
        }
        return byKey.values.sorted { ($0.time, $0.author, $0.index, $0.id) < ($1.time, $1.author, $1.index, $1.id) }
    }
}
