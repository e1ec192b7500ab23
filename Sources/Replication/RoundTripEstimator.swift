import Swarm

/// Smoothed round-trip time and retransmission timeout after RFC 6298 §2, with bounds from
/// the configuration. Only answers to requests sent once are sampled (Karn's rule).
struct RoundTripEstimator: Sendable {
    private var smoothed: Duration?
    private var variation: Duration = .zero
    let initial: Duration
    let minimum: Duration
    let maximum: Duration

    init(initial: Duration, minimum: Duration, maximum: Duration) {
        self.initial = initial
        self.minimum = minimum
        self.maximum = maximum
    }

    var smoothedRoundTrip: Duration? { smoothed }

    mutating func sample(_ rtt: Duration) {
        guard let srtt = smoothed else {
            smoothed = rtt
            variation = rtt / 2
            return
        }
        // RFC 6298 §2.3: alpha = 1/8, beta = 1/4.
        let error = srtt > rtt ? srtt - rtt : rtt - srtt
        variation = variation * 3 / 4 + error / 4
        smoothed = srtt * 7 / 8 + rtt / 8
    }

    /// The timeout after `retries` retransmissions: doubled each time (§5.5), bounded.
    func timeout(retries: Int) -> Duration {
        var base = smoothed.map { $0 + variation * 4 } ?? initial
        base = max(minimum, min(maximum, base))
        for _ in 0..<min(retries, 8) where base < maximum { base *= 2 }
        return min(base, maximum)
    }
}
