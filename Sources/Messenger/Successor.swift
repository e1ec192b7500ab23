import Sodium
import Swarm

/// What a `successor` page says (PROTOCOL.md §10.2, Successors): its author moved the task
/// on to a new task of its own without some members, and hands the new task's invite to
/// each member it takes along, sealed to that member's key.
///
/// Data: `w` (1 byte, 1…255) ‖ the peer ids of the members left out (32 bytes each) ‖ `k`
/// (1 byte, 0…255) ‖ the peer ids of the members taken along (32 bytes each) ‖ the invite:
/// in the author's journal, the successor's creator (the author) ‖ task id, in the clear (48
/// bytes); in its pairwise book for a member taken along, the same 48 bytes sealed to that
/// member (`SealedBox`, 96 bytes); in any other pairwise book, nothing. Both lists sorted,
/// without repeats, disjoint, and without the author.
public struct Successor: Hashable, Sendable {
    /// The members left out, and those taken along (as the author knew them).
    public var without: [PeerID]
    public var with: [PeerID]
    /// The invite bytes: in the clear (48), sealed (96), or none.
    public var invite: [UInt8]

    public static let maxMembers = 255
    static let inviteLength = 32 + TaskID.length
    static let sealedLength = inviteLength + SealedBox.overhead

    public init(without: [PeerID], with: [PeerID], invite: [UInt8]) {
        self.without = without
        self.with = with
        self.invite = invite
    }

    public func encoded() -> [UInt8] {
        precondition(!without.isEmpty && without.count <= Self.maxMembers && with.count <= Self.maxMembers)
        var out = [UInt8(without.count)]
        for peer in without { out += peer.bytes }
        out.append(UInt8(with.count))
        for peer in with { out += peer.bytes }
        return out + invite
    }

    /// The page's successor, or nil when its data breaks the rules above for a page by
    /// `author` in a book for `reader` (the author itself: its journal).
    public init?(data: [UInt8], author: PeerID, reader: PeerID) {
        func peers(at offset: inout Int) -> [PeerID]? {
            guard offset < data.count else { return nil }
            let count = Int(data[offset])
            offset += 1
            guard data.count - offset >= count * 32 else { return nil }
            var peers: [PeerID] = []
            for n in 0..<count {
                guard let peer = try? PeerID(bytes: Array(data[(offset + 32 * n)..<(offset + 32 * n + 32)])) else { return nil }
                peers.append(peer)
            }
            offset += count * 32
            // Sorted by bytes, no repeats.
            guard zip(peers, peers.dropFirst()).allSatisfy({ $0.bytes.lexicographicallyPrecedes($1.bytes) }) else { return nil }
            return peers
        }
        var offset = 0
        guard let without = peers(at: &offset), !without.isEmpty, let with = peers(at: &offset),
              Set(without).isDisjoint(with: with), !without.contains(author), !with.contains(author) else { return nil }
        let invite = Array(data[offset...])
        if reader == author {
            guard invite.count == Self.inviteLength, Array(invite.prefix(32)) == author.bytes else { return nil }
        } else if with.contains(reader) {
            guard invite.count == Self.sealedLength else { return nil }
        } else {
            guard invite.isEmpty else { return nil }
        }
        self.init(without: without, with: with, invite: invite)
    }

    /// The invite sealed in a page for `recipient`, opened with its key pair: the successor
    /// task, which `author` must have created.
    func openInvite(with keys: X25519.KeyPair, author: PeerID) throws -> InviteCode {
        let bytes = try SealedBox.open(invite, with: keys)
        guard bytes.count == Self.inviteLength, let task = TaskID(bytes: Array(bytes.suffix(TaskID.length))),
              Array(bytes.prefix(32)) == author.bytes else {
            throw MessengerError(.invalidMessage, "the sealed invite does not name a task of its author")
        }
        return InviteCode(creator: author, task: task)
    }

    /// The invite bytes for the task `invite` names, as `reader`'s copy holds them.
    static func invite(_ invite: InviteCode, for reader: PeerID, author: PeerID, with: [PeerID]) throws -> [UInt8] {
        let clear = invite.creator.bytes + invite.task.bytes
        if reader == author { return clear }
        guard with.contains(reader) else { return [] }
        return SealedBox.seal(clear, to: try reader.publicKey.x25519())
    }
}
