/// Counters of one book's replication with one peer, for devtools and tests.
public struct ReplicationStats: Sendable, Equatable {
    public var requestsSent: UInt64 = 0
    public var retransmissions: UInt64 = 0
    public var fragmentsReceived: UInt64 = 0
    public var duplicateFragments: UInt64 = 0
    /// Fragments of requests already answered or cancelled.
    public var lateFragments: UInt64 = 0
    public var staleAnswers: UInt64 = 0
    public var pagesStored: UInt64 = 0
    public var bytesStored: UInt64 = 0
    public var requestsServed: UInt64 = 0
    public var requestsRejected: UInt64 = 0
    public var fragmentsSent: UInt64 = 0
    /// Messages of a type or version this side does not know, ignored.
    public var unknownMessages: UInt64 = 0
    /// Verified answers the local store could not take (a full disk, …), asked for again
    /// after a pause (`Fetcher`).
    public var storeFailures: UInt64 = 0

    public init() {}

    static func + (a: ReplicationStats, b: ReplicationStats) -> ReplicationStats {
        var s = a
        s.requestsSent += b.requestsSent
        s.retransmissions += b.retransmissions
        s.fragmentsReceived += b.fragmentsReceived
        s.duplicateFragments += b.duplicateFragments
        s.lateFragments += b.lateFragments
        s.staleAnswers += b.staleAnswers
        s.pagesStored += b.pagesStored
        s.bytesStored += b.bytesStored
        s.requestsServed += b.requestsServed
        s.requestsRejected += b.requestsRejected
        s.fragmentsSent += b.fragmentsSent
        s.unknownMessages += b.unknownMessages
        s.storeFailures += b.storeFailures
        return s
    }
}
