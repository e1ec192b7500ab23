import Foundation
import NIOCore
import NIOPosix
import Sodium
import Testing
@testable import Swarm
@testable import SwarmNIO

/// LAN discovery over real sockets on loopback only (TTL 0), each test on its own port so
/// parallel tests and a real run on the project's port never meet.
@Suite("LAN discovery on loopback")
struct DiscoveryLoopbackTests {
    static func newPeer() -> PeerID { PeerID(Ed25519.KeyPair.generate().publicKey) }
    static func randomTopic() -> Topic { Topic(bytes: SecureRandom.bytes(32))! }

    static func start(port: UInt16, sessionPort: UInt16) async throws -> LANDiscovery {
        var machine = LANDiscoveryMachine.Configuration()
        machine.announceInterval = .milliseconds(500)
        return try await LANDiscovery.start(peer: newPeer(), sessionPort: sessionPort,
                                            configuration: .init(interfaces: [.loopback], port: port, machine: machine))
    }

    /// Sightings of `discovery` until every peer of `expected` was seen, or `timeout`.
    static func collect(_ discovery: LANDiscovery, expecting expected: Set<PeerID>, timeout: Duration = .seconds(15)) async -> [PeerSighting] {
        await withTaskGroup(of: [PeerSighting]?.self) { group in
            group.addTask {
                var got: [PeerSighting] = []
                for await s in discovery.sightings {
                    got.append(s)
                    if expected.isSubset(of: Set(got.map(\.peer))) { break }
                }
                return got
            }
            group.addTask { try? await Task.sleep(for: timeout); return nil }
            var result: [PeerSighting] = []
            if let first = await group.next(), let got = first { result = got }
            group.cancelAll()
            return result
        }
    }

    @Test func twoInstancesInOneProcessFindEachOther() async throws {
        let a = try await Self.start(port: 31_801, sessionPort: 41_001)
        let b = try await Self.start(port: 31_801, sessionPort: 41_002)
        let topic = Self.randomTopic()
        await a.join(topic, announce: true, lookup: true)
        await b.join(topic, announce: true, lookup: true)
        async let seenByA = Self.collect(a, expecting: [b.peer])
        async let seenByB = Self.collect(b, expecting: [a.peer])
        let (sa, sb) = await (seenByA, seenByB)
        #expect(sa.contains(PeerSighting(peer: b.peer, topic: topic, endpoint: .v4(127, 0, 0, 1, port: 41_002))))
        #expect(sb.contains(PeerSighting(peer: a.peer, topic: topic, endpoint: .v4(127, 0, 0, 1, port: 41_001))))
        #expect(!sa.contains { $0.peer == a.peer })
        let counters = await a.counters
        #expect(counters.machine.own > 0, "own multicast looped back and was filtered")
        #expect(counters.sendErrors == 0)
        await a.close()
        await b.close()
    }

    @Test func threeInstancesAllFindEachOther() async throws {
        let nodes = [try await Self.start(port: 31_802, sessionPort: 41_011),
                     try await Self.start(port: 31_802, sessionPort: 41_012),
                     try await Self.start(port: 31_802, sessionPort: 41_013)]
        let topic = Self.randomTopic()
        for n in nodes { await n.join(topic, announce: true, lookup: true) }
        for n in nodes {
            let others = Set(nodes.map(\.peer)).subtracting([n.peer])
            let seen = await Self.collect(n, expecting: others)
            #expect(others.isSubset(of: Set(seen.map(\.peer))))
        }
        for n in nodes { await n.close() }
    }

    @Test func flushedReturnsAfterTheFirstRound() async throws {
        let a = try await Self.start(port: 31_803, sessionPort: 41_021)
        let topic = Self.randomTopic()
        let start = ContinuousClock.now
        await a.join(topic, announce: false, lookup: true)
        await a.flushed(topic)
        let elapsed = ContinuousClock.now - start
        // The lower bound is the behaviour (the first round's queries are waited out); the
        // upper bound only says it returns, with room for a loaded machine: speed is the
        // benchmarks' business, not a test's.
        #expect(elapsed >= .milliseconds(700) && elapsed < .seconds(20), "flushed after \(elapsed)")
        // Not looked up: flushed at once.
        await a.flushed(Self.randomTopic())
        await a.close()
    }

    @Test func differentTopicsDoNotMeet() async throws {
        let a = try await Self.start(port: 31_804, sessionPort: 41_031)
        let b = try await Self.start(port: 31_804, sessionPort: 41_032)
        await a.join(Self.randomTopic(), announce: true, lookup: true)
        await b.join(Self.randomTopic(), announce: true, lookup: true)
        let seen = await Self.collect(a, expecting: [b.peer], timeout: .seconds(1.5))
        #expect(seen.isEmpty)
        await a.close()
        await b.close()
    }

    @Test func garbageOnTheDiscoveryPortIsCountedAndDiscoveryGoesOn() async throws {
        let a = try await Self.start(port: 31_805, sessionPort: 41_041)
        let b = try await Self.start(port: 31_805, sessionPort: 41_042)
        // A stranger sends junk to a's unicast port and a bogus query to the group.
        let junk = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        junk.send((0..<50).map { i in Datagram(remote: a.replyEndpoint, payload: SecureRandom.bytes(i * 20)) })
        let topic = Self.randomTopic()
        await a.join(topic, announce: true, lookup: true)
        await b.join(topic, announce: true, lookup: true)
        let seen = await Self.collect(a, expecting: [b.peer])
        #expect(seen.contains { $0.peer == b.peer })
        // The junk may still be in flight behind the useful datagrams: wait for it (bounded).
        var c = await a.counters.machine
        for _ in 0..<100 where c.badMagic + c.malformed < 50 {
            try await Task.sleep(for: .milliseconds(20))
            c = await a.counters.machine
        }
        #expect(c.badMagic + c.malformed == 50, "garbage counted: \(c), junk: \(junk.counters)")
        await junk.close()
        await a.close()
        await b.close()
    }

    @Test func closeFinishesSightingsAndFlushedWaiters() async throws {
        let a = try await Self.start(port: 31_806, sessionPort: 41_051)
        let topic = Self.randomTopic()
        await a.join(topic, announce: true, lookup: true)
        async let waiter: Void = a.flushed(topic)
        await a.close()
        await waiter
        for await _ in a.sightings {}
    }

    @Test func socketsClosedUnderneathAreOpenedAgainAndDiscoveryGoesOn() async throws {
        // NIO closes a datagram socket on most send errors (an address not yet usable, an
        // interface gone down); discovery must outlive that, on its multicast socket and on
        // its unicast one (whose port queries advertise: it must come back on the same port).
        let a = try await Self.start(port: 31_813, sessionPort: 41_101)
        let topic = Self.randomTopic()
        await a.join(topic, announce: true, lookup: true)
        await a.closeSocketUnderneath(0)
        await a.closeSocketUnderneath(1)
        let deadline = ContinuousClock.now + .seconds(10)
        while await a.counters.socketRestarts < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(await a.counters.socketRestarts == 2)
        let b = try await Self.start(port: 31_813, sessionPort: 41_102)
        await b.join(topic, announce: true, lookup: true)
        async let seenByA = Self.collect(a, expecting: [b.peer])
        async let seenByB = Self.collect(b, expecting: [a.peer])
        let (sa, sb) = await (seenByA, seenByB)
        #expect(sa.contains { $0.peer == b.peer }, "a hears the group again")
        #expect(sb.contains { $0.peer == a.peer })
        // b's queries were answered through a's reopened unicast socket, at the same port.
        #expect(await a.counters.machine.answersSent > 0)
        #expect(a.replyEndpoint.port == (try await a.core.loop.submit { a.core.channel(0)?.localAddress?.port }.get()).map(UInt16.init))
        await a.close()
        await b.close()
    }

    @Test func loopbackMulticastUsesTTLZeroAndTheLoopbackAddress() async throws {
        // The options LANDiscovery sets, read back from a socket: TTL 0 keeps datagrams on
        // the host, and the outgoing interface is 127.0.0.1, never the default route.
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "239.255.66.83", port: 31_809).get()
        let options = try #require(channel as? SocketOptionProvider)
        let loopback = try InterfaceSpec.loopback.resolve()
        #expect(loopback.ipv6LinkLocal == nil, "IPv6 multicast does not deliver on lo: no IPv6 discovery there")
        try await MulticastOptions.apply(to: options, group: [239, 255, 66, 83], address: try #require(loopback.ipv4Bytes),
                                         loopback: loopback.isLoopback)
        #expect(try await options.getIPMulticastTTL().get() == 0)
        var outgoing = try await options.getIPMulticastIF().get()
        #expect(withUnsafeBytes(of: &outgoing) { Array($0) } == [127, 0, 0, 1])
        #expect(try await options.getIPMulticastLoop().get() == 1)
        try await channel.close()
    }

    @Test func interfaceMustBeGivenAndResolvable() async throws {
        await #expect(throws: SwarmNIOError(.invalidAddress, "")) {
            _ = try await LANDiscovery.start(peer: Self.newPeer(), sessionPort: 1, configuration: .init(interfaces: [], port: 31_807))
        }
        await #expect(throws: SwarmNIOError(.invalidAddress, "")) {
            _ = try await LANDiscovery.start(peer: Self.newPeer(), sessionPort: 1,
                                             configuration: .init(interfaces: [.named("no-such-if0")], port: 31_807))
        }
        // The LAN default is followed instead of given interfaces, never beside them. (It is
        // not started here: it would multicast on the host's real network. The namespace
        // bed runs it: NetnsLANDefaultTests.)
        var both = LANDiscovery.Configuration.lanDefault(port: 31_807)
        both.interfaces = [.loopback]
        await #expect(throws: SwarmNIOError(.invalidAddress, "")) {
            _ = try await LANDiscovery.start(peer: Self.newPeer(), sessionPort: 1, configuration: both)
        }
    }

    /// How the LAN default with no interface yet is shown and encoded (the ready line, `inspect`).
    @Test func theLANDefaultWithNoInterfaceYetShowsAsWaiting() throws {
        let waiting = DiscoveryInterface.anyLANWaiting
        #expect(waiting.description == "any LAN interface (waiting for IPv4)")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(waiting), as: UTF8.self) == #"{"families":[],"name":"*","waiting":["IPv4"]}"#)
        #expect(DiscoveryInterface(name: "eth0", families: ["IPv4"]).description == "eth0")
    }

    @Test func separateProcessesShareTheDiscoveryPort() async throws {
        guard let probe = Probe.binary else {
            Issue.record("discovery-probe not built: run `swift build` (Tools/test builds it)")
            return
        }
        let topic = Self.randomTopic().bytes.hexString
        let outputs = try await withThrowingTaskGroup(of: Probe.Output.self) { group in
            for i in 0..<3 {
                group.addTask {
                    Probe.Output(try await Probe.run(
                        [probe.path, "--interface", "lo", "--port", "31808", "--topic", topic,
                         "--seconds", "1.5", "--session-port", "\(41_060 + i)"], timeout: 10))
                }
            }
            var all: [Probe.Output] = []
            for try await o in group { all.append(o) }
            return all
        }
        let peers = outputs.compactMap(\.peer)
        #expect(peers.count == 3, "\(outputs.map(\.lines))")
        for o in outputs {
            #expect(o.flushed)
            let seen = Set(o.sightings.map(\.peer))
            #expect(seen == Set(peers).subtracting([o.peer!]), "\(o.lines)")
            #expect(o.sightings.allSatisfy { $0.endpoint.hasPrefix("127.0.0.1:4106") })
        }
    }
}
