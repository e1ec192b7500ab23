import Swarm

/// What the messenger reports to its user interfaces (the CLI prints these, or sends them
/// as JSON through the daemon's control socket). Ids are lower-case hex.

public struct TaskSummary: Codable, Hashable, Sendable {
    public var id: String
    public var title: String?
    public var creator: String
    public var invite: String
    public var members: [MemberSummary]
    public var messages: Int
    public var unread: Int
    /// The task this peer moved this one on to, or followed a member to (PROTOCOL.md §10.3,
    /// Successors): its id; absent if none.
    public var successor: String? = nil
    /// The task that supersedes this one (§10.3, Concurrent moves): this task is the
    /// successor of a move that another member's earlier move of the same task won over, and
    /// this peer followed that one since. Its id; absent if none.
    public var supersededBy: String? = nil
}

public struct MemberSummary: Codable, Hashable, Sendable {
    public var peer: String
    /// The member's display name, as their own pages held here say (their claim), or nil.
    public var name: String? = nil
    /// A session with the member is open now (always false offline).
    public var online: Bool
    /// This peer writes a book for the member / reads the member's book.
    public var writesTo: Bool
    public var readsFrom: Bool
    /// Why messages between this peer and the member do not get through, when something
    /// is known to stop them (a forked book on either side); absent otherwise.
    public var problem: String? = nil
}

public struct CompileResult: Codable, Hashable, Sendable {
    public var name: String
    public var book: String
    public var copied: Int
    public var length: UInt64
    /// Messages of the log that could not be copied: no verifiable proof of them exists
    /// (their book is forked, or the page is not held whole), or the copy with its proof
    /// would exceed a page's data (a message near that size, from another client).
    public var skipped: Int
}

/// One copy of a compiled book, re-checked against its original author.
public struct CopyCheck: Codable, Hashable, Sendable {
    public var index: UInt64
    public var originalBook: String
    public var originalIndex: UInt64
    public var authentic: Bool
}

public struct BookReport: Codable, Hashable, Sendable {
    public var name: String?
    public var id: String
    /// "author" (this peer holds the secret key) or "reader".
    public var role: String
    public var length: UInt64
    public var held: UInt64
    /// Latest signed root checked (at open or arrival); after `inspect verify`, the whole
    /// book re-checked from the disk up.
    public var verified: Bool
    /// Why it is not verified; beside `verified`, a note (a fork a later generation of its
    /// pair replaced, PROTOCOL.md §10.3).
    public var problem: String?
    /// Peers with an open replication channel for it, and how far they told us it goes.
    public var peers: [String: UInt64]
}

public struct SessionReport: Codable, Hashable, Sendable {
    public var peer: String
    public var path: String
    public var established: Bool
    public var rttMilliseconds: Double?
    public var lastSeenSecondsAgo: Double
    public var packetsSent: UInt64
    public var packetsReceived: UInt64
}

public struct EventReport: Codable, Hashable, Sendable {
    /// Milliseconds since the Unix epoch.
    public var time: UInt64
    public var kind: String
    public var detail: String
}

public struct InspectReport: Codable, Hashable, Sendable {
    public var peer: String
    public var online: Bool
    public var endpoint: String?
    public var books: [BookReport]
    public var sessions: [SessionReport]
    public var tasks: [TaskSummary]
    public var events: [EventReport]
    public var refusals: [EventReport]
    public var drops: [String: UInt64]
    /// How LAN discovery runs on each interface now (the daemon's network fills it in;
    /// absent offline).
    public var interfaces: [DiscoveryInterface]? = nil
    /// Why the vault cannot be written now — its disk is full, or its file system is
    /// read-only — and what that means; absent when it can (PROTOCOL.md §10.6).
    public var storage: String? = nil
}

/// What a follower (`log --follow`, `chat`) is told.
public enum MessengerEvent: Sendable, Equatable {
    /// Pages arrived in, or were appended to, a book of the task: read the log again.
    case changed(TaskID)
    /// A member of the task connected (true) or its session ended (false).
    case presence(TaskID, PeerID, online: Bool)
}
