import Books
import Swarm

/// The names of a task's books in a peer's store (DESIGN vocabulary, PROTOCOL.md §10.3):
/// `${author}-${reader}-${task}` with both peer ids as 64 hex digits and the task id as 32.
///
/// For every ordered pair of members there is one book (the author writes, the reader
/// reads). One more book per member and task has the member as both author and reader: its
/// **journal**, never shared, which holds the task's invite and everything the member sent,
/// so that `send` works before anyone has joined and a late joiner's new pairwise book can
/// start with the history.
public struct TaskBookName: Hashable, Sendable {
    public let author: PeerID
    public let reader: PeerID
    public let task: TaskID

    public init(author: PeerID, reader: PeerID, task: TaskID) {
        self.author = author
        self.reader = reader
        self.task = task
    }

    public static func journal(of peer: PeerID, task: TaskID) -> TaskBookName {
        TaskBookName(author: peer, reader: peer, task: task)
    }

    public var isJournal: Bool { author == reader }

    public var text: String { "\(author.publicKey.hex)-\(reader.publicKey.hex)-\(task.hex)" }

    /// The parts of a stored title, or nil for a book that is not a task book.
    public init?(parsing name: String) {
        guard let parts = BookName.parts(of: name),
              let authorBytes = [UInt8](hex: parts.author), let author = try? PeerID(bytes: authorBytes),
              let readerBytes = [UInt8](hex: parts.reader), let reader = try? PeerID(bytes: readerBytes),
              let task = TaskID(hex: parts.task) else { return nil }
        self.init(author: author, reader: reader, task: task)
    }
}
