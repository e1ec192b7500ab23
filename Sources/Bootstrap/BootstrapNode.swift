import Sodium
import Swarm

/// The bootstrap node's protocol core, sans-I/O (PROTOCOL.md §11): datagrams and `now` in,
/// datagrams out. A thin server (BootstrapNIO) owns the socket.
///
/// Flow. A peer's first request carries no valid cookie, so the node answers with a cookie
/// reply no larger than the request (§11.4) and keeps no state. The peer learns its observed
/// endpoint from it, signs a registration that names that endpoint, and sends it with the
/// cookie; the node checks the cookie, the signature and the limits, stores the peer under
/// its beacons and says `registered`. Lookups (with a cookie) return the registered peers of
/// beacons. A `connect` from a registered peer introduces it to another: both get the
/// other's addresses and a fresh token and start punching (§11.5). From then on the node
/// also relays opaque datagrams between the pair (§11.7) — the session inside is end to end,
/// the node forwards ciphertext it cannot read.
public struct BootstrapNode: Sendable {
    public struct Configuration: Sendable {
        /// Registrations held at most (memory bound: ≤ 1 KiB each, BENCHMARKS.md).
        public var maxRegistrations = 200_000
        /// Registrations from one IP address (several peers behind one NAT share it).
        public var maxRegistrationsPerAddress = 256
        /// The longest TTL granted; peers refresh well before (§11.3).
        public var maxTTL: UInt16 = 300
        /// Proven requests (register, lookup, connect) per source address.
        public var requestsPerSecond = 50.0
        public var requestBurst = 100.0
        /// Cookie replies per second per source address, and in all: under a flood of
        /// spoofed requests the node answers at most this many (each no larger than its
        /// request) and drops the rest. Per address first, so a flood from some addresses
        /// cannot use up the replies that a legitimate peer's first request needs.
        public var cookieRepliesPerSecondPerAddress = 20.0
        public var cookieRepliesPerSecond = 50_000.0
        /// Relayed bytes per second per peer, with a burst, and in all.
        public var relayBytesPerSecond = 8.0 * 1024 * 1024
        public var relayBurstBytes = 2.0 * 1024 * 1024
        public var globalRelayBytesPerSecond = 256.0 * 1024 * 1024
        /// Introductions (pairs the node relays between) per peer, and how long one lasts
        /// without being renewed by a `connect`.
        public var maxPairsPerPeer = 64
        public var pairLifetime: Duration = .seconds(600)
        /// Records per beacon in one lookup answer.
        public var recordsPerBeacon = 16
        /// Slots of the per-address limiter (a power of two; constant memory).
        public var limiterSlots = 16_384

        public init() {}
    }

    /// What the node saw and did. Unproven bytes in/out measure amplification (§11.4).
    public struct Counters: Sendable, Equatable {
        public var received = 0
        public var malformed = 0
        /// Node-bound datagrams of a kind only peers receive.
        public var unexpected = 0
        public var cookieReplies = 0
        /// Cookie replies not sent: over the global rate, or larger than the request.
        public var cookieRepliesSuppressed = 0
        public var registrations = 0
        public var lookups = 0
        public var introductions = 0
        public var relayedDatagrams = 0
        public var relayedBytes = 0
        public var relayDropped = 0
        public var refusals: [RefusalReason: Int] = [:]
        public var expired = 0
        /// Bytes of requests whose sender had not proven its address, and of the node's
        /// answers to them.
        public var unprovenBytesIn = 0
        public var unprovenBytesOut = 0
        /// The largest answer/request ratio of any single unproven exchange (≤ 1 by §11.4).
        public var worstUnprovenRatio = 0.0
    }

    public let configuration: Configuration
    public private(set) var counters = Counters()
    var registry: NodeRegistry
    var cookies: CookieMinter
    var limiter: AddressLimiter
    var cookieLimiter: AddressLimiter
    var cookieBudget: Bucket
    var relayBudget: Bucket
    var rng: any RandomNumberGenerator & Sendable
    var outbox: [Datagram] = []

    public init(configuration: Configuration = Configuration(), now: Timestamp,
                random: some RandomNumberGenerator & Sendable = SodiumRandomNumberGenerator()) {
        self.configuration = configuration
        var random = random
        registry = NodeRegistry(capacity: configuration.maxRegistrations, perAddress: configuration.maxRegistrationsPerAddress,
                                maxPairs: configuration.maxPairsPerPeer)
        cookies = CookieMinter(now: now, random: &random)
        limiter = AddressLimiter(slots: configuration.limiterSlots, perSecond: configuration.requestsPerSecond,
                                 burst: configuration.requestBurst, now: now, random: &random)
        cookieLimiter = AddressLimiter(slots: configuration.limiterSlots, perSecond: configuration.cookieRepliesPerSecondPerAddress,
                                       burst: 2 * configuration.cookieRepliesPerSecondPerAddress, now: now, random: &random)
        cookieBudget = Bucket(burst: configuration.cookieRepliesPerSecond, now: now)
        relayBudget = Bucket(burst: configuration.globalRelayBytesPerSecond, now: now)
        rng = random
    }

    // MARK: Outputs

    public mutating func takeDatagrams() -> [Datagram] {
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    public var registrationCount: Int { registry.count }

    /// When `tick` has work: the next cookie rotation or expiry.
    public var nextDeadline: Timestamp {
        let rotation = cookies.nextRotation
        guard let expiry = registry.nextExpiry else { return rotation }
        return min(rotation, expiry)
    }

    /// Rotates the cookie secret and drops expired registrations.
    public mutating func tick(now: Timestamp) {
        cookies.rotateIfDue(now: now, random: &rng)
        counters.expired += registry.expire(now: now)
    }

    // MARK: Input

    public mutating func receive(_ datagram: Datagram, now: Timestamp) {
        counters.received += 1
        let bytes = datagram.payload
        // The relay hot path reads its 34-byte header in place: no message value, no copy
        // of the payload before the one into the forwarded datagram.
        if bytes.count > BootstrapWire.relayHeaderLength, bytes.count <= BootstrapWire.relayHeaderLength + BootstrapWire.maxRelayPayload,
           bytes[0] == BootstrapWire.marker, bytes[1] == BootstrapWire.Kind.relay.rawValue {
            relay(datagram, target: PeerKey(bytes, at: 2), now: now)
            return
        }
        guard let message = BootstrapMessage(decoding: datagram.payload) else {
            counters.malformed += 1
            return
        }
        let source = datagram.remote
        switch message {
        case let .register(r):
            guard prove(r.cookie, datagram, now: now) else { return }
            register(r, from: source, now: now)
        case let .lookup(cookie, beacons):
            guard prove(cookie, datagram, now: now) else { return }
            lookup(beacons, from: source, now: now)
        case let .connect(cookie, target):
            guard prove(cookie, datagram, now: now) else { return }
            connect(target, from: source, now: now)
        case .relay:
            // Only a relay with an empty or oversized payload gets here, and does not decode.
            counters.malformed += 1
        case .cookie, .registered, .lookupReply, .introduction, .relayed, .refused, .punch:
            counters.unexpected += 1
        }
    }

    // MARK: Requests

    /// Checks the cookie and the sender's rate. Without a valid cookie, answers with one
    /// (never larger than the request) and stops.
    private mutating func prove(_ cookie: [UInt8], _ datagram: Datagram, now: Timestamp) -> Bool {
        let source = datagram.remote
        guard cookies.verify(cookie, for: source) else {
            let reply = BootstrapMessage.cookie(observed: source, cookie: cookies.mint(for: source)).encoded()
            if cookieLimiter.take(source.address, now: now),
               cookieBudget.take(perSecond: configuration.cookieRepliesPerSecond, burst: configuration.cookieRepliesPerSecond, now: now),
               answerUnproven(reply, to: datagram) {
                counters.cookieReplies += 1
            } else {
                counters.cookieRepliesSuppressed += 1
            }
            return false
        }
        guard limiter.take(source.address, now: now) else {
            refuse(.rateLimited, request: datagram.payload[1], subject: nil, to: source)
            return false
        }
        return true
    }

    private mutating func register(_ r: BootstrapMessage.Register, from source: Endpoint, now: Timestamp) {
        let request = BootstrapWire.Kind.register.rawValue
        guard r.peer.publicKey.isValidSignature(r.signature, for: r.signedBytes(observed: source)) else {
            refuse(.badSignature, request: request, subject: r.peer, to: source)
            return
        }
        let ttl = min(max(r.ttl, 1), configuration.maxTTL)
        let outcome = registry.upsert(peer: r.peer, endpoint: source, locals: r.locals, beacons: r.beacons,
                                      expires: now + .seconds(Int64(ttl)), relayBurst: configuration.relayBurstBytes, now: now)
        switch outcome {
        case .full:
            refuse(.registrationsFull, request: request, subject: r.peer, to: source)
        case .stored:
            counters.registrations += 1
            outbox.append(Datagram(remote: source, payload: BootstrapMessage.registered(
                observed: source, ttl: ttl, beacons: UInt8(r.beacons.count)).encoded()))
        }
    }

    private mutating func lookup(_ beacons: [Beacon], from source: Endpoint, now: Timestamp) {
        counters.lookups += 1
        // Fill the answer beacon by beacon while it stays within one datagram (§11.4).
        var groups: [BootstrapMessage.LookupGroup] = []
        var size = 2 + 19 + 1
        for beacon in beacons {
            var records: [BootstrapMessage.PeerRecord] = []
            size += Beacon.length + 1
            for r in registry.peers(under: beacon, excluding: source, limit: configuration.recordsPerBeacon, now: now) {
                let record = BootstrapMessage.PeerRecord(peer: r.peer, endpoint: r.endpoint, locals: r.locals)
                let recordSize = 32 + 19 + 1 + 19 * r.locals.count
                guard size + recordSize <= BootstrapWire.maxAnswer else { break }
                size += recordSize
                records.append(record)
            }
            groups.append(.init(beacon: beacon, records: records))
        }
        outbox.append(Datagram(remote: source, payload: BootstrapMessage.lookupReply(observed: source, groups: groups).encoded()))
    }

    private mutating func connect(_ target: PeerID, from source: Endpoint, now: Timestamp) {
        let request = BootstrapWire.Kind.connect.rawValue
        guard let (key, asker) = registry.registration(at: source, now: now) else {
            refuse(.notRegistered, request: request, subject: nil, to: source)
            return
        }
        guard let other = registry.registration(of: target, now: now), other.peer != asker.peer else {
            refuse(.unknownPeer, request: request, subject: target, to: source)
            return
        }
        registry.pair(key, PeerKey(target), until: now + configuration.pairLifetime)
        counters.introductions += 1
        let token = (0..<BootstrapWire.tokenLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
        outbox.append(Datagram(remote: source, payload: BootstrapMessage.introduction(
            observed: source, record: .init(peer: other.peer, endpoint: other.endpoint, locals: other.locals), token: token).encoded()))
        outbox.append(Datagram(remote: other.endpoint, payload: BootstrapMessage.introduction(
            observed: other.endpoint, record: .init(peer: asker.peer, endpoint: asker.endpoint, locals: asker.locals), token: token).encoded()))
    }

    /// §11.7: the hot path. The sender proved its address when it registered from it, so
    /// the registration stands in for a cookie here.
    private mutating func relay(_ datagram: Datagram, target targetKey: PeerKey, now: Timestamp) {
        let source = datagram.remote
        let request = BootstrapWire.Kind.relay.rawValue
        guard let (key, sender) = registry.registration(at: source, now: now) else {
            // Unproven sender: the refusal must not be larger than the request.
            let reply = BootstrapMessage.refused(observed: source, reason: .notRegistered, request: request, subject: nil).encoded()
            if answerUnproven(reply, to: datagram) { counters.refusals[.notRegistered, default: 0] += 1 }
            counters.relayDropped += 1
            return
        }
        guard let receiver = registry.registration(of: targetKey, now: now) else {
            counters.relayDropped += 1
            if registry.mayRefuseRelay(key, now: now) {
                refuse(.unknownPeer, request: request, subject: try? PeerID(bytes: Array(datagram.payload[2..<34])), to: source)
            }
            return
        }
        guard let until = registry.pairedUntil(key, targetKey, now: now) else {
            counters.relayDropped += 1
            if registry.mayRefuseRelay(key, now: now) { refuse(.notIntroduced, request: request, subject: receiver.peer, to: source) }
            return
        }
        // A pair in use stays paired: renewed once half its lifetime is gone (rarely, so the
        // hot path seldom writes the table).
        if until - now < configuration.pairLifetime / 2 { registry.pair(key, targetKey, until: now + configuration.pairLifetime) }
        let bytes = datagram.payload.count - BootstrapWire.relayHeaderLength
        guard registry.spendRelay(key, bytes: bytes, perSecond: configuration.relayBytesPerSecond,
                                  burst: configuration.relayBurstBytes, now: now),
              relayBudget.take(Double(bytes), perSecond: configuration.globalRelayBytesPerSecond,
                               burst: configuration.globalRelayBytesPerSecond, now: now) else {
            counters.relayDropped += 1
            if registry.mayRefuseRelay(key, now: now) { refuse(.relayLimit, request: request, subject: receiver.peer, to: source) }
            return
        }
        counters.relayedDatagrams += 1
        counters.relayedBytes += bytes
        // `relayed` has the same layout as `relay`, with the source in place of the target.
        var out = [UInt8]()
        out.reserveCapacity(datagram.payload.count)
        out.append(BootstrapWire.marker)
        out.append(BootstrapWire.Kind.relayed.rawValue)
        out.append(contentsOf: sender.peer.bytes)
        out.append(contentsOf: datagram.payload[BootstrapWire.relayHeaderLength...])
        outbox.append(Datagram(remote: receiver.endpoint, payload: out))
    }

    // MARK: Answers

    /// Sends `reply` to an unproven sender only if it is no larger than the request.
    private mutating func answerUnproven(_ reply: [UInt8], to request: Datagram) -> Bool {
        counters.unprovenBytesIn += request.payload.count
        guard reply.count <= request.payload.count else { return false }
        counters.unprovenBytesOut += reply.count
        counters.worstUnprovenRatio = max(counters.worstUnprovenRatio, Double(reply.count) / Double(request.payload.count))
        outbox.append(Datagram(remote: request.remote, payload: reply))
        return true
    }

    /// An explicit refusal to a sender whose address is proven.
    private mutating func refuse(_ reason: RefusalReason, request: UInt8, subject: PeerID?, to source: Endpoint) {
        counters.refusals[reason, default: 0] += 1
        outbox.append(Datagram(remote: source, payload: BootstrapMessage.refused(
            observed: source, reason: reason, request: request, subject: subject).encoded()))
    }
}
