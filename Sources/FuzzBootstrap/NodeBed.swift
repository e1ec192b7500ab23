import Bootstrap
import FuzzSupport
import Sodium
import Swarm

/// A `BootstrapNode` with small limits (8 registrations, 4 per address) holding two
/// registered peers that it introduced to each other, and a cookie for every source the
/// script can send from. A script drives a copy of it:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | source, bytes | a datagram to the node |
/// | 1 | source, signer, bytes | the bytes as a message, with the source's valid cookie put in and, for a register, the signer's peer id and signature |
/// | 2 | u16 × 10 ms | time passes; the node's timers run (cookie rotation, expiry) |
/// | 3 | source, target, bytes | a relay of the bytes to a registered peer |
///
/// Invariants (§11.4, §11.7): every datagram is counted; no answer to an unproven request is
/// larger than the request; no answer exceeds 1200 bytes, no relayed datagram the relay
/// limit; everything the node sends decodes to itself; registrations stay within the limit.
struct NodeBed {
    static let sources: [Endpoint] = [
        .v4(198, 51, 100, 1, port: 40_001), .v4(198, 51, 100, 2, port: 40_002), .v4(198, 51, 100, 1, port: 40_003),
        .v4(203, 0, 113, 9, port: 7000), Endpoint(address: .v6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9]), port: 7000),
    ]
    static let signers = (11...13).map { BootstrapReaders.keys($0) }
    static let beacons = (1...3).map { Beacon(bytes: [UInt8](repeating: $0, count: Beacon.length))! }
    static var configuration: BootstrapNode.Configuration {
        var c = BootstrapNode.Configuration()
        c.maxRegistrations = 8
        c.maxRegistrationsPerAddress = 4
        c.limiterSlots = 64
        return c
    }

    struct Poised {
        var node: BootstrapNode
        var now: Timestamp
        var cookies: [Endpoint: [UInt8]]
        var genuine: [(name: String, bytes: [UInt8])]
    }

    static let poised = build()

    private static func build() -> Poised {
        let now = Timestamp.seconds(10)
        var node = BootstrapNode(configuration: configuration, now: .zero, random: SeededRandom(seed: 5))
        var cookies: [Endpoint: [UInt8]] = [:]
        var genuine: [(String, [UInt8])] = []
        func send(_ message: BootstrapMessage, from source: Endpoint) -> [BootstrapMessage] {
            genuine.append((BootstrapReaders.kind(message.encoded()), message.encoded()))
            node.receive(Datagram(remote: source, payload: message.encoded()), now: now)
            return node.takeDatagrams().map {
                genuine.append((BootstrapReaders.kind($0.payload), $0.payload))
                return BootstrapMessage(decoding: $0.payload)!
            }
        }
        for source in sources {
            let ask = BootstrapMessage.lookup(cookie: [UInt8](repeating: 0, count: BootstrapWire.cookieLength), beacons: beacons)
            guard case let .cookie(_, cookie)? = send(ask, from: source).first else { preconditionFailure("no cookie") }
            cookies[source] = cookie
        }
        for (signer, source) in zip(signers.prefix(2), sources) {
            let register = signedRegister(signer, beacons: beacons, cookie: cookies[source]!, observed: source)
            guard case .registered? = send(.register(register), from: source).first else { preconditionFailure("not registered") }
        }
        _ = send(.lookup(cookie: cookies[sources[0]]!, beacons: beacons), from: sources[0])
        _ = send(.connect(cookie: cookies[sources[0]]!, target: PeerID(signers[1].publicKey)), from: sources[0])
        _ = send(.relay(target: PeerID(signers[1].publicKey), payload: Array("session datagram".utf8)), from: sources[0])
        return Poised(node: node, now: now, cookies: cookies, genuine: genuine)
    }

    static func signedRegister(_ signer: Ed25519.KeyPair, beacons: [Beacon], locals: [Endpoint] = [], ttl: UInt16 = 60,
                               cookie: [UInt8], observed: Endpoint) -> BootstrapMessage.Register {
        var register = BootstrapMessage.Register(cookie: cookie, peer: PeerID(signer.publicKey), ttl: ttl, beacons: beacons,
                                                 locals: locals, signature: [])
        register.signature = signer.sign(register.signedBytes(observed: observed))
        return register
    }

    static var seedScripts: [(name: String, bytes: [UInt8])] {
        var scripts: [(String, [UInt8])] = []
        for (i, genuine) in poised.genuine.enumerated() {
            var s = FuzzScript()
            s.byte(0); s.byte(UInt8(i % sources.count)); s.chunk(genuine.bytes)
            s.byte(1); s.byte(UInt8(i % sources.count)); s.byte(UInt8(i % 3)); s.chunk(genuine.bytes)
            scripts.append(("\(genuine.name)-\(i)", s.bytes))
        }
        var relay = FuzzScript()
        relay.byte(3); relay.byte(1); relay.byte(0); relay.chunk(Array("back".utf8))
        relay.byte(2); relay.u16(6000); relay.byte(3); relay.byte(0); relay.byte(1); relay.chunk(Array("late".utf8))
        relay.byte(2); relay.u16(30000); relay.byte(3); relay.byte(0); relay.byte(1); relay.chunk(Array("expired".utf8))
        scripts.append(("relay-and-expiry", relay.bytes))
        return scripts
    }

    static func run(_ script: FuzzInput) {
        var script = script
        var node = poised.node
        var now = poised.now
        var steps = 0
        while !script.isAtEnd, steps < 64 {
            steps += 1
            var datagram: Datagram?
            switch script.byte() % 4 {
            case 0:
                datagram = Datagram(remote: sources[Int(script.byte()) % sources.count], payload: script.chunk())
            case 1:
                let source = sources[Int(script.byte()) % sources.count]
                let signer = signers[Int(script.byte()) % signers.count]
                guard let message = BootstrapMessage(decoding: script.chunk()) else { continue }
                datagram = Datagram(remote: source, payload: fixed(message, source: source, signer: signer).encoded())
            case 2:
                now = now + .milliseconds(10 * Int64(script.u16()))
                node.tick(now: now)
            default:
                let source = sources[Int(script.byte()) % sources.count]
                let target = PeerID(signers[Int(script.byte()) % signers.count].publicKey)
                let payload = Array(script.chunk().prefix(BootstrapWire.maxRelayPayload))
                datagram = Datagram(remote: source, payload: BootstrapMessage.relay(target: target, payload: payload).encoded())
            }
            if let datagram {
                let received = node.counters.received
                node.receive(datagram, now: now)
                precondition(node.counters.received == received + 1, "every datagram is counted")
            }
            for out in node.takeDatagrams() {
                guard let message = BootstrapMessage(decoding: out.payload) else { preconditionFailure("the node sent garbage") }
                BootstrapReaders.check(message, encodes: out.payload)
                if case .relayed = message {
                    precondition(out.payload.count <= BootstrapWire.relayHeaderLength + BootstrapWire.maxRelayPayload, "a relayed datagram too large")
                } else {
                    precondition(out.payload.count <= BootstrapWire.maxAnswer, "an answer over 1200 bytes")
                }
            }
            precondition(node.counters.worstUnprovenRatio <= 1, "an unproven request got a larger answer")
            precondition(node.registrationCount <= configuration.maxRegistrations, "registrations beyond the limit")
        }
    }

    /// `message` with the source's valid cookie and, for a register, the signer's id and
    /// signature over the source: what a well-behaved peer would have sent.
    static func fixed(_ message: BootstrapMessage, source: Endpoint, signer: Ed25519.KeyPair) -> BootstrapMessage {
        let cookie = poised.cookies[source]!
        switch message {
        case let .register(r):
            return .register(signedRegister(signer, beacons: r.beacons, locals: r.locals, ttl: r.ttl, cookie: cookie, observed: source))
        case let .lookup(_, beacons): return .lookup(cookie: cookie, beacons: beacons)
        case let .connect(_, target): return .connect(cookie: cookie, target: target)
        case .relay, .cookie, .registered, .lookupReply, .introduction, .relayed, .refused, .punch: return message
        }
    }
}
