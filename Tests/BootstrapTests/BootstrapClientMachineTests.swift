@testable import Bootstrap
import Sodium
import Swarm
import Testing

/// Two client machines and a node behind simulated NATs, in virtual time.
@Suite("Bootstrap client machine behind simulated NATs")
struct BootstrapClientMachineTests {
    static let topic = Topic(bytes: [UInt8](repeating: 0x5A, count: 32))!
    static let hello: [UInt8] = [1, 0, 0, 0] + Array("hello through the path".utf8)

    @Test func coneNATsPunchADirectPath() {
        var world = NATWorld([.cone, .cone])
        world.join(Self.topic)
        world.run(for: .seconds(2))
        #expect(world.hosts[0].sightings.contains { $0.peer == world.peer(1) && VirtualEndpoint.contains($0.endpoint) })
        guard case .punched? = world.hosts[0].machine.path(to: world.peer(1)) else {
            Issue.record("path \(String(describing: world.hosts[0].machine.path(to: world.peer(1))))"); return
        }
        guard case .punched? = world.hosts[1].machine.path(to: world.peer(0)) else { Issue.record("no punched path back"); return }
        let sent = world.send(Self.hello, from: 0, to: 1)
        #expect(sent)
        let got = world.hosts[1].delivered.last
        #expect(got?.payload == Self.hello)
        #expect(got.map { VirtualEndpoint.contains($0.remote) } == true)
        // And back, to the virtual endpoint the session saw.
        world.hosts[1].machine.send(Datagram(remote: got!.remote, payload: Self.hello.reversed()), now: world.now)
        world.deliver()
        #expect(world.hosts[0].delivered.last?.payload == Self.hello.reversed())
        #expect(world.node.counters.relayedDatagrams == 0)
    }

    /// A peer's own addresses change (an interface came or went): the node gets a
    /// registration with the new ones at once, not at the next refresh 20 s later, and it
    /// replaces the one it held; the same addresses again send nothing.
    @Test func newLocalAddressesAreRegisteredAtOnce() {
        var world = NATWorld([.cone, .cone])
        world.join(Self.topic)
        world.run(for: .seconds(2))
        func locals() -> [Endpoint]? { world.node.registry.registration(of: world.peer(0), now: world.now)?.locals }
        #expect(locals() == [.v4(10, 0, 0, 2, port: 5000)])
        let moved: [Endpoint] = [.v4(10, 0, 0, 2, port: 5000), .v4(192, 168, 7, 9, port: 5000)]
        world.hosts[0].machine.setLocalEndpoints(moved, now: world.now)
        #expect(world.hosts[0].machine.configuration.localEndpoints == moved)
        world.deliver()
        #expect(locals() == moved, "registered again without any time passing")
        world.hosts[0].machine.setLocalEndpoints(moved, now: world.now)
        #expect(world.hosts[0].machine.takeDatagrams().isEmpty, "the same addresses again send nothing")
        // None left (every interface went): the registration says so.
        world.hosts[0].machine.setLocalEndpoints([], now: world.now)
        world.deliver()
        #expect(locals() == [])
        // And the next refresh keeps its schedule: nothing more until it is due.
        world.run(for: .seconds(1))
        #expect(locals() == [])
        #expect(world.node.registrationCount == 2)
    }

    @Test func symmetricNATsFallBackToTheRelayAfterTheBound() {
        var world = NATWorld([.symmetric, .cone])
        world.join(Self.topic)
        for _ in 0..<500 where !world.hosts[0].sightings.contains(where: { $0.peer == world.peer(1) }) {
            world.run(for: .milliseconds(10))
        }
        // No direct path opens: once the bound has passed, the datagram goes by relay.
        let sent = world.send(Self.hello, from: 0, to: 1)
        #expect(sent)
        world.run(for: .seconds(2))
        #expect(world.hosts[1].delivered.map(\.payload) == [Self.hello])
        #expect(world.hosts[0].machine.path(to: world.peer(1)) == .relay(node: world.nodeEndpoint))
        #expect(world.node.counters.relayedDatagrams == 1)
        // The answer comes back through the relay at once.
        let virtual = world.hosts[1].delivered[0].remote
        world.hosts[1].machine.send(Datagram(remote: virtual, payload: [1, 2]), now: world.now)
        world.deliver()
        #expect(world.hosts[0].delivered.last?.payload == [1, 2])
        // Punching goes on longer than a NAT mapping lives, then stops (and a failed round
        // is not started again by every lookup).
        world.run(for: .seconds(45))
        let punches = world.hosts[0].machine.counters.punchesSent
        world.run(for: .seconds(5))
        #expect(world.hosts[0].machine.counters.punchesSent == punches)
    }

    @Test func aRestartedNodeIsRegisteredWithAgainAndRelaysAgain() {
        var world = NATWorld([.symmetric, .symmetric])
        world.join(Self.topic)
        world.run(for: .seconds(2))
        let sent = world.send(Self.hello, from: 0, to: 1)
        #expect(sent)
        world.run(for: .seconds(1))
        #expect(world.hosts[1].delivered.count == 1)
        // The node restarts: new cookie secret, empty tables.
        world.nodeUp = false
        world.run(for: .seconds(2))
        world.node = BootstrapNode(now: world.now)
        world.nodeUp = true
        var delivered = false
        for _ in 0..<40 where !delivered {
            _ = world.send(Self.hello, from: 0, to: 1)
            world.run(for: .milliseconds(500))
            delivered = world.hosts[1].delivered.count > 1
        }
        #expect(delivered)
        #expect(world.node.registrationCount == 2)
    }

    @Test func theNodeRelaysCiphertextItCannotReadAndLearnsNothingElse() {
        var world = NATWorld([.symmetric, .symmetric])
        world.join(Self.topic)
        world.run(for: .seconds(2))
        _ = world.send(Self.hello, from: 0, to: 1)
        world.run(for: .seconds(2))
        #expect(world.hosts[1].delivered.map(\.payload) == [Self.hello])
        // The relay carries the session's bytes unchanged (they are ciphertext in a real
        // session; here the test payload is what the session handed over).
        #expect(world.nodeSaw.contains { $0.count == Self.hello.count + BootstrapWire.relayHeaderLength })
    }

    @Test func garbageFromAnywhereIsDroppedAndCounted() {
        var world = NATWorld([.open, .open])
        world.join(Self.topic)
        world.run(for: .seconds(1))
        let before = world.hosts[0].machine.counters.malformed
        _ = world.hosts[0].machine.receive(Datagram(remote: .v4(1, 2, 3, 4, port: 5), payload: [BootstrapWire.marker, 0x99, 1]), now: world.now)
        // A bootstrap answer from something that is not a configured node is not believed.
        let fake = BootstrapMessage.relayed(source: world.peer(1), payload: [1]).encoded()
        #expect(world.hosts[0].machine.receive(Datagram(remote: .v4(1, 2, 3, 4, port: 5), payload: fake), now: world.now) == nil)
        #expect(world.hosts[0].machine.counters.malformed == before + 2)
        // A punch with a wrong token confirms nothing.
        _ = world.hosts[0].machine.receive(Datagram(remote: .v4(1, 2, 3, 4, port: 5), payload: BootstrapMessage.punch(
            token: [UInt8](repeating: 1, count: 16), sender: world.peer(1), ack: false).encoded()), now: world.now)
        #expect(world.hosts[0].machine.counters.badPunches == 1)
        // Non-bootstrap datagrams from unknown endpoints pass through unchanged (LAN sessions).
        let lan = Datagram(remote: .v4(10, 9, 9, 9, port: 1), payload: [1, 6, 0, 0])
        #expect(world.hosts[0].machine.receive(lan, now: world.now) == lan)
    }
}
