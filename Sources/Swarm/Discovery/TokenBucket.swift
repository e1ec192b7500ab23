import NIOCore

/// A token bucket: `burst` tokens at most, refilled at `perSecond`. The zero state is a full
/// bucket, so a source seen for the first time is served at once.
struct TokenBucket: Sendable {
    let perSecond: Double
    let burst: Double
    private(set) var tokens: Double
    private(set) var last: NIODeadline?

    init(perSecond: Double, burst: Double) {
        precondition(perSecond > 0 && burst >= 1, "token bucket rate")
        self.perSecond = perSecond
        self.burst = burst
        tokens = burst
    }

    /// Takes one token if one is there.
    mutating func take(at now: NIODeadline) -> Bool {
        refill(at: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// True once the bucket would be full again: the entry carries no state worth keeping.
    func isIdle(at now: NIODeadline) -> Bool {
        var copy = self
        copy.refill(at: now)
        return copy.tokens >= burst
    }

    private mutating func refill(at now: NIODeadline) {
        if let last, now > last {
            tokens = min(burst, tokens + Double((now - last).nanoseconds) / 1e9 * perSecond)
        }
        if last == nil || now > last! { last = now }
    }
}
