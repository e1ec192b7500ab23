import Swarm

/// 32 bytes of a peer id as four words: a dictionary key with no heap allocation, so a
/// registration costs a few hundred bytes, not a few hundred plus an array per index entry.
struct PeerKey: Hashable {
    let a: UInt64, b: UInt64, c: UInt64, d: UInt64

    init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "peer ids are 32 bytes")
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            return v
        }
        a = word(0); b = word(8); c = word(16); d = word(24)
    }

    init(_ peer: PeerID) { self.init(peer.bytes) }

    /// The 32 bytes at `offset` of `bytes` (the caller checked the length).
    init(_ bytes: [UInt8], at offset: Int) {
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[offset + i + k]) << (8 * UInt64(k)) }
            return v
        }
        a = word(0); b = word(8); c = word(16); d = word(24)
    }
}

/// A beacon as two words, for the same reason.
struct BeaconKey: Hashable {
    let hi: UInt64, lo: UInt64

    init(_ beacon: Beacon) {
        var h: UInt64 = 0, l: UInt64 = 0
        for k in 0..<8 { h |= UInt64(beacon.bytes[k]) << (8 * UInt64(k)) }
        for k in 0..<8 { l |= UInt64(beacon.bytes[8 + k]) << (8 * UInt64(k)) }
        hi = h
        lo = l
    }
}

/// The node's table of registered peers (PROTOCOL.md §11.3): who, where, under which
/// beacons, until when, and which other peers it was introduced to (the only ones the node
/// relays for it, §11.7). Every collection is bounded: registrations by `capacity`, beacons
/// and locals per registration by the codec, pairs per peer by `maxPairs`; expiry runs off a
/// timing wheel holding at most one entry per registration.
struct NodeRegistry {
    struct Registration {
        var peer: PeerID
        var endpoint: Endpoint
        var locals: [Endpoint]
        var beacons: [BeaconKey]
        var expires: Timestamp
        /// The wheel second this registration is filed under (exactly one entry).
        var wheelSecond: UInt64
        /// Relayed bytes the peer may still send (§11.7).
        var relayBudget: Bucket
        /// Peers the node introduced it to, until when.
        var pairs: [PeerKey: Timestamp] = [:]
        /// Last explicit refusal sent for relay overuse: at most one per second.
        var lastRelayRefusal: Timestamp?
    }

    let capacity: Int
    let perAddress: Int
    let maxPairs: Int
    private(set) var byPeer: [PeerKey: Registration] = [:]
    private var byEndpoint: [Endpoint: PeerKey] = [:]
    private var byBeacon: [BeaconKey: [PeerKey]] = [:]
    private var perAddressCount: [Endpoint.Address: Int] = [:]
    private var wheel: [UInt64: [PeerKey]] = [:]
    private var wheelCursor: UInt64 = 0

    init(capacity: Int, perAddress: Int, maxPairs: Int) {
        self.capacity = capacity
        self.perAddress = perAddress
        self.maxPairs = maxPairs
    }

    var count: Int { byPeer.count }

    enum Outcome { case stored, full }

    /// Registers or refreshes `peer` at `endpoint`. A peer that moved is moved (its last
    /// signed registration wins); its introductions stay.
    mutating func upsert(peer: PeerID, endpoint: Endpoint, locals: [Endpoint], beacons: [Beacon], expires: Timestamp,
                         relayBurst: Double, now: Timestamp) -> Outcome {
        let key = PeerKey(peer)
        let beaconKeys = Array(Set(beacons.map(BeaconKey.init)))
        if var existing = byPeer[key] {
            if existing.endpoint != endpoint {
                guard perAddressCount[endpoint.address, default: 0] < perAddress else { return .full }
                unindexEndpoint(key, existing.endpoint)
                byEndpoint[endpoint] = key
                perAddressCount[endpoint.address, default: 0] += 1
            }
            for b in existing.beacons where !beaconKeys.contains(b) { unindexBeacon(key, b) }
            for b in beaconKeys where !existing.beacons.contains(b) { byBeacon[b, default: []].append(key) }
            existing.endpoint = endpoint
            existing.locals = locals
            existing.beacons = beaconKeys
            existing.expires = expires
            byPeer[key] = existing
            return .stored
        }
        guard byPeer.count < capacity, perAddressCount[endpoint.address, default: 0] < perAddress else { return .full }
        // Another peer registered at this very endpoint is stale (the address was reused).
        if let previous = byEndpoint[endpoint] { remove(previous) }
        let second = Self.second(expires)
        byPeer[key] = Registration(peer: peer, endpoint: endpoint, locals: locals, beacons: beaconKeys, expires: expires,
                                   wheelSecond: second, relayBudget: Bucket(burst: relayBurst, now: now))
        byEndpoint[endpoint] = key
        perAddressCount[endpoint.address, default: 0] += 1
        for b in beaconKeys { byBeacon[b, default: []].append(key) }
        wheel[second, default: []].append(key)
        return .stored
    }

    func registration(at endpoint: Endpoint, now: Timestamp) -> (PeerKey, Registration)? {
        guard let key = byEndpoint[endpoint], let r = byPeer[key], r.expires > now else { return nil }
        return (key, r)
    }

    func registration(of peer: PeerID, now: Timestamp) -> Registration? { registration(of: PeerKey(peer), now: now) }

    func registration(of key: PeerKey, now: Timestamp) -> Registration? {
        guard let r = byPeer[key], r.expires > now else { return nil }
        return r
    }

    /// Live registrations under `beacon`, at most `limit`, skipping the one at `excluding`.
    func peers(under beacon: Beacon, excluding: Endpoint, limit: Int, now: Timestamp) -> [Registration] {
        guard let keys = byBeacon[BeaconKey(beacon)] else { return [] }
        var out: [Registration] = []
        for key in keys {
            guard let r = byPeer[key], r.expires > now, r.endpoint != excluding else { continue }
            out.append(r)
            if out.count == limit { break }
        }
        return out
    }

    /// Records that the node introduced `a` and `b`, so it relays between them until
    /// `until`. A peer with `maxPairs` pairs loses its oldest.
    mutating func pair(_ a: PeerKey, _ b: PeerKey, until: Timestamp) {
        for (x, y) in [(a, b), (b, a)] {
            guard var r = byPeer[x] else { continue }
            if r.pairs[y] == nil && r.pairs.count >= maxPairs, let oldest = r.pairs.min(by: { $0.value < $1.value })?.key {
                r.pairs[oldest] = nil
            }
            r.pairs[y] = until
            byPeer[x] = r
        }
    }

    /// Until when `a` and `b` are paired, if they are now.
    func pairedUntil(_ a: PeerKey, _ b: PeerKey, now: Timestamp) -> Timestamp? {
        guard let until = byPeer[a]?.pairs[b], until > now else { return nil }
        return until
    }

    /// Takes `bytes` from the peer's relay budget.
    mutating func spendRelay(_ key: PeerKey, bytes: Int, perSecond: Double, burst: Double, now: Timestamp) -> Bool {
        byPeer[key]?.relayBudget.take(Double(bytes), perSecond: perSecond, burst: burst, now: now) ?? false
    }

    /// Whether an explicit relay refusal may go to the peer now (one per second), and notes it.
    mutating func mayRefuseRelay(_ key: PeerKey, now: Timestamp) -> Bool {
        guard var r = byPeer[key] else { return false }
        if let last = r.lastRelayRefusal, now - last < .seconds(1) { return false }
        r.lastRelayRefusal = now
        byPeer[key] = r
        return true
    }

    /// Drops registrations whose time ran out; returns how many.
    mutating func expire(now: Timestamp) -> Int {
        let nowSecond = Self.second(now)
        if wheelCursor == 0 { wheelCursor = wheel.keys.min() ?? nowSecond }
        var removed = 0
        while wheelCursor <= nowSecond {
            if let keys = wheel.removeValue(forKey: wheelCursor) {
                for key in keys {
                    guard var r = byPeer[key], r.wheelSecond == wheelCursor else { continue }
                    if r.expires <= now {
                        remove(key)
                        removed += 1
                    } else {
                        // Refreshed since it was filed: file it again at its new expiry.
                        r.wheelSecond = Self.second(r.expires)
                        byPeer[key] = r
                        wheel[r.wheelSecond, default: []].append(key)
                    }
                }
            }
            wheelCursor += 1
        }
        return removed
    }

    /// The earliest second the wheel holds work for.
    var nextExpiry: Timestamp? {
        guard let s = wheel.keys.min() else { return nil }
        return Timestamp(nanoseconds: (s + 1) * 1_000_000_000)
    }

    mutating func remove(_ key: PeerKey) {
        guard let r = byPeer.removeValue(forKey: key) else { return }
        unindexEndpoint(key, r.endpoint)
        for b in r.beacons { unindexBeacon(key, b) }
    }

    private mutating func unindexEndpoint(_ key: PeerKey, _ endpoint: Endpoint) {
        if byEndpoint[endpoint] == key { byEndpoint[endpoint] = nil }
        if let n = perAddressCount[endpoint.address] { perAddressCount[endpoint.address] = n > 1 ? n - 1 : nil }
    }

    private mutating func unindexBeacon(_ key: PeerKey, _ beacon: BeaconKey) {
        guard var keys = byBeacon[beacon] else { return }
        keys.removeAll { $0 == key }
        byBeacon[beacon] = keys.isEmpty ? nil : keys
    }

    static func second(_ t: Timestamp) -> UInt64 { t.nanoseconds / 1_000_000_000 }
}
