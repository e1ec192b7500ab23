import Synchronization

/// A network inside one process: transports with invented endpoints (10.x.y.z) exchange
/// datagrams through it, with optional loss (from a seeded generator) and delay. The same
/// swarm scenarios run over it and over real UDP.
public final class InMemoryNetwork: Sendable {
    public struct Conditions: Sendable {
        /// Fraction of datagrams lost, 0…1.
        public var lossRate: Double = 0
        /// Delivery delay; nil delivers at once.
        public var delay: Duration?
        public init(lossRate: Double = 0, delay: Duration? = nil) {
            self.lossRate = lossRate
            self.delay = delay
        }
    }

    private struct State {
        var receivers: [Endpoint: AsyncStream<[Datagram]>.Continuation] = [:]
        var nextHost: UInt32 = 1
        var conditions: Conditions
        var rng: SeededRandom
        var delivered = 0
        var lost = 0
        var tap: (@Sendable (Endpoint, Datagram) -> Void)?
        var dropFilter: (@Sendable (Endpoint, Datagram) -> Bool)?
    }

    private let state: Mutex<State>

    public init(conditions: Conditions = Conditions(), seed: UInt64 = 1) {
        state = Mutex(State(conditions: conditions, rng: SeededRandom(seed: seed)))
    }

    public var conditions: Conditions {
        get { state.withLock { $0.conditions } }
        set { state.withLock { $0.conditions = newValue } }
    }

    /// Sees every datagram sent (source, datagram as addressed), e.g. to record one for a
    /// replay test.
    public func setTap(_ tap: (@Sendable (Endpoint, Datagram) -> Void)?) { state.withLock { $0.tap = tap } }

    /// Loses every datagram (source, datagram as addressed) for which `filter` returns true,
    /// counted as lost: a test's way to lose one particular kind of packet.
    public func setDropFilter(_ filter: (@Sendable (Endpoint, Datagram) -> Bool)?) { state.withLock { $0.dropFilter = filter } }

    /// Datagrams delivered and lost so far.
    public var counts: (delivered: Int, lost: Int) { state.withLock { ($0.delivered, $0.lost) } }

    /// A transport at `endpoint`, or at a fresh invented one. Binding an endpoint that is in
    /// use replaces the old receiver (as a restarted process would rebind its port).
    public func makeTransport(at endpoint: Endpoint? = nil) -> InMemoryTransport {
        let (stream, continuation) = AsyncStream<[Datagram]>.makeStream(bufferingPolicy: .bufferingOldest(4096))
        let local: Endpoint = state.withLock { s in
            let e = endpoint ?? {
                let h = s.nextHost
                s.nextHost += 1
                return .v4(10, UInt8(truncatingIfNeeded: h >> 16), UInt8(truncatingIfNeeded: h >> 8),
                           UInt8(truncatingIfNeeded: h), port: 4000)
            }()
            s.receivers[e]?.finish()
            s.receivers[e] = continuation
            return e
        }
        return InMemoryTransport(network: self, localEndpoint: local, incoming: stream)
    }

    func deliver(_ datagrams: [Datagram], from source: Endpoint) {
        var batches: [Endpoint: [Datagram]] = [:]
        let (delay, tap): (Duration?, (@Sendable (Endpoint, Datagram) -> Void)?) = state.withLock { s in
            for d in datagrams {
                if s.conditions.lossRate > 0, Double.random(in: 0..<1, using: &s.rng) < s.conditions.lossRate {
                    s.lost += 1
                    continue
                }
                if let filter = s.dropFilter, filter(source, d) {
                    s.lost += 1
                    continue
                }
                s.delivered += 1
                batches[d.remote, default: []].append(Datagram(remote: source, payload: d.payload))
            }
            return (s.conditions.delay, s.tap)
        }
        if let tap { for d in datagrams { tap(source, d) } }
        guard !batches.isEmpty else { return }
        if let delay {
            Task {
                try? await Task.sleep(for: delay)
                self.hand(batches)
            }
        } else {
            hand(batches)
        }
    }

    private func hand(_ batches: [Endpoint: [Datagram]]) {
        let receivers = state.withLock { s in batches.keys.compactMap { e in s.receivers[e].map { (e, $0) } } }
        for (endpoint, continuation) in receivers { continuation.yield(batches[endpoint]!) }
    }

    func detach(_ endpoint: Endpoint) {
        state.withLock { s in s.receivers.removeValue(forKey: endpoint)?.finish() }
    }
}

/// One endpoint on an `InMemoryNetwork`.
public final class InMemoryTransport: DatagramTransport {
    public let localEndpoint: Endpoint
    public let incoming: AsyncStream<[Datagram]>
    private let network: InMemoryNetwork
    private let closed = Atomic<Bool>(false)

    init(network: InMemoryNetwork, localEndpoint: Endpoint, incoming: AsyncStream<[Datagram]>) {
        self.network = network
        self.localEndpoint = localEndpoint
        self.incoming = incoming
    }

    public func send(_ datagrams: [Datagram]) {
        guard !closed.load(ordering: .relaxed), !datagrams.isEmpty else { return }
        network.deliver(datagrams, from: localEndpoint)
    }

    public func close() async {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        network.detach(localEndpoint)
    }
}
