import Books
import Swarm

/// One side's half of the status exchange (PROTOCOL.md §9.5): the state this peer
/// announces — verified length, signed root, held pages — numbered by a sequence that
/// grows with every change, sent again with backoff until the remote's own status
/// acknowledges it. A change of length goes out at once (it is how readers learn of new
/// pages); a change of held pages alone waits for `heldStatusInterval`, because a reader
/// receiving at full speed changes them with every answer.
struct StatusExchange: Sendable {
    struct Content: Equatable {
        var length: UInt64
        var root: SignedRoot?
        var held: [Range<UInt64>]
        var truncated: Bool

        init(book: any ReplicatedBook) {
            let root = book.signedRoot
            length = root?.length ?? 0
            self.root = root
            let ranges = book.heldRanges().ranges
            held = Array(ranges.prefix(ReplicationWire.maxStatusRanges))
            truncated = ranges.count > ReplicationWire.maxStatusRanges
        }
    }

    private(set) var sequence: UInt32 = 0
    private var content: Content?
    private var acknowledgedByRemote: UInt32 = 0
    /// The highest sequence received from the remote.
    private(set) var remoteSequence: UInt32 = 0
    private(set) var nextSend: Timestamp?
    private var lastSent: Timestamp?
    private var retries = 0

    var isAcknowledged: Bool { acknowledgedByRemote >= sequence }

    /// Records the local state; schedules a send when it changed.
    mutating func update(_ new: Content, now: Timestamp, configuration: ReplicationConfiguration) {
        guard new != content else { return }
        let lengthChanged = new.length != content?.length
        content = new
        sequence &+= 1
        retries = 0
        let at = lengthChanged || lastSent == nil ? now : max(now, lastSent! + configuration.heldStatusInterval)
        nextSend = min(nextSend ?? at, at)
    }

    func isDue(_ now: Timestamp) -> Bool { nextSend.map { $0 <= now } ?? false }

    /// The message announcing the current state (after `update` was called once).
    func message() -> ReplicationMessage.Status {
        let content = content!
        return ReplicationMessage.Status(
            sequence: sequence, acknowledged: remoteSequence, needsAck: !isAcknowledged,
            rangesTruncated: content.truncated, length: content.length,
            root: content.root.map { ($0.rootHash, $0.signature) }, held: content.held)
    }

    /// Call after sending `message()`: schedules the retransmission while unacknowledged.
    mutating func sent(now: Timestamp, configuration: ReplicationConfiguration) {
        lastSent = now
        if isAcknowledged {
            nextSend = nil
        } else {
            var delay = configuration.stateRetransmit
            for _ in 0..<min(retries, 3) { delay *= 2 }
            retries += 1
            nextSend = now + delay
        }
    }

    /// Takes in the remote's status. Returns whether its content is newer than any seen.
    mutating func received(_ status: ReplicationMessage.Status) -> Bool {
        if status.acknowledged > acknowledgedByRemote, status.acknowledged <= sequence {
            acknowledgedByRemote = status.acknowledged
            if isAcknowledged { nextSend = nil }
        }
        guard status.sequence > remoteSequence else { return false }
        remoteSequence = status.sequence
        return true
    }
}
