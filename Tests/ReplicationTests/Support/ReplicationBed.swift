import Books
import Foundation
import Sodium
import Swarm
import SwarmNIO
import Synchronization
@testable import Replication

/// Peers with a book store, a swarm and a replicator each, over the in-memory network or
/// UDP on loopback, found through an in-memory discovery hub.
final class ReplicationBed: Sendable {
    enum Kind: String, Sendable { case memory, udp }

    let kind: Kind
    let network: InMemoryNetwork
    let hub = InMemoryDiscoveryHub()
    let topic = Topic(bytes: [UInt8](repeating: 0x42, count: 32))!
    let directory = TemporaryDirectory("repl-bed")

    init(_ kind: Kind, loss: Double = 0) {
        self.kind = kind
        network = InMemoryNetwork(conditions: .init(lossRate: loss))
    }

    static var swarmConfiguration: SwarmConfiguration {
        var c = SwarmConfiguration()
        c.session.handshakeRetransmitBase = .milliseconds(100)
        c.session.handshakeRetransmitMax = .milliseconds(400)
        c.session.keepaliveInterval = .milliseconds(200)
        c.session.deadPeerTimeout = .milliseconds(1500)
        c.retry = RetryPolicy(delays: [.milliseconds(100), .milliseconds(300)], jitter: 0.2)
        c.channelBuffer = 16384
        return c
    }

    /// A peer: store `seed` in its own directory, identity from `seed`.
    func peer(_ seed: UInt8, configuration: ReplicationConfiguration = ReplicationConfiguration(),
              policyOverride: ReplicationPolicy? = nil) async throws -> ReplicaPeer {
        let identity = try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
        let transport: any DatagramTransport = switch kind {
        case .memory: network.makeTransport()
        case .udp: try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        }
        let discovery = hub.makeSource(peer: PeerID(identity.publicKey), endpoint: transport.localEndpoint)
        let swarm = try Swarm(identity: identity, transport: transport, discovery: [discovery],
                              configuration: ReplicationBed.swarmConfiguration)
        let store = try Fixtures.store(directory.sub("peer\(seed)"), seed: seed)
        let replicator = Replicator(store: store, localPeer: swarm.localPeer,
                                    policy: policyOverride ?? .sharedSecret(topic.bytes), configuration: configuration)
        let peer = ReplicaPeer(swarm: swarm, store: store, replicator: replicator)
        await swarm.join(topic)
        return peer
    }
}

/// One running peer.
final class ReplicaPeer: Sendable {
    let swarm: Swarm
    let store: BookStore
    let replicator: Replicator
    private let tasks: Mutex<[Task<Void, Never>]> = Mutex([])

    init(swarm: Swarm, store: BookStore, replicator: Replicator) {
        self.swarm = swarm
        self.store = store
        self.replicator = replicator
        let run = Task { do { try await swarm.run() } catch {} }
        let attach = Task { await replicator.attachAll(swarm.connections) }
        tasks.withLock { $0 = [run, attach] }
    }

    var id: PeerID { swarm.localPeer }

    /// As `kill -9`: the transport goes first, so nothing more reaches the network.
    func crash() async {
        await swarm.transport.close()
        await stop()
    }

    func stop() async {
        await replicator.shutdown()
        await swarm.shutdown()
        for t in tasks.withLock({ $0 }) { t.cancel(); _ = await t.value }
        store.close()
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
func eventually(_ timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    while clock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
