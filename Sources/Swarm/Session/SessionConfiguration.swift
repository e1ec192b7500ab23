/// Timers and limits of the session layer. Defaults follow WireGuard's timer design
/// (whitepaper §6) scaled for a LAN-first swarm; tests shorten them.
public struct SessionConfiguration: Sendable {
    /// First handshake retransmission after this long; each further one doubles, up to
    /// `handshakeRetransmitMax`, each with up to `handshakeJitter` (fraction) added.
    /// 400 ms: a LAN round trip is well under it, and under 20 % loss the median join stays
    /// around one retransmission.
    public var handshakeRetransmitBase: Duration = .milliseconds(400)
    public var handshakeRetransmitMax: Duration = .seconds(4)
    /// Random fraction of the interval added to each retransmission, so two peers that
    /// lost the same packet do not retry in lock step.
    public var handshakeJitter: Double = 0.25
    /// Initiations sent before giving up (the first one included).
    public var handshakeAttempts: Int = 8

    /// Send a keepalive when nothing was sent for this long.
    public var keepaliveInterval: Duration = .seconds(2)
    /// Declare the session lost when nothing authenticated arrived for this long.
    public var deadPeerTimeout: Duration = .seconds(10)

    /// WireGuard's REKEY_AFTER_TIME / REJECT_AFTER_TIME (whitepaper §6.1).
    public var rekeyAfterTime: Duration = .seconds(120)
    public var rejectAfterTime: Duration = .seconds(180)
    /// WireGuard's REKEY_AFTER_MESSAGES (2^60) and REJECT_AFTER_MESSAGES (2^64 − 2^13 − 1).
    public var rekeyAfterMessages: UInt64 = 1 << 60
    public var rejectAfterMessages: UInt64 = UInt64.max - (1 << 13)
    /// How long the previous keys keep decrypting after a rekey, for packets in flight.
    public var previousKeysLinger: Duration = .seconds(10)

    /// Channel opens are retransmitted until accepted, this often, this many times.
    public var channelOpenRetransmit: Duration = .milliseconds(500)
    public var channelOpenAttempts: Int = 10

    /// Bounds on state an unauthenticated sender can make us hold: XX handshakes answered
    /// and awaiting their third message, and sessions in all (anyone can mint identities,
    /// so valid IK initiations alone must not grow the table without bound).
    public var maxPendingResponders: Int = 1024
    public var maxSessions: Int = 4096
    /// Messages queued for a peer while its handshake is in progress.
    public var maxQueuedMessages: Int = 256

    public init() {}
}
