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

    public init(author: String, id: String, time: UInt64, text: String, book: String, index: UInt64) {
        self.author = author
        self.id = id
        self.time = time
        self.text = text
        self.book = book
        self.index = index
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
        guard case .chat = page.kind else { return }
        guard let text = page.text else {
            malformed += 1
            return
        }
        let id = page.meta.fields["id"] ?? "\(book.hex.prefix(16)):\(index)"
        entries.append(LogEntry(author: name.author.publicKey.hex, id: id, time: page.meta.time, text: text,
                                book: book.hex, index: index))
    }

    /// The log: deduplicated and ordered. `preferredBooks` wins a tie between copies.
    public func ordered(preferring preferredBooks: Set<String> = []) -> [LogEntry] {
        var byKey: [String: LogEntry] = [:]
        for entry in entries {
            if let existing = byKey[entry.key], preferredBooks.contains(existing.book) || !preferredBooks.contains(entry.book) {
                continue
            }
            byKey[entry.key] = entry
        }
        return byKey.values.sorted { ($0.time, $0.author, $0.index, $0.id) < ($1.time, $1.author, $1.index, $1.id) }
    }
}
