import Bootstrap
import FuzzSupport
import Sodium
import Swarm

/// A `BootstrapClientMachine` (peer A) that registered at a node, looked up its topic and was
/// introduced to peer P, and is punching towards P: set up against a real `BootstrapNode`
/// and P's own client, with P's punches held back. A script drives a copy of A:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | bytes | a datagram from the node |
/// | 1 | source, bytes | a datagram from P's public or local address, a stranger, or an unknown node |
/// | 2 | u16 × 10 ms | time passes; the timers run |
/// | 3 | target, bytes | the sessions send a session packet (1–1200 bytes, not the marker first) to P's virtual endpoint, a stranger's or a real one |
/// | 4 | n | genuine datagram n (the node's answers, P's punches) from where it came |
/// | 5 | source, ack | a punch with the introduction's token and P's id |
///
/// Invariants (§11.8): the bootstrap protocol's own datagrams never reach the sessions, and
/// everything else reaches them unchanged; no datagram A sends goes to a virtual endpoint
/// or exceeds a relayed session datagram; everything A sends to a node decodes to itself;
/// sightings name virtual endpoints.
struct ClientBed {
    static let node = Endpoint.v4(192, 0, 2, 1, port: 49_737)
    static let aPublic = Endpoint.v4(198, 51, 100, 21, port: 5000)
    static let pPublic = Endpoint.v4(198, 51, 100, 22, port: 5001)
    static let pLocal = Endpoint.v4(10, 0, 0, 22, port: 5001)
    static let sources = [pPublic, pLocal, Endpoint.v4(203, 0, 113, 7, port: 9), Endpoint.v4(192, 0, 2, 2, port: 49_737)]
    static let unixSeconds: UInt64 = 1_764_000_000
    static let topic = Topic(bytes: [UInt8](repeating: 0x70, count: Topic.length))!
    static let a = BootstrapReaders.keys(21), p = BootstrapReaders.keys(22)

    static var configuration: BootstrapClientMachine.Configuration {
        var c = BootstrapClientMachine.Configuration()
        c.maxPeers = 16
        c.maxQueued = 8
        return c
    }

    struct Poised {
        var client: BootstrapClientMachine
        var now: Timestamp
        var virtualP: Endpoint
        var token: [UInt8]
        var genuine: [(name: String, from: Endpoint, bytes: [UInt8])]
    }

    static let poised = build()

    private static func build() -> Poised {
        var now = Timestamp.seconds(1)
        var server = BootstrapNode(now: now, random: SeededRandom(seed: 9))
        var aConfiguration = configuration
        aConfiguration.localEndpoints = [.v4(10, 0, 0, 21, port: 5000)]
        var pConfiguration = configuration
        pConfiguration.localEndpoints = [pLocal]
        var client = BootstrapClientMachine(identity: a, nodes: [node], configuration: aConfiguration, now: now, unixSeconds: unixSeconds)
        var peer = BootstrapClientMachine(identity: p, nodes: [node], configuration: pConfiguration, now: now, unixSeconds: unixSeconds)
        var genuine: [(String, Endpoint, [UInt8])] = []
        var sightings: [PeerSighting] = []
        var token: [UInt8]?
        peer.join(topic, announce: true, lookup: true, now: now)
        client.join(topic, announce: true, lookup: true, now: now)
        for _ in 0..<40 {
            var moved = false
            for datagram in client.takeDatagrams() where datagram.remote == node {
                server.receive(Datagram(remote: aPublic, payload: datagram.payload), now: now)
                moved = true
            }
            for datagram in peer.takeDatagrams() {
                if datagram.remote == node {
                    server.receive(Datagram(remote: pPublic, payload: datagram.payload), now: now)
                } else if case .punch? = BootstrapMessage(decoding: datagram.payload) {
                    // Held back: A keeps punching, its path pending.
                    genuine.append(("punch", pPublic, datagram.payload))
                }
                moved = true
            }
            for datagram in server.takeDatagrams() {
                if datagram.remote == aPublic {
                    genuine.append((BootstrapReaders.kind(datagram.payload), node, datagram.payload))
                    if case let .introduction(_, _, t)? = BootstrapMessage(decoding: datagram.payload) { token = t }
                    _ = client.receive(Datagram(remote: node, payload: datagram.payload), now: now)
                } else if datagram.remote == pPublic {
                    _ = peer.receive(Datagram(remote: node, payload: datagram.payload), now: now)
                }
                moved = true
            }
            sightings += client.takeSightings()
            _ = peer.takeSightings()
            if !moved {
                now = now + .milliseconds(250)
                client.tick(now: now, unixSeconds: unixSeconds)
                peer.tick(now: now, unixSeconds: unixSeconds)
            }
        }
        guard let virtualP = sightings.first(where: { $0.peer == PeerID(p.publicKey) })?.endpoint, let token else {
            preconditionFailure("A found P through the node and was introduced")
        }
        // A datagram P relays to A through the node.
        server.receive(Datagram(remote: pPublic, payload: BootstrapMessage.relay(target: PeerID(a.publicKey), payload: [1, 2, 3]).encoded()),
                       now: now)
        for datagram in server.takeDatagrams() where datagram.remote == aPublic {
            genuine.append((BootstrapReaders.kind(datagram.payload), node, datagram.payload))
        }
        _ = client.takeDatagrams()
        _ = client.takeSightings()
        return Poised(client: client, now: now, virtualP: virtualP, token: token,
                      genuine: genuine.map { (name: $0.0, from: $0.1, bytes: $0.2) })
    }

    static var seedScripts: [(name: String, bytes: [UInt8])] {
        var scripts: [(String, [UInt8])] = []
        for (i, genuine) in poised.genuine.enumerated() {
            var s = FuzzScript()
            s.byte(4); s.byte(UInt8(i))
            if genuine.from == node {
                s.byte(0); s.chunk(genuine.bytes)
            } else {
                s.byte(1); s.byte(0); s.chunk(genuine.bytes)
            }
            s.byte(3); s.byte(0); s.chunk(Array("session".utf8))
            scripts.append(("\(genuine.name)-\(i)", s.bytes))
        }
        var punch = FuzzScript()
        punch.byte(3); punch.byte(0); punch.chunk([1, 0, 0, 0])
        punch.byte(5); punch.byte(1); punch.byte(0)
        punch.byte(1); punch.byte(1); punch.chunk([1, 6, 0, 0])
        punch.byte(2); punch.u16(700); punch.byte(3); punch.byte(0); punch.chunk([1, 6, 0, 0])
        scripts.append(("punch", punch.bytes))
        var time = FuzzScript()
        for _ in 0..<6 { time.byte(2); time.u16(3000); time.byte(3); time.byte(0); time.chunk([1]) }
        scripts.append(("time", time.bytes))
        return scripts
    }

    static func run(_ script: FuzzInput) {
        var script = script
        var client = poised.client
        var now = poised.now
        var unix = unixSeconds
        var steps = 0
        while !script.isAtEnd, steps < 64 {
            steps += 1
            var incoming: Datagram?
            switch script.byte() % 6 {
            case 0: incoming = Datagram(remote: node, payload: script.chunk())
            case 1: incoming = Datagram(remote: sources[Int(script.byte()) % sources.count], payload: script.chunk())
            case 2:
                let step = 10 * Int64(script.u16())
                now = now + .milliseconds(step)
                unix += UInt64(step / 1000)
                client.tick(now: now, unixSeconds: unix)
            case 3:
                let targets = [poised.virtualP, VirtualEndpoint.contains(poised.virtualP) ? Endpoint(address: poised.virtualP.address, port: 1) : node,
                               pPublic, sources[2]]
                let target = targets[Int(script.byte()) % targets.count]
                // What the sessions send: a session packet (§7.1) of 1 to 1200 bytes, whose
                // first byte is its version, never the bootstrap marker.
                var payload = Array(script.chunk().prefix(PacketFormat.maxDatagram))
                if payload.isEmpty { payload = [PacketFormat.version] }
                if payload[0] == BootstrapWire.marker { payload[0] = PacketFormat.version }
                client.send(Datagram(remote: target, payload: payload), now: now)
            case 4:
                let genuine = poised.genuine[Int(script.byte()) % poised.genuine.count]
                incoming = Datagram(remote: genuine.from, payload: genuine.bytes)
            default:
                let source = sources[Int(script.byte()) % sources.count]
                let punch = BootstrapMessage.punch(token: poised.token, sender: PeerID(p.publicKey), ack: script.byte() & 1 == 1)
                incoming = Datagram(remote: source, payload: punch.encoded())
            }
            if let incoming {
                let delivered = client.receive(incoming, now: now)
                check(delivered, for: incoming)
            }
            for out in client.takeDatagrams() {
                precondition(!VirtualEndpoint.contains(out.remote), "a datagram to a virtual endpoint left the client")
                precondition(out.payload.count <= BootstrapWire.relayHeaderLength + BootstrapWire.maxRelayPayload, "a datagram too large")
                if BootstrapWire.isBootstrap(out.payload) {
                    guard let message = BootstrapMessage(decoding: out.payload) else { preconditionFailure("the client sent garbage: \(out)") }
                    BootstrapReaders.check(message, encodes: out.payload)
                }
            }
            for sighting in client.takeSightings() {
                precondition(VirtualEndpoint.contains(sighting.endpoint), "a sighting at a real endpoint")
            }
        }
    }

    /// §11.8: what the client hands the sessions for one datagram.
    static func check(_ delivered: Datagram?, for incoming: Datagram) {
        guard BootstrapWire.isBootstrap(incoming.payload) else {
            precondition(delivered?.payload == incoming.payload, "a session datagram did not reach the sessions unchanged")
            return
        }
        guard let delivered else { return }
        guard incoming.remote == node, case let .relayed(_, payload)? = BootstrapMessage(decoding: incoming.payload) else {
            preconditionFailure("a bootstrap datagram reached the sessions")
        }
        precondition(delivered.payload == payload && VirtualEndpoint.contains(delivered.remote), "a relayed datagram altered")
    }
}
