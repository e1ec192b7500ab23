/// When to dial a peer again after a failed handshake or a lost session, in the manner of
/// hyperswarm's `retry-timer.js`: a short list of delays indexed by the number of failures
/// (the last one repeats), each with random jitter. An object, so tests pass short delays.
public struct RetryPolicy: Sendable {
    public var delays: [Duration]
    /// Random fraction of the delay added, so peers that lost each other at the same
    /// moment do not redial in lock step.
    public var jitter: Double

    public init(delays: [Duration], jitter: Double) {
        precondition(!delays.isEmpty, "a retry policy needs at least one delay")
        self.delays = delays
        self.jitter = jitter
    }

    /// 1 s, 5 s, 15 s, then every minute (hyperswarm's S/M/L/X tiers, with a shorter X: a
    /// task's members are few and worth finding again quickly).
    public static let standard = RetryPolicy(delays: [.seconds(1), .seconds(5), .seconds(15), .seconds(60)], jitter: 0.25)

    /// The delay after `failures` consecutive failures (0: the first retry).
    public func delay(afterFailures failures: Int, using rng: inout some RandomNumberGenerator) -> Duration {
        let base = delays[min(failures, delays.count - 1)]
        let extra = jitter > 0 ? Double.random(in: 0..<jitter, using: &rng) : 0
        return .nanoseconds(Int64(Double(base.nanosecondsClamped) * (1 + extra)))
    }
}

public struct SwarmConfiguration: Sendable {
    public var session = SessionConfiguration()
    public var retry = RetryPolicy.standard
    /// The longest the runtime's timer sleeps when nothing is due sooner. Timers set while
    /// it sleeps wake it at once; this only bounds an idle swarm's sleep.
    public var timerGranularity: Duration = .seconds(1)
    /// Deliveries (batches of messages, one per socket read) buffered per channel for a
    /// slow reader; further ones are dropped (as UDP would), never blocking the session.
    public var channelBuffer = 1024

    public init() {}
}
