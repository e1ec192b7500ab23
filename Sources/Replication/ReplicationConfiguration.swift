/// Tuning of one book's replication with one peer. Spec constants live in
/// `ReplicationWire`; these are choices, each with the reason for its default.
public struct ReplicationConfiguration: Sendable {
    /// Bytes of pages requested and not yet answered. 2 MiB keeps a loopback or LAN path
    /// busy across a round trip and a store write, yet fits the 4 MiB socket buffers with
    /// room for other channels.
    public var windowBytes: Int = 2 << 20
    /// Pages asked for in one request, in bytes (the holder stops at this many). Each
    /// answer is stored in one transaction (not fsynced since `Book.apply` commits with
    /// `synchronous=NORMAL`; with one fsync each, 64 KiB ran at a third of the speed):
    /// 256 KiB makes the per-transaction cost small per page, while a lost fragment still
    /// costs only itself.
    public var requestBytes: Int = 256 << 10
    /// The most pages in one request, whatever their size: bounds the proof and the
    /// holder's work per request.
    public var maxPagesPerRequest: UInt64 = 1024
    /// The largest answer this peer serves to one request, whatever the request asks: the
    /// holder's bound on its work per request (one page is always served whole).
    public var maxServeBytes: Int = 1 << 20
    /// Retransmission timeout before any round trip was measured (RFC 6298 uses 1 s; a
    /// LAN answers far sooner, and a spurious retry only costs a fragment list).
    public var initialRetransmit: Duration = .milliseconds(200)
    /// Lower bound of the adaptive timeout: a store write at the reader can take a few
    /// milliseconds, and retrying faster than that only duplicates answers.
    public var minRetransmit: Duration = .milliseconds(20)
    /// Upper bound of the timeout after backoff.
    public var maxRetransmit: Duration = .seconds(2)
    /// How often unacknowledged state (`open`, `status`) is sent again.
    public var stateRetransmit: Duration = .milliseconds(250)
    /// The soonest a status whose only change is held pages (not the length) follows the
    /// previous one: a reader receiving at full speed changes them hundreds of times a second.
    public var heldStatusInterval: Duration = .milliseconds(100)
    /// Requests queued at this holder for one peer; beyond it requests get `busy`. An
    /// honest reader keeps `windowBytes / requestBytes` (8) outstanding.
    public var maxQueuedServes: Int = 256
    /// Requests refused as busy or unauthorized before the peer is reported for a flood
    /// and the channel closed.
    public var floodLimit: Int = 4096
    /// Answers whose proof went stale (the reader moved on meanwhile) tolerated in a row
    /// before the peer is treated as broken.
    public var maxStaleInARow: Int = 64
    /// The pause before pages are asked for again after the local store could not take
    /// them for a reason that may pass (a full disk, a file system remounted read-only, an
    /// I/O error), doubled at each such failure in a row up to `storeRetryMax`: a disk that
    /// has space again gets the pages within that time, on the same channel, while a disk
    /// that stays full costs one request per pause.
    public var storeRetryInitial: Duration = .seconds(1)
    public var storeRetryMax: Duration = .seconds(10)
    /// How often a book's author refused as forked is let in again for that book (it may
    /// come for the history this side holds, PROTOCOL.md §9.7): a channel it opens sooner
    /// waits for its turn, and one more beside it is closed — an author that keeps sending
    /// conflicting roots costs one exchange per interval, not one per datagram it can send.
    public var forkedAuthorReadmitInterval: Duration = .seconds(1)

    public init() {}
}
