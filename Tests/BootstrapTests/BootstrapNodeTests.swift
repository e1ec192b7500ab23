@testable import Bootstrap
import Sodium
import Swarm
import Testing

/// The node's protocol core driven directly: datagrams and time in, datagrams out.
@Suite("Bootstrap node machine")
struct BootstrapNodeTests {
    static func keys(_ n: UInt8) -> Ed25519.KeyPair { try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: n, count: 32))) }
    static let beacon = Beacon(bytes: [UInt8](repeating: 0x42, count: 16))!

    /// Does the cookie round trip and a signed registration from `endpoint`; returns the cookie.
    @discardableResult
    static func register(_ node: inout BootstrapNode, _ keys: Ed25519.KeyPair, at endpoint: Endpoint,
                         beacons: [Beacon] = [beacon], now: Timestamp = .zero) -> [UInt8] {
        var r = BootstrapMessage.Register(cookie: [UInt8](repeating: 0, count: 16), peer: PeerID(keys.publicKey), ttl: 60,
                                          beacons: beacons, locals: [], signature: [UInt8](repeating: 0, count: 64))
        node.receive(Datagram(remote: endpoint, payload: BootstrapMessage.register(r).encoded()), now: now)
        guard case let .cookie(observed, cookie)? = node.takeDatagrams().first.flatMap({ BootstrapMessage(decoding: $0.payload) }) else {
            Issue.record("no cookie reply")
            return []
        }
        #expect(observed == endpoint)
        r.cookie = cookie
        r.signature = keys.sign(r.signedBytes(observed: observed))
        node.receive(Datagram(remote: endpoint, payload: BootstrapMessage.register(r).encoded()), now: now)
        let answer = node.takeDatagrams().first.flatMap { BootstrapMessage(decoding: $0.payload) }
        #expect(answer == .registered(observed: endpoint, ttl: 60, beacons: UInt8(beacons.count)))
        return cookie
    }

    static func answer(_ node: inout BootstrapNode, _ message: BootstrapMessage, from endpoint: Endpoint, now: Timestamp = .zero) -> [BootstrapMessage] {
        node.receive(Datagram(remote: endpoint, payload: message.encoded()), now: now)
        return node.takeDatagrams().compactMap { BootstrapMessage(decoding: $0.payload) }
    }

    let a = Endpoint.v4(198, 51, 100, 1, port: 40_001)
    let b = Endpoint.v4(198, 51, 100, 2, port: 40_002)

    @Test func registrationThenLookupReportsTheObservedEndpoint() {
        var node = BootstrapNode(now: .zero)
        Self.register(&node, Self.keys(1), at: a)
        let cookie = Self.register(&node, Self.keys(2), at: b)
        let replies = Self.answer(&node, .lookup(cookie: cookie, beacons: [Self.beacon]), from: b)
        guard case let .lookupReply(observed, groups)? = replies.first else { Issue.record("\(replies)"); return }
        #expect(observed == b)
        // The asker's own record is left out.
        #expect(groups.first?.records.map(\.peer) == [PeerID(Self.keys(1).publicKey)])
        #expect(groups.first?.records.first?.endpoint == a)
    }

    @Test func aRegistrationSignedForAnotherEndpointIsRefused() {
        var node = BootstrapNode(now: .zero)
        let cookie = Self.register(&node, Self.keys(1), at: a)
        // Replay the registration signed for `a` from `b` (with b's own cookie).
        var r = BootstrapMessage.Register(cookie: cookie, peer: PeerID(Self.keys(1).publicKey), ttl: 60, beacons: [Self.beacon], locals: [],
                                          signature: [])
        r.signature = Self.keys(1).sign(r.signedBytes(observed: a))
        let bCookie = Self.answer(&node, .register(r), from: b)
        guard case let .cookie(_, c)? = bCookie.first else { Issue.record("\(bCookie)"); return }
        r.cookie = c
        let replies = Self.answer(&node, .register(r), from: b)
        #expect(replies.first == .refused(observed: b, reason: .badSignature, request: 1, subject: PeerID(Self.keys(1).publicKey)))
    }

    @Test func unprovenRequestsNeverGetALargerAnswer() {
        var node = BootstrapNode(now: .zero)
        Self.register(&node, Self.keys(1), at: a)
        var rng = SystemRandomNumberGenerator()
        var biggest = 0.0
        for i in 0..<5_000 {
            let source = Endpoint.v4(203, 0, 113, UInt8(i % 250), port: UInt16(1000 + i))
            let cookie = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let requests: [BootstrapMessage] = [
                .lookup(cookie: cookie, beacons: [Self.beacon]),
                .connect(cookie: cookie, target: PeerID(Self.keys(1).publicKey)),
                .relay(target: PeerID(Self.keys(1).publicKey), payload: [1]),
                .register(.init(cookie: cookie, peer: PeerID(Self.keys(3).publicKey), ttl: 60, beacons: [], locals: [], signature: cookie + cookie + cookie + cookie)),
            ]
            for request in requests {
                let bytes = request.encoded()
                node.receive(Datagram(remote: source, payload: bytes), now: .zero)
                for reply in node.takeDatagrams() { biggest = max(biggest, Double(reply.payload.count) / Double(bytes.count)) }
            }
        }
        #expect(biggest <= 1)
        #expect(node.counters.worstUnprovenRatio <= 1)
        #expect(node.counters.unprovenBytesOut <= node.counters.unprovenBytesIn)
        #expect(node.registrationCount == 1)
    }

    @Test func introductionsGoToBothAndOpenTheRelayBetweenThem() {
        var node = BootstrapNode(now: .zero)
        Self.register(&node, Self.keys(1), at: a)
        let cookie = Self.register(&node, Self.keys(2), at: b)
        let pa = PeerID(Self.keys(1).publicKey), pb = PeerID(Self.keys(2).publicKey)
        // Before an introduction the node refuses to relay.
        #expect(Self.answer(&node, .relay(target: pa, payload: [9, 9]), from: b).first
                == .refused(observed: b, reason: .notIntroduced, request: 4, subject: pa))
        node.receive(Datagram(remote: b, payload: BootstrapMessage.connect(cookie: cookie, target: pa).encoded()), now: .zero)
        let out = node.takeDatagrams()
        #expect(Set(out.map(\.remote)) == [a, b])
        var tokens: [[UInt8]] = []
        for d in out {
            guard case let .introduction(observed, record, token)? = BootstrapMessage(decoding: d.payload) else { Issue.record("\(d)"); continue }
            #expect(observed == d.remote)
            #expect(record.peer == (d.remote == a ? pb : pa))
            tokens.append(token)
        }
        #expect(tokens.count == 2 && tokens[0] == tokens[1])
        node.receive(Datagram(remote: b, payload: BootstrapMessage.relay(target: pa, payload: [9, 9]).encoded()), now: .seconds(1))
        let relayed = node.takeDatagrams()
        #expect(relayed.map(\.remote) == [a])
        #expect(relayed.first.flatMap { BootstrapMessage(decoding: $0.payload) } == .relayed(source: pb, payload: [9, 9]))
    }

    @Test func registrationsExpireAndTheTableIsBounded() {
        var config = BootstrapNode.Configuration()
        config.maxRegistrations = 3
        var node = BootstrapNode(configuration: config, now: .zero)
        for i in 1...3 { Self.register(&node, Self.keys(UInt8(i)), at: .v4(198, 51, 100, UInt8(i), port: 1)) }
        #expect(node.registrationCount == 3)
        // A fourth is refused explicitly.
        let e = Endpoint.v4(198, 51, 100, 9, port: 1)
        var r = BootstrapMessage.Register(cookie: [UInt8](repeating: 0, count: 16), peer: PeerID(Self.keys(9).publicKey), ttl: 60,
                                          beacons: [], locals: [], signature: [UInt8](repeating: 0, count: 64))
        guard case let .cookie(_, cookie)? = Self.answer(&node, .register(r), from: e).first else { Issue.record("no cookie"); return }
        r.cookie = cookie
        r.signature = Self.keys(9).sign(r.signedBytes(observed: e))
        #expect(Self.answer(&node, .register(r), from: e).first
                == .refused(observed: e, reason: .registrationsFull, request: 1, subject: PeerID(Self.keys(9).publicKey)))
        node.tick(now: .seconds(30))
        #expect(node.registrationCount == 3)
        node.tick(now: .seconds(61))
        #expect(node.registrationCount == 0)
        #expect(node.counters.expired == 3)
    }

    @Test func cookiesExpireAfterTwoRotations() {
        var node = BootstrapNode(now: .zero)
        let cookie = Self.register(&node, Self.keys(1), at: a)
        node.tick(now: .seconds(121))
        if case .lookupReply? = Self.answer(&node, .lookup(cookie: cookie, beacons: [Self.beacon]), from: a, now: .seconds(121)).first {} else {
            Issue.record("a cookie of the previous period is still good")
        }
        node.tick(now: .seconds(242))
        if case .cookie? = Self.answer(&node, .lookup(cookie: cookie, beacons: [Self.beacon]), from: a, now: .seconds(242)).first {} else {
            Issue.record("a cookie two periods old must be refreshed")
        }
    }

    @Test func perAddressRateLimitRefusesExplicitly() {
        var config = BootstrapNode.Configuration()
        config.requestBurst = 5
        config.requestsPerSecond = 1
        var node = BootstrapNode(configuration: config, now: .zero)
        let cookie = Self.register(&node, Self.keys(1), at: a)
        var refused = 0
        for _ in 0..<10 {
            if case .refused(_, .rateLimited, _, _)? = Self.answer(&node, .lookup(cookie: cookie, beacons: [Self.beacon]), from: a).first { refused += 1 }
        }
        #expect(refused >= 5)
    }

    @Test func aPairInUseStaysPairedAndAnEmptyRelayIsMalformed() {
        var node = BootstrapNode(now: .zero)
        let pa = PeerID(Self.keys(1).publicKey), pb = PeerID(Self.keys(2).publicKey)
        Self.register(&node, Self.keys(1), at: a)
        let cookie = Self.register(&node, Self.keys(2), at: b)
        _ = Self.answer(&node, .connect(cookie: cookie, target: pa), from: b)
        // Both keep registering (every 50 s) and relaying; the pair outlives its 600 s.
        var t = Timestamp.zero
        for _ in 0..<20 {
            t = t + .seconds(50)
            node.tick(now: t)
            Self.register(&node, Self.keys(1), at: a, now: t)
            Self.register(&node, Self.keys(2), at: b, now: t)
            node.receive(Datagram(remote: b, payload: BootstrapMessage.relay(target: pa, payload: [7]).encoded()), now: t)
            #expect(node.takeDatagrams().first.flatMap { BootstrapMessage(decoding: $0.payload) } == .relayed(source: pb, payload: [7]))
        }
        let malformed = node.counters.malformed
        node.receive(Datagram(remote: b, payload: [BootstrapWire.marker, 0x04] + pa.bytes), now: t)
        #expect(node.takeDatagrams().isEmpty)
        #expect(node.counters.malformed == malformed + 1)
    }
}
