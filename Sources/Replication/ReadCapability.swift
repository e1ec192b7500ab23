import Books
import Sodium
import Swarm

/// The proof, in a book's `open` message, that the sender may read the book
/// (PROTOCOL.md §9.4):
///
/// `cap = BLAKE2b-256(key: secret, "bookswarm/replication/v1" ‖ u8 role ‖ handshake hash ‖ book id)`
///
/// * `secret` is what entitles a peer to the book — for the messenger, the task's topic,
///   which only holders of the invite have; the policy decides which secret a book needs.
/// * Bound to the session's Noise handshake hash: worthless in any other session.
/// * Bound to the sender's handshake role, so a peer cannot reflect the other side's
///   capability back, and to the book id, so a capability for one book opens no other.
public enum ReadCapability {
    /// §9.4: the domain tag.
    static let domainTag: [UInt8] = Array("bookswarm/replication/v1".utf8)
    public static let length = 32

    public static func make(secret: [UInt8], book: BookID, handshakeHash: [UInt8], sender: Capability.Role) -> [UInt8] {
        var hasher = BLAKE2b(outputLength: length, key: secret)
        hasher.update(domainTag)
        hasher.update(byte: sender.rawValue)
        hasher.update(handshakeHash)
        hasher.update(book.bytes)
        return hasher.finalize()
    }

    public static func make(topic: Topic, book: BookID, handshakeHash: [UInt8], sender: Capability.Role) -> [UInt8] {
        make(secret: topic.bytes, book: book, handshakeHash: handshakeHash, sender: sender)
    }
}

/// A received capability with everything it is bound to, handed to the policy: the policy
/// asks it whether a secret it knows for the book proves it. Checks are constant-time.
public struct CapabilityCheck: Sendable {
    public let book: BookID
    let capability: [UInt8]
    let handshakeHash: [UInt8]
    let sender: Capability.Role

    init(book: BookID, capability: [UInt8], handshakeHash: [UInt8], sender: Capability.Role) {
        self.book = book
        self.capability = capability
        self.handshakeHash = handshakeHash
        self.sender = sender
    }

    /// True when the capability was made with `secret` (16–64 bytes).
    public func proves(secret: [UInt8]) -> Bool {
        guard capability.count == ReadCapability.length, (16...64).contains(secret.count) else { return false }
        let expected = ReadCapability.make(secret: secret, book: book, handshakeHash: handshakeHash, sender: sender)
        return constantTimeEquals(capability, expected)
    }

    /// True when the capability was made with `topic`.
    public func proves(topic: Topic) -> Bool { proves(secret: topic.bytes) }
}

/// Who may read which book, decided by the application (the messenger knows which task,
/// hence which topic, a book belongs to).
public struct ReplicationPolicy: Sendable {
    /// The secret this peer proves its right to `book` with, or nil when it has none (it
    /// then cannot open the book with anyone).
    public var secret: @Sendable (BookID) -> [UInt8]?
    /// Whether `peer` may read `book`, given its capability. Called once per channel open.
    public var authorize: @Sendable (PeerID, BookID, CapabilityCheck) -> Bool
    /// The peer that writes `book`, when the application knows it (nil: unknown). A holder
    /// that refuses a book as forked still serves its author the history it verified, and
    /// still accepts the author's channel for it, so that an author who lost its store (a
    /// vault restored from its key alone) can take back the version its readers hold
    /// (PROTOCOL.md §9.6, §9.7). The author is the session's authenticated remote peer; it
    /// proves the right to read like anyone (`authorize`).
    public var author: @Sendable (BookID) -> PeerID?

    public init(secret: @escaping @Sendable (BookID) -> [UInt8]?,
                authorize: @escaping @Sendable (PeerID, BookID, CapabilityCheck) -> Bool,
                author: @escaping @Sendable (BookID) -> PeerID? = { _ in nil }) {
        self.secret = secret
        self.authorize = authorize
        self.author = author
    }

    /// Every book is readable by whoever proves one shared secret (e.g. one task's topic).
    public static func sharedSecret(_ secret: [UInt8]) -> ReplicationPolicy {
        ReplicationPolicy(secret: { _ in secret }, authorize: { _, _, check in check.proves(secret: secret) })
    }
}
