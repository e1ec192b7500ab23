import Sodium
import Testing
@testable import Swarm
import SwarmNIO
import Synchronization

/// The same scenarios over the in-memory network and over UDP on loopback.
@Suite("Swarm scenarios", .serialized)
struct SwarmScenarioTests {
    @Test(arguments: [SwarmBed.Kind.memory, .udp])
    func twoPeersGetOneSession(kind: SwarmBed.Kind) async throws {
        let bed = SwarmBed(kind)
        let a = try await bed.node(1)
        let b = try await bed.node(2)
        #expect(await eventually { a.connection(to: b) != nil && b.connection(to: a) != nil })
        let ab = try #require(a.connection(to: b))
        let ba = try #require(b.connection(to: a))
        #expect(ab.sessionID == ba.sessionID)
        #expect(ab.handshakeHash == ba.handshakeHash && ab.localRole == ba.localRole.peer)
        #expect(ab.topics == [bed.topic] && ba.topics == [bed.topic])
        #expect(a.connections.count == 1 && b.connections.count == 1)
        await a.stop()
        await b.stop()
    }

    @Test(arguments: [SwarmBed.Kind.memory, .udp])
    func threePeersGetThreeSessions(kind: SwarmBed.Kind) async throws {
        let bed = SwarmBed(kind)
        let nodes = [try await bed.node(1), try await bed.node(2), try await bed.node(3)]
        #expect(await eventually { nodes.allSatisfy { $0.openConnections.count == 2 } })
        var ids = Set<SessionID>()
        for n in nodes { for c in n.openConnections { ids.insert(c.sessionID) } }
        #expect(ids.count == 3)
        for n in nodes { #expect(n.connections.count == 2) }
        for n in nodes { await n.stop() }
    }

    @Test(arguments: [SwarmBed.Kind.memory, .udp])
    func channelsCarryMessagesBothWays(kind: SwarmBed.Kind) async throws {
        let bed = SwarmBed(kind)
        let a = try await bed.node(1)
        let b = try await bed.node(2)
        #expect(await eventually { a.connection(to: b) != nil && b.connection(to: a) != nil })
        let ab = try #require(a.connection(to: b))
        let ba = try #require(b.connection(to: a))
        let label = Array("replication/v1 book".utf8)
        async let incoming: SessionChannel? = { for await ch in ba.incomingChannels { return ch }; return nil }()
        let out = try await ab.openChannel(label: label)
        let inbound = try #require(await incoming)
        #expect(inbound.label == label && inbound.id == out.id)
        try await out.send([[1], [2], [3]])
        var got: [[UInt8]] = []
        for await m in inbound.messages {
            got.append(m)
            if got.count == 3 { break }
        }
        #expect(got == [[1], [2], [3]])
        try await inbound.send(Array(repeating: 7, count: ChannelLimits.maxMessage))
        var it = out.messages.makeAsyncIterator()
        #expect(await it.next()?.count == ChannelLimits.maxMessage)
        await #expect(throws: SwarmError(.messageTooLarge, "")) {
            try await out.send(Array(repeating: 0, count: ChannelLimits.maxMessage + 1))
        }
        await out.close()
        #expect(await eventually { !inbound.isOpen })
        await #expect(throws: SwarmError(.channelClosed, "")) { try await out.send([1]) }
        await a.stop()
        await b.stop()
    }

    /// A node that recorded the beacon (and so can find the peer and even complete a
    /// handshake with it) but lacks the topic is never made a member.
    @Test func aNodeWithTheBeaconButNotTheTopicIsRefused() async throws {
        let bed = SwarmBed(.memory)
        let a = try await bed.node(1)
        let other = Topic(bytes: [UInt8](repeating: 0x99, count: 32))!
        let beacon = Beacon(topic: bed.topic, epoch: BeaconEpoch(index: 1))
        #expect(beacon.bytes != Array(bed.topic.bytes.prefix(Beacon.length)))
        let eve = try await bed.node(9, topics: [other])
        // Eve learnt A's id and endpoint from its announcement and dials it directly.
        await eve.swarm.joinPeer(a.peer, at: a.endpoint)
        #expect(await eventually { eve.connection(to: a) != nil })
        try await Task.sleep(for: .milliseconds(300))
        #expect(a.connections.isEmpty)
        #expect(eve.connection(to: a)?.topics.isEmpty == true)
        #expect(!a.events.contains { if case .topicProven = $0 { true } else { false } })
        await a.stop()
        await eve.stop()
    }

    @Test(arguments: [SwarmBed.Kind.memory, .udp])
    func garbageIsDroppedCountedAndTheSessionGoesOn(kind: SwarmBed.Kind) async throws {
        let bed = SwarmBed(kind)
        let recorded = RecordedDatagrams()
        bed.network.setTap { _, d in recorded.add(d.payload) }
        let a = try await bed.node(1)
        let b = try await bed.node(2)
        #expect(await eventually { a.connection(to: b) != nil && b.connection(to: a) != nil })
        let attacker = try await bed.transport()
        var rng = SeededRandom(seed: 5)
        var garbage: [[UInt8]] = [
            [UInt8](repeating: 1, count: 1500),                                  // oversized
            [1, 6, 0],                                                            // truncated
            [1, 6, 0, 0] + [UInt8](repeating: 0, count: 60),                      // unknown index
        ]
        for _ in 0..<50 { garbage.append((0..<Int(rng.next() % 1200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
        if let packet = recorded.all.last(where: { $0.count > 32 && $0[1] == 6 }) {
            garbage.append(packet)                                                // replayed
            var flipped = packet
            flipped[flipped.count - 1] ^= 1
            garbage.append(flipped)                                               // bit-flipped
        }
        attacker.send(garbage.map { Datagram(remote: a.endpoint, payload: $0) })
        #expect(await eventually { await a.swarm.dropCounters.total >= UInt64(garbage.count) })
        let drops = await a.swarm.dropCounters
        #expect(drops[.tooBig] >= 1 && drops[.malformed] >= 1 && drops[.unknownIndex] >= 1)
        // Still connected, and still carrying messages.
        let ab = try #require(a.connection(to: b))
        let ba = try #require(b.connection(to: a))
        async let incoming: SessionChannel? = { for await ch in ba.incomingChannels { return ch }; return nil }()
        let out = try await ab.openChannel(label: [1])
        let inbound = try #require(await incoming)
        try await out.send([42])
        var it = inbound.messages.makeAsyncIterator()
        #expect(await it.next() == [42])
        #expect(ab.isOpen)
        await attacker.close()
        await a.stop()
        await b.stop()
    }

    /// A peer dies without a word: the other notices within the dead-peer timeout; the peer
    /// restarts with the same identity and endpoint, and the session comes back by itself.
    @Test(arguments: [SwarmBed.Kind.memory, .udp])
    func aKilledPeerIsDetectedAndComesBack(kind: SwarmBed.Kind) async throws {
        let bed = SwarmBed(kind)
        let a = try await bed.node(1)
        let b = try await bed.node(2)
        #expect(await eventually { a.connection(to: b) != nil && b.connection(to: a) != nil })
        let first = try #require(a.connection(to: b))
        let endpoint = b.endpoint
        await b.crash()
        let clock = ContinuousClock()
        let start = clock.now
        let reason = await first.closed()
        let detected = clock.now - start
        #expect(reason == .timeout)
        #expect(detected <= SwarmBed.configuration.session.deadPeerTimeout + .milliseconds(500))
        #expect(await eventually { a.events.contains { if case .sessionLost(_, _, .timeout) = $0 { true } else { false } } })
        let b2 = try await bed.node(2, at: endpoint)
        #expect(await eventually { a.connection(to: b2) != nil && b2.connection(to: a) != nil })
        #expect(a.connection(to: b2)?.sessionID != first.sessionID)
        #expect(a.events.contains { if case .sessionRestored = $0 { true } else { false } })
        await a.stop()
        await b2.stop()
    }

    @Test func aCleanShutdownClosesTheRemoteSessionAtOnce() async throws {
        let bed = SwarmBed(.memory)
        let a = try await bed.node(1)
        let b = try await bed.node(2)
        #expect(await eventually { a.connection(to: b) != nil && b.connection(to: a) != nil })
        let ab = try #require(a.connection(to: b))
        await b.stop()
        #expect(await eventually(.seconds(5)) { ab.closeReason == .closedByRemote })
        await a.stop()
    }

    @Test func flushedReturnsOnceTheFirstRoundsDialsAreDone() async throws {
        let bed = SwarmBed(.memory)
        let a = try await bed.node(1)
        let b = try await bed.node(2)
        await b.swarm.flushed()
        #expect(await b.swarm.sessionStats(for: a.peer)?.isEstablished == true)
        await a.stop()
        await b.stop()
    }

    @Test func cancellingRunShutsDownCleanly() async throws {
        let bed = SwarmBed(.memory)
        let a = try await bed.node(1)
        let identity = SwarmBed.identity(2)
        let transport = bed.network.makeTransport()
        let discovery = bed.hub.makeSource(peer: PeerID(identity.publicKey), endpoint: transport.localEndpoint)
        let b = try Swarm(identity: identity, transport: transport, discovery: [discovery], configuration: SwarmBed.configuration)
        let running = Task { try await b.run() }
        await b.join(bed.topic)
        #expect(await eventually { a.openConnections.count == 1 })
        running.cancel()
        _ = await running.result
        #expect(await eventually(.seconds(5)) { a.connections.first?.closeReason == .closedByRemote })
        await a.stop()
    }

    @Test func joinPeerSurfacesAConnectionWithoutATopic() async throws {
        let bed = SwarmBed(.memory)
        let a = try await bed.node(1, topics: [])
        let b = try await bed.node(2, topics: [])
        await a.swarm.joinPeer(b.peer, at: b.endpoint)
        await b.swarm.joinPeer(a.peer)
        #expect(await eventually { a.connection(to: b) != nil && b.connection(to: a) != nil })
        #expect(a.connection(to: b)?.topics.isEmpty == true)
        await a.stop()
        await b.stop()
    }

    @Test func theFirewallRefusesAPeer() async throws {
        let bed = SwarmBed(.memory)
        let a = try await bed.node(1)
        let bPeer = PeerID(SwarmBed.identity(2).publicKey)
        await a.swarm.setFirewall { $0 == bPeer }
        let b = try await bed.node(2)
        try await Task.sleep(for: .milliseconds(500))
        #expect(a.connections.isEmpty && b.connections.isEmpty)
        #expect(await a.swarm.dropCounters[.refused] >= 1)
        await a.stop()
        await b.stop()
    }

    @Test func aLossyNetworkStillConnects() async throws {
        let bed = SwarmBed(.memory)
        bed.network.conditions = InMemoryNetwork.Conditions(lossRate: 0.2)
        let nodes = [try await bed.node(1), try await bed.node(2), try await bed.node(3)]
        #expect(await eventually(.seconds(30)) { nodes.allSatisfy { $0.openConnections.count == 2 } })
        for n in nodes { await n.stop() }
    }
}

final class RecordedDatagrams: Sendable {
    private let bytes = Mutex<[[UInt8]]>([])
    func add(_ b: [UInt8]) { bytes.withLock { $0.append(b) } }
    var all: [[UInt8]] { bytes.withLock { $0 } }
}
