/// Everything the session layer holds about one remote peer, WireGuard's `Peer`: where it
/// is, the handshake we have in flight, and up to three key pairs — `current` (sending),
/// `previous` (still decrypting for a while after a rekey) and `next` (a handshake we
/// answered, unconfirmed until the initiator's first transport packet arrives).
struct PeerSession {
    /// Our dial in flight. Every retransmission is a fresh initiation (new ephemeral, new
    /// index), as WireGuard does; unlike WireGuard, the last few stay answerable, because our
    /// first retransmission (400 ms) comes sooner than a LAN's ARP retry (1 s): a response
    /// to an initiation that waited for the neighbour's address must not arrive to nothing.
    struct OutgoingHandshake {
        struct Initiation {
            var noise: NoiseHandshake
            var localIndex: UInt32
            var sentAt: Timestamp
            /// The session this initiation rekeys, if any (§7.3 "resumes").
            var resumes: SessionID?
        }

        /// How many initiations of one dial accept their response.
        static let answerable = 4

        /// Oldest first; the last is the newest. Never empty.
        var initiations: [Initiation]
        var attempts: Int
        var nextRetransmit: Timestamp

        var newest: Initiation { initiations[initiations.count - 1] }
        var localIndices: [UInt32] { initiations.map(\.localIndex) }
    }

    /// Keys from a handshake we answered, waiting for confirmation.
    struct Unconfirmed {
        var keys: TransportKeypair
        /// Whether our answer agreed to resume the current session.
        var resumes: Bool
        /// IK: our response. While `resending`, it is sent again on the handshake's
        /// retransmission schedule until the initiator's first transport packet confirms
        /// the keys; without this a lost response waits for the initiator's next initiation,
        /// whose backoff doubles. A copy completes nothing twice: its initiation's state is
        /// spent on the first. Resent only to where we would send anyway (a peer we dial or
        /// hold a session with at that endpoint), so a forged source gets one response, smaller
        /// than the initiation that asked for it.
        var response: Datagram?
        var resending = false
        var responsesSent = 1
        var nextResponse: Timestamp = .zero
    }

    let peer: PeerID
    var endpoint: Endpoint
    /// Where the application asked us to dial this peer (`connect`): our answers to its
    /// initiations from there are worth sending again (`Unconfirmed.resending`).
    var dialledAt: Endpoint?
    /// Another address of the peer, on another path (the other address family): every second
    /// initiation of a dial goes there, so a path that does not work costs one retransmit
    /// interval, not the whole handshake (Happy Eyeballs, RFC 8305, in the small).
    var alternative: Endpoint?
    var sessionID: SessionID?
    /// The full handshake hash of the handshake that established the session: capabilities
    /// bind to it (DESIGN decision 3), and it outlives rekeys as the session does.
    var sessionHandshakeHash: [UInt8] = []
    var current: TransportKeypair?
    var previous: TransportKeypair?
    var next: Unconfirmed?
    /// Unconfirmed keys that `next` replaced (a newer initiation answered before the older
    /// answer's confirmation came): the initiator may have completed either, so each stays
    /// confirmable until one is confirmed or `next` expires. Oldest first, at most
    /// `OutgoingHandshake.answerable − 1`; their responses are not sent again.
    var superseded: [Unconfirmed] = []
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

    /// Whether the current keys are ours to confirm still: we initiated them and nothing has
    /// authenticated under them yet (§7.3). Read through `current?`: binding the keys would
    /// copy them, and this runs for every packet.
    var awaitsConfirmation: Bool { current?.isInitiator == true && current?.heardFrom == false }

    /// All local indices this session owns, for the index table.
    var localIndices: [UInt32] {
        [current?.localIndex, previous?.localIndex, next?.keys.localIndex].compactMap { $0 }
            + superseded.map(\.keys.localIndex) + (handshake?.localIndices ?? [])
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
