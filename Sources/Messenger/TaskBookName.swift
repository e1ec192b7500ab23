import Books
import Swarm

/// The names of a task's books in a peer's store (DESIGN vocabulary, PROTOCOL.md §10.3):
/// `${author}-${reader}-${task}` with both peer ids as 64 hex digits and the task id as 32,
/// and `.${generation}` after the task id from the second generation on.
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
    /// Which book of the pair this is. An author whose book for a reader turns out forked
    /// (its vault was restored from `identity.key` alone and wrote the book again from page
    /// 0, while the reader holds the old pages) starts the next generation — a new name, so
    /// a new key — and announces it; a reader labels the books it is given for a pair in the
    /// order it learns them. 0 for the first, and for journals.
    public let generation: UInt32

    public init(author: PeerID, reader: PeerID, task: TaskID, generation: UInt32 = 0) {
        self.author = author
        self.reader = reader
        self.task = task
        self.generation = generation
    }

    /// The same pair's book of another generation.
    public func generation(_ generation: UInt32) -> TaskBookName {
        TaskBookName(author: author, reader: reader, task: task, generation: generation)
    }

    public static func journal(of peer: PeerID, task: TaskID) -> TaskBookName {
        TaskBookName(author: peer, reader: peer, task: task)
    }

    public var isJournal: Bool { author == reader }

    public var text: String {
        "\(author.publicKey.hex)-\(reader.publicKey.hex)-\(task.hex)" + (generation == 0 ? "" : ".\(generation)")
    }

    /// The parts of a stored title, or nil for a book that is not a task book.
    public init?(parsing name: String) {
        guard let parts = BookName.parts(of: name),
              let authorBytes = [UInt8](hex: parts.author), let author = try? PeerID(bytes: authorBytes),
              let readerBytes = [UInt8](hex: parts.reader), let reader = try? PeerID(bytes: readerBytes) else { return nil }
        let taskParts = parts.task.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(taskParts.count), let task = TaskID(hex: String(taskParts[0])) else { return nil }
        var generation: UInt32 = 0
        if taskParts.count == 2 {
            // Canonical decimal, 1 or more: one name per generation.
            guard let g = UInt32(taskParts[1]), g > 0, String(g) == taskParts[1] else { return nil }
            generation = g
        }
        self.init(author: author, reader: reader, task: task, generation: generation)
    }
}
