/// Why an incoming datagram was dropped. Network garbage is counted, never thrown.
public enum DropReason: String, Sendable, CaseIterable {
    /// Wrong version, unknown type, wrong length for its type, or a malformed frame.
    case malformed
    /// A receiver index we do not hold (expired keys, a late response, or noise).
    case unknownIndex
    /// A counter already seen or too old, or a repeated handshake initiation.
    case replay
    /// AEAD or Noise authentication failed, or the peer id did not match the static key.
    case authFailure
    /// Longer than `PacketFormat.maxDatagram`.
    case tooBig
    /// The firewall refused the peer, or too many handshakes are pending.
    case refused
    /// A channel frame for a channel that is not open.
    case unknownChannel
    /// Our side of a simultaneous dial wins, so the other initiation is ignored.
    case simultaneousDial
}

/// Dropped datagrams by reason, for devtools.
public struct DropCounters: Sendable, Equatable, CustomStringConvertible {
    public private(set) var counts: [DropReason: UInt64] = [:]

    public init() {}

    public subscript(_ reason: DropReason) -> UInt64 { counts[reason, default: 0] }

    public var total: UInt64 { counts.values.reduce(0, +) }

    mutating func record(_ reason: DropReason) { counts[reason, default: 0] += 1 }

    public var description: String {
        DropReason.allCases.filter { self[$0] > 0 }.map { "\($0.rawValue)=\(self[$0])" }.joined(separator: " ")
    }
}
