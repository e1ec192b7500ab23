import Sodium
import Swarm

/// A token bucket over the sans-I/O `Timestamp`: `burst` tokens at most, refilled at
/// `perSecond`. A fresh bucket is full.
struct Bucket: Sendable {
    private(set) var tokens: Double
    private var last: Timestamp

    init(burst: Double, now: Timestamp) {
        tokens = burst
        last = now
    }

    /// Takes `cost` tokens if they are there.
    mutating func take(_ cost: Double = 1, perSecond: Double, burst: Double, now: Timestamp) -> Bool {
        if now > last {
            tokens = min(burst, tokens + Double((now - last).components.seconds) * perSecond
                + Double((now - last).components.attoseconds) / 1e18 * perSecond)
            last = now
        }
        guard tokens >= cost else { return false }
        tokens -= cost
        return true
    }
}

/// Per-source rate limits in constant memory: a fixed table of buckets indexed by a keyed
/// hash of the source address (not the port: one host cannot multiply its share by opening
/// sockets). Two addresses that share a slot share a limit, which only ever errs on the side
/// of refusing; the key is secret, so an attacker cannot aim at a victim's slot.
struct AddressLimiter {
    private var slots: [Bucket]
    private let key: [UInt8]
    let perSecond: Double
    let burst: Double

    init(slots: Int, perSecond: Double, burst: Double, now: Timestamp, random: inout some RandomNumberGenerator) {
        precondition(slots > 0 && slots & (slots - 1) == 0, "slot count is a power of two")
        self.slots = Array(repeating: Bucket(burst: burst, now: now), count: slots)
        key = (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) }
        self.perSecond = perSecond
        self.burst = burst
    }

    mutating func take(_ address: Endpoint.Address, cost: Double = 1, now: Timestamp) -> Bool {
        let i = slot(address)
        return slots[i].take(cost, perSecond: perSecond, burst: burst, now: now)
    }

    private func slot(_ address: Endpoint.Address) -> Int {
        let bytes: [UInt8]
        switch address {
        case let .v4(a, b, c, d): bytes = [a, b, c, d]
        case let .v6(v): bytes = v
        }
        let h = BLAKE2b.hash(bytes, outputLength: 16, key: key)
        let v = UInt64(h[0]) | UInt64(h[1]) << 8 | UInt64(h[2]) << 16 | UInt64(h[3]) << 24
        return Int(v & UInt64(slots.count - 1))
    }
}
