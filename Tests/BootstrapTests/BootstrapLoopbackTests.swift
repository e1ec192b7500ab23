import Bootstrap
import BootstrapNIO
import Foundation
import Sodium
import Swarm
import SwarmNIO
import Synchronization
import Testing

/// A swarm whose transport and discovery source is a bootstrap client over UDP.
final class BootstrapSwarmPeer: Sendable {
    let swarm: Swarm
    let client: BootstrapClient
    private let seen = Seen()
    private let tasks = Mutex<[Task<Void, Never>]>([])

    static var swarmConfiguration: SwarmConfiguration {
        var c = SwarmConfiguration()
        c.session.handshakeRetransmitBase = .milliseconds(200)
        c.session.keepaliveInterval = .milliseconds(300)
        // Longer than the client's fallback from a silent direct path to the relay (6 s), as
        // the production default (10 s) is: otherwise a session dies before its path recovers.
        c.session.deadPeerTimeout = .seconds(10)
        c.retry = RetryPolicy(delays: [.milliseconds(200), .milliseconds(500)], jitter: 0.2)
        return c
    }

    convenience init(seed: UInt8, node: Endpoint, topic: Topic, configuration: BootstrapClientMachine.Configuration = .init()) async throws {
        try await self.init(seed: seed, nodes: [node], topic: topic, configuration: configuration)
    }

    /// - Parameter lan: a LAN discovery stand-in to run beside the bootstrap client.
    init(seed: UInt8, nodes: [Endpoint], topic: Topic, configuration: BootstrapClientMachine.Configuration = .init(),
         lan: InMemoryDiscoveryHub? = nil) async throws {
        let identity = try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
        let udp = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        client = BootstrapClient.start(identity: identity, udp: udp, nodes: nodes, configuration: configuration)
        var discovery: [any DiscoverySource] = [client]
        if let lan { discovery.append(lan.makeSource(peer: PeerID(identity.publicKey), endpoint: udp.localEndpoint)) }
        swarm = try Swarm(identity: identity, transport: client, discovery: discovery, configuration: Self.swarmConfiguration)
        let swarm = self.swarm
        let run = Task { do { try await swarm.run() } catch {} }
        let seen = self.seen
        let collect = Task { for await c in swarm.connections { seen.list.withLock { $0.append(c) } } }
        tasks.withLock { $0 = [run, collect] }
        await swarm.join(topic)
    }

    var connections: [PeerConnection] { seen.list.withLock { $0 } }

    final class Seen: Sendable { let list = Mutex<[PeerConnection]>([]) }

    /// Returns as soon as a connection is open. Deadlines are generous: registration needs a
    /// cookie round trip and lookups back off (1, 2, 4 s …), and a full suite starting on two
    /// cores can delay both by seconds; speed is measured by the benchmarks.
    func waitForConnection(_ timeout: Duration) async -> PeerConnection? {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if let c = connections.last(where: \.isOpen) { return c }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Waits until the path of `connection` is `name` (lan, punched, relay).
    func waitForPath(_ connection: PeerConnection, _ names: Set<String>, _ timeout: Duration) async -> String {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        var current = client.path(for: connection.endpoint).name
        while clock.now < end && !names.contains(current) {
            try? await Task.sleep(for: .milliseconds(20))
            current = client.path(for: connection.endpoint).name
        }
        return current
    }

    func stop() async {
        await swarm.shutdown()
        for t in tasks.withLock({ $0 }) { t.cancel() }
    }
}

/// Sends `text` from `a` to `b` on a fresh channel and returns what `b` received.
func exchange(_ text: String, from a: PeerConnection, to b: PeerConnection) async throws -> String? {
    let channel = try await a.openChannel(label: Array("chat".utf8))
    try await channel.send(Array(text.utf8))
    var incoming = b.incomingChannels.makeAsyncIterator()
    guard let received = await incoming.next() else { return nil }
    var messages = received.messages.makeAsyncIterator()
    return await messages.next().map { String(decoding: $0, as: UTF8.self) }
}

/// Real swarms over the bootstrap client over UDP on loopback, with a real node: the
/// session code runs unchanged over whichever path the client picks.
@Suite("Bootstrap over UDP on loopback", .serialized)
struct BootstrapLoopbackTests {
    static func topic() -> Topic { Topic(bytes: SecureRandom.bytes(32))! }

    /// What a socket on `0.0.0.0` offers peers behind the same NAT: the host's IPv4
    /// addresses from the shared interface lookup, loopback left out, with the socket's port.
    /// `bookswarm-bootstrap --stats-interval S`: a number of seconds no sleep can take
    /// (infinite, or past Int64 milliseconds) is refused in one line on stderr (exit 2); it
    /// used to trap the node (`Int64(interval * 1000)`) once it served.
    @Test(.enabled(if: ChildProcess.binary("bookswarm-bootstrap") != nil, "bookswarm-bootstrap is not built"))
    func anImpossibleStatsIntervalIsRefused() async throws {
        for interval in ["inf", "1e300", "9.3e15", "-1", "nan"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: ChildProcess.binary("bookswarm-bootstrap")!)
            process.arguments = ["--port", "0", "--bind", "127.0.0.1", "--stats-interval", interval]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationReason == .exit && process.terminationStatus == 2, "\(interval): \(stderr)")
            #expect(stderr.split(separator: "\n").count == 1 && stderr.contains("--stats-interval"), "\(interval): \(stderr)")
        }
    }

    @Test func aWildcardSocketOffersTheHostsIPv4AddressesButLoopback() {
        let offered = BootstrapClient.interfaceEndpoints(for: .v4(0, 0, 0, 0, port: 4242))
        let expected = NetworkInterface.all().flatMap(\.ipv4Addresses).map { Endpoint(address: $0, port: 4242) }.filter { !$0.isLoopback }
        #expect(offered == Array(expected.prefix(4)))
        #expect(BootstrapClient.interfaceEndpoints(for: .v4(127, 0, 0, 1, port: 4242)) == [.v4(127, 0, 0, 1, port: 4242)])
    }

    @Test func twoPeersConnectDirectlyAndChat() async throws {
        let server = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0))
        let serving = Task { await server.run() }
        let topic = Self.topic()
        let a = try await BootstrapSwarmPeer(seed: 1, node: server.localEndpoint, topic: topic)
        let b = try await BootstrapSwarmPeer(seed: 2, node: server.localEndpoint, topic: topic)
        let ca = await a.waitForConnection(.seconds(30))
        let cb = await b.waitForConnection(.seconds(30))
        #expect(ca != nil && cb != nil)
        if let ca, let cb {
            #expect(ca.sessionID == cb.sessionID)
            // Same host: the peers reach each other at their own socket addresses.
            #expect(await a.waitForPath(ca, ["lan"], .seconds(20)) == "lan")
            #expect(await b.waitForPath(cb, ["lan"], .seconds(20)) == "lan")
            // The chat goes direct. (Before the direct path opens, a slow machine may have
            // relayed a few datagrams: the relay is the fallback while punching.)
            let relayed = server.counters.relayedDatagrams
            #expect(try await exchange("hello from a", from: ca, to: cb) == "hello from a")
            #expect(server.counters.relayedDatagrams == relayed)
        }
        await a.stop()
        await b.stop()
        await server.stop()
        serving.cancel()
    }

    @Test func withoutPunchingTheSessionRunsThroughTheRelayAndTheNodeSeesNoPlaintext() async throws {
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("bootstrap-capture-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let server = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0), capturePath: capture)
        let serving = Task { await server.run() }
        var noPunch = BootstrapClientMachine.Configuration()
        noPunch.punchDuration = .zero
        let topic = Self.topic()
        let a = try await BootstrapSwarmPeer(seed: 3, node: server.localEndpoint, topic: topic, configuration: noPunch)
        let b = try await BootstrapSwarmPeer(seed: 4, node: server.localEndpoint, topic: topic, configuration: noPunch)
        let ca = await a.waitForConnection(.seconds(30))
        let cb = await b.waitForConnection(.seconds(30))
        let secret = "relayed plaintext \(UInt64.random(in: 0...UInt64.max))"
        if let ca, let cb {
            #expect(a.client.path(for: ca.endpoint).name == "relay")
            #expect(try await exchange(secret, from: ca, to: cb) == secret)
        } else {
            Issue.record("no connection")
        }
        #expect(server.counters.relayedDatagrams > 0)
        await a.stop()
        await b.stop()
        await server.stop()
        serving.cancel()
        let seen = try [UInt8](Data(contentsOf: URL(fileURLWithPath: capture)))
        #expect(seen.count > 1000)
        #expect(!contains(seen, Array(secret.utf8)), "the node saw the plaintext")
    }

    /// The relay bound is zero for one side, so the session starts relayed; punching then
    /// opens the direct path and the same session moves to it.
    @Test func aRelayedSessionMovesToTheDirectPathWithoutNoticing() async throws {
        let server = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0))
        let serving = Task { await server.run() }
        var slowPunch = BootstrapClientMachine.Configuration()
        slowPunch.relayAfter = .zero
        // The first punches go out only after the session is up on the relay (punching at
        // once, as by default, could open the direct path before the first relayed datagram
        // and the session would never have been relayed).
        slowPunch.firstPunchAfter = .seconds(1)
        slowPunch.punchFastInterval = .seconds(1)
        slowPunch.punchFastPhase = .zero
        slowPunch.punchSlowInterval = .seconds(1)
        let topic = Self.topic()
        let a = try await BootstrapSwarmPeer(seed: 5, node: server.localEndpoint, topic: topic, configuration: slowPunch)
        let b = try await BootstrapSwarmPeer(seed: 6, node: server.localEndpoint, topic: topic, configuration: slowPunch)
        guard let ca = await a.waitForConnection(.seconds(30)), let cb = await b.waitForConnection(.seconds(30)) else {
            Issue.record("no connection")
            return
        }
        #expect(await a.waitForPath(ca, ["lan", "punched"], .seconds(20)) == "lan")
        #expect(server.counters.relayedDatagrams > 0, "the session started on the relay")
        let relayedBefore = server.counters.relayedDatagrams
        #expect(try await exchange("after the move", from: ca, to: cb) == "after the move")
        #expect(ca.isOpen && a.connections.count == 1 && b.connections.count == 1)
        try await Task.sleep(for: .milliseconds(500))
        #expect(server.counters.relayedDatagrams - relayedBefore < 5, "traffic left the relay")
        await a.stop()
        await b.stop()
        await server.stop()
        serving.cancel()
    }
}

extension BootstrapLoopbackTests {
    /// Several nodes are used side by side: one that never answers costs nothing but its
    /// retransmissions, and peers registered only at different live nodes still meet where
    /// they overlap.
    @Test func severalNodesSideBySideOneOfThemDead() async throws {
        let live = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0))
        let serving = Task { await live.run() }
        // A port nobody listens on (bound, then closed).
        let gone = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0))
        let dead = gone.localEndpoint
        await gone.stop()
        let topic = Self.topic()
        let a = try await BootstrapSwarmPeer(seed: 7, nodes: [dead, live.localEndpoint], topic: topic)
        let b = try await BootstrapSwarmPeer(seed: 8, nodes: [live.localEndpoint, dead], topic: topic)
        let ca = await a.waitForConnection(.seconds(30))
        let cb = await b.waitForConnection(.seconds(30))
        #expect(ca != nil && cb != nil && ca?.sessionID == cb?.sessionID)
        #expect(a.client.isRegistered(at: live.localEndpoint) && !a.client.isRegistered(at: dead))
        await a.stop()
        await b.stop()
        await live.stop()
        serving.cancel()
    }
}

extension BootstrapLoopbackTests {
    /// LAN discovery and a bootstrap node side by side: one session per peer, never on the
    /// relay — a LAN sighting dials the real endpoint, a bootstrap sighting ends on the
    /// peer's local endpoint.
    @Test func lanDiscoveryAndABootstrapNodeSideBySide() async throws {
        let server = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0))
        let serving = Task { await server.run() }
        let hub = InMemoryDiscoveryHub()
        let topic = Self.topic()
        let a = try await BootstrapSwarmPeer(seed: 9, nodes: [server.localEndpoint], topic: topic, lan: hub)
        let b = try await BootstrapSwarmPeer(seed: 10, nodes: [server.localEndpoint], topic: topic, lan: hub)
        guard let ca = await a.waitForConnection(.seconds(30)), let cb = await b.waitForConnection(.seconds(30)) else {
            Issue.record("no connection")
            return
        }
        #expect(ca.sessionID == cb.sessionID)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(["direct", "lan"].contains(a.client.path(for: ca.endpoint).name), "\(a.client.path(for: ca.endpoint))")
        #expect(try await exchange("side by side", from: ca, to: cb) == "side by side")
        #expect(a.connections.count == 1 && b.connections.count == 1)
        #expect(server.counters.relayedDatagrams == 0)
        await a.stop()
        await b.stop()
        await server.stop()
        serving.cancel()
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count else { return false }
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
        if Array(haystack[i..<i + needle.count]) == needle { return true }
    }
    return false
}
