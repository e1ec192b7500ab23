import Sodium
import Synchronization
import Swarm
import SwarmNIO

/// Scenario test bed: swarms over the in-memory network or over UDP on loopback, found
/// through an in-memory discovery hub, so the same scenarios run over both transports.
final class SwarmBed: Sendable {
    enum Kind: String, Sendable, CustomStringConvertible {
        case memory, udp
        var description: String { rawValue }
    }

    let kind: Kind
    let network = InMemoryNetwork()
    let hub = InMemoryDiscoveryHub()
    let topic = Topic(bytes: [UInt8](repeating: 0x42, count: 32))!

    init(_ kind: Kind) { self.kind = kind }

    static var configuration: SwarmConfiguration {
        var c = SwarmConfiguration()
        // Faster than the defaults so scenarios run quickly, but not so fast that a suite
        // running in parallel on two cores delays a handshake response past the first
        // retransmission, or a keepalive past the dead-peer timeout.
        c.session.handshakeRetransmitBase = .milliseconds(300)
        c.session.handshakeRetransmitMax = .milliseconds(1200)
        c.session.keepaliveInterval = .milliseconds(300)
        c.session.deadPeerTimeout = .milliseconds(3000)
        c.retry = RetryPolicy(delays: [.milliseconds(100), .milliseconds(300)], jitter: 0.2)
        return c
    }

    static func identity(_ seed: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
    }

    func transport(at endpoint: Endpoint? = nil) async throws -> any DatagramTransport {
        switch kind {
        case .memory: return network.makeTransport(at: endpoint)
        case .udp: return try await UDPTransport.bind(endpoint ?? .v4(127, 0, 0, 1, port: 0))
        }
    }

    /// Starts a swarm (running in its own task) and joins `topics`.
    func node(_ seed: UInt8, topics: [Topic]? = nil, at endpoint: Endpoint? = nil,
              configuration: SwarmConfiguration = SwarmBed.configuration) async throws -> Node {
        let identity = Self.identity(seed)
        let transport = try await transport(at: endpoint)
        let discovery = hub.makeSource(peer: PeerID(identity.publicKey), endpoint: transport.localEndpoint)
        let swarm = try Swarm(identity: identity, transport: transport, discovery: [discovery],
                              configuration: configuration)
        let node = Node(swarm: swarm)
        for topic in topics ?? [self.topic] { await swarm.join(topic) }
        return node
    }
}

/// One running swarm and what it surfaced.
final class Node: Sendable {
    let swarm: Swarm
    private let state = Mutex<(connections: [PeerConnection], events: [SwarmEvent])>(([], []))
    private let tasks: Mutex<[Task<Void, Never>]> = Mutex([])

    init(swarm: Swarm) {
        self.swarm = swarm
        let run = Task { do { try await swarm.run() } catch {} }
        let collectConnections = Task {
            for await c in swarm.connections { self.state.withLock { $0.connections.append(c) } }
        }
        let collectEvents = Task {
            for await e in swarm.events { self.state.withLock { $0.events.append(e) } }
        }
        tasks.withLock { $0 = [run, collectConnections, collectEvents] }
    }

    var peer: PeerID { swarm.localPeer }
    var endpoint: Endpoint { swarm.transport.localEndpoint }
    var connections: [PeerConnection] { state.withLock { $0.connections } }
    var openConnections: [PeerConnection] { connections.filter(\.isOpen) }
    var events: [SwarmEvent] { state.withLock { $0.events } }

    func connection(to other: Node) -> PeerConnection? {
        openConnections.last { $0.remotePeer == other.peer }
    }

    /// A clean stop: close frames go out.
    func stop() async {
        await swarm.shutdown()
        for t in tasks.withLock({ $0 }) { _ = await t.value }
    }

    /// As `kill -9`: the transport goes first, so nothing more reaches the network.
    func crash() async {
        await swarm.transport.close()
        await stop()
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
/// Generous by default: it returns as soon as the condition holds, and a suite running in
/// parallel on two loaded cores can starve a scenario for seconds.
func eventually(_ timeout: Duration = .seconds(20), _ condition: () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    while clock.now < end {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}
