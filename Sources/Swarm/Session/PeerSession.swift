/// Everything the session layer holds about one remote peer, WireGuard's `Peer`: where it
/// is, the handshake we have in flight, and up to three key pairs — `current` (sending),
/// `previous` (still decrypting for a while after a rekey) and `next` (a handshake we
/// answered, unconfirmed until the initiator's first transport packet arrives).
struct PeerSession {
    /// Our initiation in flight. Every retransmission is a fresh initiation (new ephemeral,
    /// new index), as WireGuard does, so a late response to an old one is simply unknown.
    struct OutgoingHandshake {
        var noise: NoiseHandshake
        var localIndex: UInt32
        var sentAt: Timestamp
        var attempts: Int
        var nextRetransmit: Timestamp
        /// The session this handshake rekeys, if any (§7.3 "resumes").
        var resumes: SessionID?
    }

    /// Keys from a handshake we answered, waiting for confirmation.
    struct Unconfirmed {
        var keys: TransportKeypair
        /// Whether our answer agreed to resume the current session.
        var resumes: Bool
    }

    let peer: PeerID
    var endpoint: Endpoint
    var sessionID: SessionID?
    /// The full handshake hash of the handshake that established the session: capabilities
    /// bind to it (DESIGN decision 3), and it outlives rekeys as the session does.
    var sessionHandshakeHash: [UInt8] = []
    var current: TransportKeypair?
    var previous: TransportKeypair?
    var next: Unconfirmed?
    var handshake: OutgoingHandshake?
    /// The cleartext ephemeral key of the last initiation we answered: an identical one is
    /// a replay (WireGuard uses a timestamp for this; the ephemeral is unique per attempt).
    var lastAnsweredEphemeral: [UInt8] = []
    var channels: ChannelTable
    /// Capabilities sent and not yet acknowledged: next retransmission and attempts so far.
    var unackedCapabilities: [[UInt8]: (next: Timestamp, attempts: Int)] = [:]
    /// Frames waiting for usable keys.
    var queued: [SessionFrame] = []
    var establishedAt: Timestamp?
    var lastReceived: Timestamp
    var lastSent: Timestamp
    var smoothedRTT: Duration?
    var packetsSent: UInt64 = 0
    var packetsReceived: UInt64 = 0
    var rekeys = 0

    init(peer: PeerID, endpoint: Endpoint, localIsLower: Bool, now: Timestamp) {
        self.peer = peer
        self.endpoint = endpoint
        channels = ChannelTable(localIsLower: localIsLower)
        lastReceived = now
        lastSent = now
    }

    var isEstablished: Bool { sessionID != nil && current != nil }

    /// All local indices this session owns, for the index table.
    var localIndices: [UInt32] {
        [current?.localIndex, previous?.localIndex, next?.keys.localIndex, handshake?.localIndex].compactMap { $0 }
    }

    /// RFC 6298 §2 smoothing (α = 1/8) of round-trip samples.
    mutating func recordRTT(_ sample: Duration) {
        if let s = smoothedRTT {
            smoothedRTT = s * 7 / 8 + sample / 8
        } else {
            smoothedRTT = sample
        }
    }

    func stats() -> SessionStats {
        SessionStats(peer: peer, sessionID: sessionID, endpoint: endpoint, isEstablished: isEstablished,
                     establishedAt: establishedAt, lastReceived: lastReceived, lastSent: lastSent,
                     roundTripTime: smoothedRTT, packetsSent: packetsSent, packetsReceived: packetsReceived,
                     rekeys: rekeys, openChannels: channels.open.count - 1)
    }
}
