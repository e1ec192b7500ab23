import Sodium

/// A node of the swarm, in the manner of hyperswarm: join topics, find peers through the
/// discovery sources, and get one encrypted session per peer, surfaced as `PeerConnection`s
/// once the peer proved a topic we joined (or we asked for it with `joinPeer`).
///
/// Flow: `run()` owns three kinds of child tasks — the transport's incoming batches, each
/// discovery source's sightings, and a timer. Each hands its input to the actor, which
/// feeds the sans-I/O `SessionManager` and acts on its output: datagrams go to the
/// transport in one call per batch, events update connections and channels. After a
/// session is established both sides send, per joined topic, a capability bound to the
/// session's handshake hash; a peer becomes a member of a topic when its capability
/// verifies. Peers seen for a joined topic, and peers given to `joinPeer`, are dialled
/// again with the retry policy's backoff when a handshake fails or a session is lost.
///
/// ```swift
/// let swarm = try Swarm(identity: keys, transport: udp, discovery: [lan])
/// async let running: Void = swarm.run()
/// await swarm.join(topic)
/// for await connection in swarm.connections { … }
/// ```
public actor Swarm {
    public nonisolated let localPeer: PeerID
    /// Connections as their sessions are established and proven. One consumer.
    public nonisolated let connections: AsyncStream<PeerConnection>
    /// Session and topic events. One consumer; older events are dropped past 1024 unread.
    public nonisolated let events: AsyncStream<SwarmEvent>
    public nonisolated let transport: any DatagramTransport

    let configuration: SwarmConfiguration
    let discovery: [any DiscoverySource]
    let clock: any SwarmClock
    var manager: SessionManager
    var rng: any RandomNumberGenerator

    let connectionsContinuation: AsyncStream<PeerConnection>.Continuation
    let eventsContinuation: AsyncStream<SwarmEvent>.Continuation

    enum Lifecycle { case idle, running, stopped }
    var lifecycle = Lifecycle.idle
    var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// While the timer loop sleeps: until when, and the sleep, which `pump` cancels when a
    /// timer earlier than that appeared.
    var timerSleep: (until: Timestamp, sleeper: Task<Void, Never>)?

    /// Sightings each discovery source's loop has taken from its stream (`flushed`).
    var sightingsTaken: [Int]
    /// Topics joined, with their discovery flags.
    var topics: [Topic: (announce: Bool, lookup: Bool)] = [:]
    /// Peers we dial and redial: seen for a joined topic, or asked for with `joinPeer`.
    var candidates: [PeerID: Candidate] = [:]
    /// Per established session: its handshake hash and our role, for capabilities.
    var sessions: [PeerID: SessionBinding] = [:]
    /// Peers we had a session with, to tell "restored" from "established".
    var everConnected: Set<PeerID> = []
    var userFirewall: @Sendable (PeerID) -> Bool = { _ in false }
    /// Channel messages gathered while one batch of datagrams is processed, handed to each
    /// channel in one piece at the end of the batch.
    var staged: [ObjectIdentifier: (channel: SessionChannel, messages: [[UInt8]])] = [:]

    struct Candidate {
        /// Where the peer is dialled.
        var endpoint: Endpoint?
        /// Where else it was seen, one address per other path: a dual-stack LAN shows every
        /// peer on IPv4 and on IPv6 link-local, a bootstrap node adds a virtual (IPv6)
        /// address. The peer stays on the path it was first seen on; a dial also tries the
        /// next one (`alternative`), and a failed attempt moves to it (`failOver`).
        var alternatives: [Path: Endpoint] = [:]
        var topics: Set<Topic> = []
        var explicit = false
        var failures = 0
        var nextAttempt: Timestamp?

        /// The kinds of address a peer can be seen at, in the order they are tried.
        enum Path: Int, CaseIterable {
            case ipv4, ipv6LinkLocal, ipv6

            init(_ endpoint: Endpoint) {
                self = !endpoint.isIPv6 ? .ipv4 : endpoint.isLinkLocalUnicast ? .ipv6LinkLocal : .ipv6
            }
        }

        /// The address on the path after `endpoint`'s (cyclically) that the peer was seen at.
        var alternative: Endpoint? {
            guard let current = endpoint.map(Path.init) else { return nil }
            let order = Path.allCases
            for step in 1..<order.count {
                if let other = alternatives[order[(current.rawValue + step) % order.count]] { return other }
            }
            return nil
        }

        /// Takes a new address for the peer: on `endpoint`'s path it replaces it (the peer
        /// moved); on another path it is remembered there. Whether the dialled endpoint changed.
        mutating func saw(_ seen: Endpoint) -> Bool {
            if let current = endpoint, Path(current) != Path(seen) {
                alternatives[Path(seen)] = seen
                return false
            }
            defer { endpoint = seen }
            return endpoint != seen
        }

        /// The session runs at `address` (it answered, or the peer roamed there): that is
        /// where the next dial starts, whatever path it is on; the old address stays known.
        mutating func promote(_ address: Endpoint) {
            if let current = endpoint, Path(current) != Path(address) {
                alternatives[Path(current)] = current
            }
            alternatives[Path(address)] = nil
            endpoint = address
        }

        /// After a failed attempt: the next one starts on the next path the peer was seen on.
        mutating func failOver() {
            guard let current = endpoint, let next = alternative else { return }
            alternatives[Path(next)] = nil
            alternatives[Path(current)] = current
            endpoint = next
        }
    }

    /// A class, so the per-message lookups on the hot path retain one reference instead of
    /// copying every field.
    final class SessionBinding {
        let connection: PeerConnection
        let handshakeHash: [UInt8]
        let localRole: Capability.Role
        /// Whether the connection was handed to the application yet.
        var surfaced = false
        /// Capabilities that matched no joined topic yet (we may join it later).
        var unverified: [[UInt8]] = []
        var channels: [UInt16: SessionChannel] = [:]
        var pendingOpens: [UInt16: (label: [UInt8], continuation: CheckedContinuation<SessionChannel, any Error>)] = [:]

        init(connection: PeerConnection, handshakeHash: [UInt8], localRole: Capability.Role) {
            self.connection = connection
            self.handshakeHash = handshakeHash
            self.localRole = localRole
        }
    }

    /// - Parameters:
    ///   - identity: the peer's Ed25519 key pair; its public key is the peer id.
    ///   - transport: where session datagrams go (UDP, or an in-memory network in tests).
    ///   - discovery: sources of peers for joined topics (LAN multicast, bootstrap nodes).
    ///   - firewall: return true to refuse a peer (see `setFirewall`).
    ///   - clock, random: time and randomness (jitter, indices); tests inject their own.
    public init(identity: Ed25519.KeyPair, transport: any DatagramTransport, discovery: [any DiscoverySource] = [],
                configuration: SwarmConfiguration = SwarmConfiguration(),
                firewall: @escaping @Sendable (PeerID) -> Bool = { _ in false },
                clock: any SwarmClock = SystemSwarmClock(),
                random: some RandomNumberGenerator & Sendable = SodiumRandomNumberGenerator()) throws {
        localPeer = PeerID(identity.publicKey)
        self.transport = transport
        self.discovery = discovery
        sightingsTaken = [Int](repeating: 0, count: discovery.count)
        self.configuration = configuration
        self.clock = clock
        rng = random
        manager = try SessionManager(identity: identity, configuration: configuration.session, random: random)
        manager.firewall = firewall
        userFirewall = firewall
        (connections, connectionsContinuation) = AsyncStream<PeerConnection>.makeStream()
        (events, eventsContinuation) = AsyncStream<SwarmEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
    }

    // MARK: Lifecycle

    /// Runs the swarm until `shutdown()` or until the calling task is cancelled; either way
    /// it ends with a clean shutdown (close sent to every peer, sockets closed).
    public func run() async throws {
        guard lifecycle == .idle else { throw SwarmError(.invalidState, "run() may be called once") }
        lifecycle = .running
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.receiveLoop() }
                for (index, source) in discovery.enumerated() {
                    group.addTask { await self.sightingLoop(source, index: index) }
                }
                group.addTask { await self.timerLoop() }
                await self.waitForStop()
                group.cancelAll()
            }
        } onCancel: {
            Task { await self.shutdown() }
        }
    }

    /// Closes every session (telling each peer), stops discovery and the transport, and
    /// makes `run()` return. Safe to call more than once.
    public func shutdown() async {
        guard lifecycle != .stopped else { return }
        lifecycle = .stopped
        manager.closeAll(now: clock.now())
        pump()
        timerSleep?.sleeper.cancel()
        for source in discovery { await source.close() }
        await transport.close()
        connectionsContinuation.finish()
        eventsContinuation.finish()
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters = []
    }

    private func waitForStop() async {
        guard lifecycle != .stopped else { return }
        await withCheckedContinuation { stopWaiters.append($0) }
    }

    /// Runs on the actor: each batch resumes the loop directly on the actor's executor
    /// (SE-0421), one hop per batch rather than two.
    private func receiveLoop() async {
        for await batch in transport.incoming { receive(batch) }
    }

    private func sightingLoop(_ source: any DiscoverySource, index: Int) async {
        for await sighting in source.sightings {
            sightingsTaken[index] += 1
            sighted(sighting)
        }
    }

    /// Sleeps until the earliest timer (the session manager's, a redial) and fires it. A
    /// timer that appears earlier while it sleeps wakes it (`pump` cancels the sleep), so an
    /// idle swarm wakes when something is due — every 2 s for a keepalive — rather than at a
    /// fixed rate.
    private func timerLoop() async {
        while !Task.isCancelled && lifecycle == .running {
            let now = clock.now()
            var wake = now + configuration.timerGranularity
            if let next = nextTimer(), next < wake { wake = next }
            // A timer that stays due (nothing it can do yet) must not turn this into a spin.
            wake = max(wake, now + .milliseconds(1))
            let sleeper = Task.detached { [clock, wake] in _ = try? await clock.sleep(until: wake) }
            timerSleep = (wake, sleeper)
            await withTaskCancellationHandler { await sleeper.value } onCancel: { sleeper.cancel() }
            timerSleep = nil
            guard !Task.isCancelled else { return }
            fireTimers()
        }
    }

    /// The earliest timer: the session manager's next deadline or a candidate's redial.
    func nextTimer() -> Timestamp? {
        var earliest = manager.nextDeadline
        for c in candidates.values {
            if let t = c.nextAttempt, earliest.map({ t < $0 }) ?? true { earliest = t }
        }
        return earliest
    }

    // MARK: Topics and peers

    /// Starts finding peers for `topic` (announce: let others find us; lookup: find them).
    /// Sessions that are up get our capability for it at once.
    public func join(_ topic: Topic, announce: Bool = true, lookup: Bool = true) async {
        let isNew = topics[topic] == nil
        topics[topic] = (announce, lookup)
        if isNew {
            let now = clock.now()
            for peer in Array(sessions.keys) {
                sendCapability(for: topic, to: peer, now: now)
                recheckUnverified(peer, topic: topic)
            }
            pump()
        }
        for source in discovery { await source.join(topic, announce: announce, lookup: lookup) }
    }

    /// Stops announcing and looking up `topic`. Connections stay; peers seen only for this
    /// topic are no longer redialled.
    public func leave(_ topic: Topic) async {
        topics[topic] = nil
        for peer in Array(candidates.keys) {
            candidates[peer]?.topics.remove(topic)
            if let c = candidates[peer], !c.explicit, c.topics.isEmpty { candidates[peer] = nil }
        }
        for source in discovery { await source.leave(topic) }
    }

    /// Connects to `peer` and keeps reconnecting while the swarm runs: at `endpoint` if
    /// given, else wherever discovery sees it. Its connection is surfaced without a topic.
    public func joinPeer(_ peer: PeerID, at endpoint: Endpoint? = nil) {
        guard peer != localPeer else { return }
        var c = candidates[peer] ?? Candidate()
        c.explicit = true
        if let endpoint {
            c.endpoint = endpoint
            // Dialled by the timer if the swarm is not running yet.
            c.nextAttempt = clock.now()
        }
        candidates[peer] = c
        if let binding = sessions[peer], !binding.surfaced { surface(peer) }
        if let endpoint, lifecycle == .running {
            manager.connect(to: peer, at: endpoint, now: clock.now())
            pump()
        }
    }

    /// Stops reconnecting to a peer given to `joinPeer` (its session, if any, stays).
    public func leavePeer(_ peer: PeerID) {
        candidates[peer]?.explicit = false
        if let c = candidates[peer], c.topics.isEmpty { candidates[peer] = nil }
    }

    /// Dials a bare endpoint (Noise XX: the remote's id is learned in the handshake).
    public func connect(to endpoint: Endpoint) {
        manager.connect(to: endpoint, now: clock.now())
        pump()
    }

    /// Return true to refuse a peer: no session is answered or completed with it, and
    /// existing sessions with refused peers are closed.
    public func setFirewall(_ refuse: @escaping @Sendable (PeerID) -> Bool) {
        userFirewall = refuse
        manager.firewall = refuse
        let now = clock.now()
        for peer in Array(sessions.keys) where refuse(peer) { manager.close(peer, now: now) }
        pump()
    }

    /// Returns when every discovery source finished its first lookup round for every joined
    /// topic, and the dials that round started have either connected or given up.
    public func flushed() async {
        for topic in topics.keys {
            for source in discovery { await source.flushed(topic) }
        }
        // Let the sighting loops take every sighting the round brought (on a busy machine
        // they may not have run yet), then wait out the dials they started (bounded by the
        // handshake schedule).
        let delivered = discovery.map(\.sightingsDelivered)
        let taken = clock.now() + .seconds(2)
        while lifecycle != .stopped, zip(sightingsTaken, delivered).contains(where: { $0 < $1 }), clock.now() < taken {
            try? await clock.sleep(until: clock.now() + .milliseconds(5))
        }
        let limit = clock.now().adding(nanoseconds: manager.timing.handshakeLifetime)
        while clock.now() < limit {
            let pending = candidates.keys.contains { manager.isKnown($0) && !manager.isEstablished(with: $0) }
            if !pending { break }
            try? await clock.sleep(until: clock.now() + .milliseconds(10))
        }
    }

    // MARK: Devtools

    public var dropCounters: DropCounters { manager.drops }

    public func sessionStats(for peer: PeerID) -> SessionStats? { manager.stats(for: peer) }

    public var allSessionStats: [SessionStats] { manager.allStats }

    /// Connections currently open (surfaced or not yet proven).
    public var openConnections: [PeerConnection] { sessions.values.map(\.connection) }

    public var joinedTopics: [Topic] { Array(topics.keys) }
}
