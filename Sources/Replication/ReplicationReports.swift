import Books
import Foundation
import Swarm

/// How far one book has come, for a progress bar: pages held of the length known.
public struct ReplicationProgress: Sendable, Equatable, CustomStringConvertible {
    public var book: BookID
    /// Pages held here (verified when stored).
    public var heldPages: UInt64
    /// Pages held from page 0 without a gap.
    public var contiguousPages: UInt64
    /// The length of the latest root verified here.
    public var verifiedLength: UInt64
    /// The longest length any connected peer announced (or the verified one if longer).
    public var knownLength: UInt64
    /// The length each connected peer announced for the book.
    public var peers: [PeerID: UInt64]

    public var fractionHeld: Double { knownLength == 0 ? 1 : Double(heldPages) / Double(knownLength) }

    public var description: String {
        "\(book.hex.prefix(8))…: \(heldPages)/\(knownLength) pages held (contiguous \(contiguousPages), verified length \(verifiedLength))"
    }
}

/// A peer this side refused (or that refused this side), for devtools: who, which book,
/// why, and the evidence when it is a fork.
public struct Refusal: Sendable, Equatable, CustomStringConvertible {
    public var peer: PeerID
    public var book: BookID
    public var reason: RefuseReason
    public var detail: String
    /// The two signed roots, when the reason is a fork.
    public var fork: ForkProof?
    /// True when the remote refused this side (its reason); false when this side refused it.
    public var byRemote: Bool
    public var time: Date

    public var description: String {
        let who = byRemote ? "refused by \(peer.short)" : "refused \(peer.short)"
        return "\(who) on book \(book.hex.prefix(8))…: \(reason): \(detail)"
    }
}

/// Verified pages of a book, from a peer, that the local store could not take for a reason
/// that may pass (a full disk, a file system remounted read-only, an I/O error): they are
/// asked for again after a pause (`ReplicationConfiguration.storeRetryInitial`). One report
/// per pause, not per answer.
public struct StoreFailure: Sendable, Equatable, CustomStringConvertible {
    public var peer: PeerID
    public var book: BookID
    public var detail: String
    public var time: Date

    public var description: String {
        "cannot store pages of book \(book.hex.prefix(8))… from \(peer.short) (asked for again after a pause): \(detail)"
    }
}
