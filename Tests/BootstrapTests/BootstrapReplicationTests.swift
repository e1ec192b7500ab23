import Bootstrap
import BootstrapNIO
import Books
import Foundation
import Replication
import Sodium
import Swarm
import SwarmNIO
import Synchronization
import Testing

/// Book replication over a relayed session: the relay is just another path to the session
/// layer, so everything above it works unchanged, and the node sees only ciphertext.
@Suite("Book replication over the bootstrap relay", .serialized)
struct BootstrapReplicationTests {
    final class Replica: Sendable {
        let swarm: Swarm
        let client: BootstrapClient
        let store: BookStore
        let replicator: Replicator
        let directory: String
        private let tasks = Mutex<[Task<Void, Never>]>([])

        init(seed: UInt8, node: Endpoint, topic: Topic) async throws {
            let identity = try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
            let udp = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
            var noPunch = BootstrapClientMachine.Configuration()
            noPunch.punchDuration = .zero
            client = BootstrapClient.start(identity: identity, udp: udp, nodes: [node], configuration: noPunch)
            swarm = try Swarm(identity: identity, transport: client, discovery: [client],
                              configuration: BootstrapSwarmPeer.swarmConfiguration)
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("bootstrap-repl-\(seed)-\(UInt32.random(in: 0...UInt32.max))").path
            store = try BookStore.open(directory: directory, masterSecret: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
            replicator = Replicator(store: store, localPeer: swarm.localPeer, policy: .sharedSecret(topic.bytes))
            let swarm = self.swarm, replicator = self.replicator
            let run = Task { do { try await swarm.run() } catch {} }
            let attach = Task { await replicator.attachAll(swarm.connections) }
            tasks.withLock { $0 = [run, attach] }
            await swarm.join(topic)
        }

        func stop() async {
            await replicator.shutdown()
            await swarm.shutdown()
            for t in tasks.withLock({ $0 }) { t.cancel(); _ = await t.value }
            store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func aBookReplicatesThroughTheRelayAndTheNodeNeverSeesAPage() async throws {
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("bootstrap-repl-capture-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let server = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0), capturePath: capture)
        let serving = Task { await server.run() }
        let topic = Topic(bytes: SecureRandom.bytes(32))!
        let author = try await Replica(seed: 21, node: server.localEndpoint, topic: topic)
        let reader = try await Replica(seed: 22, node: server.localEndpoint, topic: topic)
        let marker = "book-plaintext-\(UInt32.random(in: 0...UInt32.max))"
        let book = try author.store.createOrOpen(name: "ana-bob-task")
        _ = try book.append(contentsOf: (0..<40).map { Array("\(marker) page \($0) ".utf8) + [UInt8](repeating: UInt8($0), count: 500) })
        try await reader.replicator.replicate(book.id, from: author.swarm.localPeer)
        let copy = try reader.store.open(id: book.id)
        let clock = ContinuousClock()
        // Returns as soon as the copy is complete (about 1 s here); the bound leaves room for
        // a suite running in parallel on two loaded cores.
        let end = clock.now + .seconds(60)
        while copy.contiguousLength < 40 && clock.now < end { try await Task.sleep(for: .milliseconds(20)) }
        #expect(copy.contiguousLength == 40)
        let connection = await reader.swarm.openConnections.first
        #expect(connection.map { reader.client.path(for: $0.endpoint).name } == "relay")
        #expect(server.counters.relayedDatagrams > 0)
        await reader.stop()
        await author.stop()
        await server.stop()
        serving.cancel()
        let seen = try [UInt8](Data(contentsOf: URL(fileURLWithPath: capture)))
        #expect(seen.count > 10_000)
        #expect(!contains(seen, Array(marker.utf8)), "the node saw a page's plaintext")
    }
}
