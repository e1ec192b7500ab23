import Sodium

/// Names one session with a peer for as long as it lasts, across rekeys: the first 16 bytes
/// of the handshake hash of the handshake that established it. Both sides compute the same.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    public static let length = 16
    public let bytes: [UInt8]

    init(handshakeHash: [UInt8]) { bytes = Array(handshakeHash.prefix(SessionID.length)) }

    init?(wire: [UInt8]) {
        guard wire.count == SessionID.length, wire.contains(where: { $0 != 0 }) else { return nil }
        bytes = wire
    }

    static let none = [UInt8](repeating: 0, count: SessionID.length)

    public var description: String { bytes.prefix(6).hexString }
}

/// What the session layer reports; the runtime turns these into the public API.
public enum SessionEvent: Sendable, Equatable {
    /// A new session with `peer`: the handshake is complete and confirmed. `initiator` is our
    /// role in that handshake (capabilities are bound to the role of their sender).
    case established(PeerID, SessionID, endpoint: Endpoint, handshakeHash: [UInt8], initiator: Bool)
    /// The session's keys were renewed; `handshakeHash` is the new one.
    case rekeyed(PeerID, SessionID, handshakeHash: [UInt8])
    /// The session ended. The peer has no session afterwards until a new `established`.
    case lost(PeerID, SessionID, CloseReason)
    /// A handshake gave up: to `peer` if known, else to `endpoint` (an XX dial).
    case handshakeFailed(PeerID?, Endpoint)
    /// An authenticated packet came from a new endpoint (roaming).
    case endpointChanged(PeerID, Endpoint)
    /// The remote opened a channel.
    case channelOpened(PeerID, channel: UInt16, label: [UInt8])
    /// The remote accepted a channel we opened.
    case channelAccepted(PeerID, channel: UInt16)
    /// A channel we opened was never accepted (all open retransmissions went unanswered).
    case channelOpenFailed(PeerID, channel: UInt16)
    case channelMessage(PeerID, channel: UInt16, message: [UInt8])
    case channelClosed(PeerID, channel: UInt16)
    /// A capability on the control channel, with the handshake hash it must be bound to.
    case capability(PeerID, capability: [UInt8], handshakeHash: [UInt8])
}

/// Per-session figures for devtools.
public struct SessionStats: Sendable, Equatable {
    public var peer: PeerID
    public var sessionID: SessionID?
    public var endpoint: Endpoint
    public var isEstablished: Bool
    public var establishedAt: Timestamp?
    public var lastReceived: Timestamp
    public var lastSent: Timestamp
    /// Smoothed round-trip time from the handshake and keepalive pings (RFC 6298 style).
    public var roundTripTime: Duration?
    public var packetsSent: UInt64
    public var packetsReceived: UInt64
    public var rekeys: Int
    public var openChannels: Int
}
