#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Sodium
import Swarm
import Synchronization

/// The bootstrap client as the swarm sees it (PROTOCOL.md §11.8): one object that is both a
/// `DiscoverySource` (sightings of peers registered under joined topics, at their virtual
/// endpoints) and a `DatagramTransport` wrapped around the real one (a path multiplexer:
/// session datagrams to a virtual endpoint go over the best path — LAN, punched, relay —
/// and come back with the virtual endpoint as source; the bootstrap protocol's own
/// datagrams never reach the sessions). The session code is unchanged: give the swarm this
/// object as its transport and as one of its discovery sources.
///
/// ```swift
/// let udp = try await UDPTransport.bind(.v4(0, 0, 0, 0, port: 0))
/// let client = BootstrapClient.start(identity: keys, transport: udp, nodes: [node])
/// let swarm = try Swarm(identity: keys, transport: client, discovery: [lan, client])
/// ```
public final class BootstrapClient: DatagramTransport, DiscoverySource, Sendable {
    public let incoming: AsyncStream<[Datagram]>
    public let sightings: AsyncStream<PeerSighting>
    public let inner: any DatagramTransport
    /// How long `flushed` waits at most for every node's first lookup answer.
    public let flushTimeout: Duration

    private let machine: Mutex<BootstrapClientMachine>
    private let incomingContinuation: AsyncStream<[Datagram]>.Continuation
    private let sightingsContinuation: AsyncStream<PeerSighting>.Continuation
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let closed = Atomic<Bool>(false)
    private let delivered = Atomic<Int>(0)
    private let clock: any SwarmClock
    private let unixSeconds: @Sendable () -> UInt64

    /// Starts the client over `transport` (which it owns from now on) with the nodes at
    /// `nodes` (several are used side by side).
    /// - Parameters:
    ///   - clock: the monotonic clock (tests pass a controlled one).
    ///   - unixSeconds: the wall clock, for beacon epochs (PROTOCOL.md §5.1).
    public static func start(identity: Ed25519.KeyPair, transport: any DatagramTransport, nodes: [Endpoint],
                             configuration: BootstrapClientMachine.Configuration = .init(),
                             flushTimeout: Duration = .seconds(2),
                             clock: any SwarmClock = SystemSwarmClock(),
                             unixSeconds: @escaping @Sendable () -> UInt64 = BootstrapClient.systemUnixSeconds) -> BootstrapClient {
        var configuration = configuration
        if configuration.localEndpoints.isEmpty, !transport.localEndpoint.isUnspecified {
            configuration.localEndpoints = [transport.localEndpoint]
        }
        let client = BootstrapClient(identity: identity, transport: transport, nodes: nodes, configuration: configuration,
                                     flushTimeout: flushTimeout, clock: clock, unixSeconds: unixSeconds)
        client.launch()
        return client
    }

    /// Seconds since 1970 from the system's wall clock.
    public static let systemUnixSeconds: @Sendable () -> UInt64 = { UInt64(max(0, time(nil))) }

    private init(identity: Ed25519.KeyPair, transport: any DatagramTransport, nodes: [Endpoint],
                 configuration: BootstrapClientMachine.Configuration, flushTimeout: Duration,
                 clock: any SwarmClock, unixSeconds: @escaping @Sendable () -> UInt64) {
        inner = transport
        self.flushTimeout = flushTimeout
        self.clock = clock
        self.unixSeconds = unixSeconds
        machine = Mutex(BootstrapClientMachine(identity: identity, nodes: nodes, configuration: configuration,
                                               now: clock.now(), unixSeconds: unixSeconds()))
        (incoming, incomingContinuation) = AsyncStream<[Datagram]>.makeStream(bufferingPolicy: .bufferingOldest(4096))
        (sightings, sightingsContinuation) = AsyncStream<PeerSighting>.makeStream(bufferingPolicy: .bufferingNewest(1024))
    }

    private func launch() {
        let receiver = Task { [self] in
            for await batch in inner.incoming {
                let now = clock.now()
                let (delivered, out) = machine.withLock { m -> ([Datagram], [Datagram]) in
                    var delivered: [Datagram] = []
                    delivered.reserveCapacity(batch.count)
                    for datagram in batch { if let d = m.receive(datagram, now: now) { delivered.append(d) } }
                    deliver(m.takeSightings())
                    return (delivered, m.takeDatagrams())
                }
                if !out.isEmpty { inner.send(out) }
                if !delivered.isEmpty { incomingContinuation.yield(delivered) }
            }
            incomingContinuation.finish()
        }
        let timer = Task { [self] in
            while !Task.isCancelled && !closed.load(ordering: .relaxed) {
                let now = clock.now()
                let unix = unixSeconds()
                let (out, deadline) = machine.withLock { m in
                    m.tick(now: now, unixSeconds: unix)
                    deliver(m.takeSightings())
                    return (m.takeDatagrams(), m.nextDeadline)
                }
                if !out.isEmpty { inner.send(out) }
                // Wake at the machine's deadline, and at least every 250 ms for the epoch.
                var wake = now + .milliseconds(250)
                if let deadline, deadline < wake { wake = deadline }
                // Never spin: a deadline already due is served on the next pass.
                if wake < now + .milliseconds(1) { wake = now + .milliseconds(1) }
                do { try await clock.sleep(until: wake) } catch { return }
            }
        }
        tasks.withLock { $0 = [receiver, timer] }
    }

    // MARK: DatagramTransport

    public var localEndpoint: Endpoint { inner.localEndpoint }

    /// Virtual endpoints (peers reached through a node) and whatever the socket reaches.
    public func canSend(to endpoint: Endpoint) -> Bool {
        VirtualEndpoint.contains(endpoint) || inner.canSend(to: endpoint)
    }

    public func send(_ datagrams: [Datagram]) {
        let now = clock.now()
        let out = machine.withLock { m in
            for d in datagrams { m.send(d, now: now) }
            return m.takeDatagrams()
        }
        if !out.isEmpty { inner.send(out) }
    }

    /// Stops both roles: the swarm calls it as transport and as discovery source; the
    /// second call does nothing.
    public func close() async {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        for task in tasks.withLock({ $0 }) { task.cancel() }
        sightingsContinuation.finish()
        await inner.close()
        incomingContinuation.finish()
    }

    // MARK: DiscoverySource

    public func join(_ topic: Topic, announce: Bool, lookup: Bool) async {
        let now = clock.now()
        let out = machine.withLock { m in
            m.join(topic, announce: announce, lookup: lookup, now: now)
            return m.takeDatagrams()
        }
        if !out.isEmpty { inner.send(out) }
    }

    public func leave(_ topic: Topic) async {
        let now = clock.now()
        let out = machine.withLock { m in
            m.leave(topic, now: now)
            return m.takeDatagrams()
        }
        if !out.isEmpty { inner.send(out) }
    }

    /// Puts sightings into the stream. Called with the machine's lock held, so that a round
    /// the machine reports flushed has its sightings in the stream (`flushed`).
    private func deliver(_ sightings: [PeerSighting]) {
        for s in sightings {
            if case .enqueued = sightingsContinuation.yield(s) { delivered.add(1, ordering: .relaxed) }
        }
    }

    public var sightingsDelivered: Int { delivered.load(ordering: .relaxed) }

    public func flushed(_ topic: Topic) async {
        let end = clock.now() + flushTimeout
        while clock.now() < end && !closed.load(ordering: .relaxed) {
            if machine.withLock({ $0.isFlushed(topic) }) { return }
            try? await clock.sleep(until: clock.now() + .milliseconds(10))
        }
    }

    // MARK: Our own addresses

    /// Our own socket addresses, offered to peers behind the same NAT (PROTOCOL.md §11.5).
    public var localEndpoints: [Endpoint] { machine.withLock { $0.configuration.localEndpoints } }

    /// Replaces our own socket addresses (an interface came or went): each node gets a
    /// registration with the new ones at once. The same ones again change nothing.
    public func setLocalEndpoints(_ endpoints: [Endpoint]) {
        guard !closed.load(ordering: .relaxed) else { return }
        let now = clock.now()
        let out = machine.withLock { m in
            m.setLocalEndpoints(endpoints, now: now)
            return m.takeDatagrams()
        }
        if !out.isEmpty { inner.send(out) }
    }

    /// Whether `close` was called.
    public var isClosed: Bool { closed.load(ordering: .relaxed) }

    // MARK: Inspection

    /// The path behind the endpoint a session uses (`PeerConnection.endpoint`).
    public func path(for endpoint: Endpoint) -> PathKind { machine.withLock { $0.path(for: endpoint) } }

    public func path(to peer: PeerID) -> PathKind? { machine.withLock { $0.path(to: peer) } }

    public var counters: BootstrapClientMachine.Counters { machine.withLock { $0.counters } }

    public func isRegistered(at node: Endpoint) -> Bool { machine.withLock { $0.isRegistered(at: node) } }

    public func observedEndpoint(at node: Endpoint) -> Endpoint? { machine.withLock { $0.observedEndpoint(at: node) } }

}
