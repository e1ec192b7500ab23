import FuzzSupport
import NIOCore
import Sodium
import Swarm

/// A `LANDiscoveryMachine` (node A) poised on three topics — announced and looked up,
/// announced only, looked up only — with its first queries sent, so that answers are
/// expected. A script drives a copy of it:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | source, socket, bytes | a datagram arrives (multicast port or unicast reply port) |
/// | 1 | u16 ms | time passes; the timers run |
/// | 2 | n | the wall clock moves n beacon epochs |
/// | 3 | topic, flags | join (flags 1 announce, 2 look up) or, with neither, leave |
///
/// Invariants (§6.3): what does not decode, or comes on the wrong socket, causes nothing; a
/// query causes only answers, each no larger than the query, to its source, echoing a
/// subset of its beacons; announcements and answers cause only sightings of their sender,
/// at most one per beacon; every datagram A multicasts decodes.
struct DiscoveryBed {
    static let topics: [Topic] = (1...3).map { Topic(bytes: [UInt8](repeating: $0, count: Topic.length))! }
    static let peer = PeerID(SessionBed.identity(1).publicKey)
    static let bob = PeerID(SessionBed.identity(2).publicKey)
    static let sources: [Endpoint] = [
        .v4(10, 77, 0, 2, port: DiscoveryGroup.port), .v4(10, 77, 0, 2, port: 50_001), .v4(10, 77, 0, 3, port: 9),
        Endpoint(address: .v6(SessionBed.linkLocal(2)), port: DiscoveryGroup.port, scopeID: 3),
    ]
    static let start = LANDiscoveryMachine.Time(monotonic: .uptimeNanoseconds(1_000_000_000), unixSeconds: 1_764_000_000)

    struct Poised {
        var machine: LANDiscoveryMachine
        var rng: SeededRandom
        /// Bob's genuine datagrams on the same topics: announcement, query, answer to A.
        var genuine: [(name: String, bytes: [UInt8], socket: LANDiscoveryMachine.Socket)]
    }

    static let poised = build()

    private static func build() -> Poised {
        var rng = SeededRandom(seed: 1)
        var machine = LANDiscoveryMachine(peer: peer, sessionPort: 4000, replyPort: 4001)
        var own: [[UInt8]] = []
        for (topic, flags) in zip(topics, [(true, true), (true, false), (false, true)]) {
            own += multicasts(machine.join(topic, announce: flags.0, lookup: flags.1, at: start, rng: &rng))
        }
        own += multicasts(machine.tick(at: start, rng: &rng))
        var bobs = LANDiscoveryMachine(peer: bob, sessionPort: 5000, replyPort: 5001)
        var genuine: [(String, [UInt8], LANDiscoveryMachine.Socket)] = []
        for topic in topics {
            for bytes in multicasts(bobs.join(topic, announce: true, lookup: true, at: start, rng: &rng)) {
                genuine.append(("", bytes, .multicast))
            }
        }
        for bytes in multicasts(bobs.tick(at: start, rng: &rng)) { genuine.append(("", bytes, .multicast)) }
        for query in own where DiscoveryMessage.decode(query).map(\.kind) == .success(.query) {
            for case let .unicast(bytes, _) in bobs.receive(query, from: sources[0], on: .multicast, at: start) {
                genuine.append(("", bytes, .unicast))
            }
        }
        precondition(genuine.contains { $0.2 == .unicast }, "Bob answers A's query")
        return Poised(machine: machine, rng: rng, genuine: genuine.enumerated().map { i, g in
            let kind = (try? DiscoveryMessage.decode(g.1).get()).map { "\($0.kind)" } ?? "?"
            return ("\(kind)-\(i)", g.1, g.2)
        })
    }

    private static func multicasts(_ actions: [LANDiscoveryMachine.Action]) -> [[UInt8]] {
        actions.compactMap { if case let .multicast(bytes) = $0 { bytes } else { nil } }
    }

    static var genuineMessages: [(name: String, bytes: [UInt8])] { poised.genuine.map { ($0.name, $0.bytes) } }

    static var seedScripts: [(name: String, bytes: [UInt8])] {
        poised.genuine.map { genuine in
            var s = FuzzScript()
            s.byte(0); s.byte(genuine.socket == .multicast ? 0 : 1); s.byte(genuine.socket == .multicast ? 0 : 1)
            s.chunk(genuine.bytes)
            s.byte(1); s.u16(5000); s.byte(2); s.byte(1); s.byte(3); s.byte(1); s.byte(3)
            s.byte(0); s.byte(0); s.byte(0); s.chunk(genuine.bytes)
            return (genuine.name, s.bytes)
        }
    }

    static func run(_ script: FuzzInput) {
        var script = script
        var machine = poised.machine
        var rng = poised.rng
        var time = start
        var steps = 0
        while !script.isAtEnd, steps < 100 {
            steps += 1
            switch script.byte() % 4 {
            case 0:
                let source = sources[Int(script.byte()) % sources.count]
                let socket: LANDiscoveryMachine.Socket = script.byte() & 1 == 0 ? .multicast : .unicast
                let payload = script.chunk()
                let received = machine.counters.received
                let actions = machine.receive(payload, from: source, on: socket, at: time)
                precondition(machine.counters.received == received + 1, "every datagram is counted")
                check(actions, for: payload, from: source, on: socket)
            case 1:
                time.monotonic = time.monotonic + .milliseconds(Int64(script.u16()))
                checkOwn(machine.tick(at: time, rng: &rng))
            case 2:
                time.unixSeconds += BeaconEpoch.seconds * UInt64(script.byte() % 4)
            default:
                let topic = topics[Int(script.byte()) % topics.count]
                let flags = script.byte()
                if flags & 3 == 0 {
                    checkOwn(machine.leave(topic))
                } else {
                    checkOwn(machine.join(topic, announce: flags & 1 != 0, lookup: flags & 2 != 0, at: time, rng: &rng))
                }
            }
        }
    }

    /// §6.3: what one received datagram may cause.
    static func check(_ actions: [LANDiscoveryMachine.Action], for payload: [UInt8], from source: Endpoint,
                      on socket: LANDiscoveryMachine.Socket) {
        guard case let .success(message) = DiscoveryMessage.decode(payload) else {
            precondition(actions.isEmpty, "a datagram that does not decode caused something")
            return
        }
        switch (message.kind, socket) {
        case (.query, .multicast):
            for action in actions {
                guard case let .unicast(bytes, to) = action else { preconditionFailure("a query caused \(action)") }
                precondition(bytes.count <= payload.count, "an answer larger than its query")
                precondition(to.address == source.address && to.port == message.port, "an answer not to the querier's reply port")
                guard case let .success(answer) = DiscoveryMessage.decode(bytes), answer.kind == .answer, answer.sender == peer,
                      answer.beacons.allSatisfy(message.beacons.contains) else {
                    preconditionFailure("an answer that is not a subset of its query")
                }
            }
        case (.announcement, .multicast), (.answer, .unicast):
            precondition(actions.count <= message.beacons.count, "more sightings than beacons")
            for action in actions {
                guard case let .sighting(sighting) = action, sighting.peer == message.sender,
                      sighting.endpoint.address == source.address, sighting.endpoint.port == message.port else {
                    preconditionFailure("\(message.kind) caused \(action)")
                }
            }
        case (.query, .unicast), (.announcement, .unicast), (.answer, .multicast):
            precondition(actions.isEmpty, "a datagram on the wrong socket caused something")
        }
    }

    /// What A sends on its own decodes, and stays within one datagram (§6.2).
    static func checkOwn(_ actions: [LANDiscoveryMachine.Action]) {
        for case let .multicast(bytes) in actions {
            precondition(bytes.count <= DiscoveryMessage.maxLength, "a discovery datagram over its maximum")
            guard case .success = DiscoveryMessage.decode(bytes) else { preconditionFailure("A multicast what it cannot decode") }
        }
    }
}
