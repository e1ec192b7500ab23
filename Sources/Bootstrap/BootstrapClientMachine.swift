import Sodium
import Swarm

/// The peer's side of the bootstrap protocol, sans-I/O (PROTOCOL.md §11): it talks to the
/// configured nodes, finds peers of joined topics, punches holes, and routes the session
/// layer's datagrams over the best path to each peer.
///
/// Flow. For every node: a first register earns a cookie and the observed endpoint (§11.4);
/// the signed registration of the announced topics' beacons follows and is refreshed every
/// `refreshInterval` (which also keeps the NAT mapping towards the node alive). Lookups for
/// the looked-up topics run at once and every `lookupInterval`; each record found becomes a
/// sighting at the peer's *virtual endpoint* (§11.8) and, unless a direct path exists, a
/// `connect`. The node's introduction starts punching (§11.5); a punch from the peer, or any
/// datagram from its punched endpoint, confirms a direct path. Datagrams the sessions send to
/// a virtual endpoint go over the best confirmed path — LAN before punched — or, once
/// `relayAfter` has passed without one, through the node (§11.7); until then they wait in a
/// short queue. Datagrams arriving from a confirmed path or relayed by a node reach the
/// sessions with the virtual endpoint as source, so a session never sees a path change.
public struct BootstrapClientMachine: Sendable {
    public struct Configuration: Sendable {
        /// TTL asked for registrations.
        public var ttl: UInt16 = 60
        /// Re-register this often: well within the TTL, and under the 30 s a Linux NAT keeps
        /// an idle UDP mapping (MACHINE.md), so the node can always reach us.
        public var refreshInterval: Duration = .seconds(20)
        /// Look up again this often, to find peers that joined later.
        public var lookupInterval: Duration = .seconds(10)
        /// Resend an unanswered request after this long.
        public var requestRetransmit: Duration = .seconds(1)
        /// Punch every `punchFastInterval` for `punchFastPhase`, then every
        /// `punchSlowInterval` until `punchDuration`: longer than a NAT's UDP mapping
        /// timeout (30 s on Linux), so a hole the first packets missed still opens.
        public var punchFastInterval: Duration = .milliseconds(200)
        /// The first punch goes out this long after the introduction (at once by default;
        /// more lets a session start on the relay first, as a test of the move needs).
        public var firstPunchAfter: Duration = .zero
        public var punchFastPhase: Duration = .seconds(2)
        public var punchSlowInterval: Duration = .seconds(2)
        public var punchDuration: Duration = .seconds(40)
        /// After a punching round that opened nothing (a symmetric NAT), wait this long
        /// before trying again: the relay works meanwhile.
        public var punchRetryAfterFailure: Duration = .seconds(300)
        /// The bound: datagrams for a peer wait this long for a direct path, then go by relay.
        public var relayAfter: Duration = .seconds(1)
        /// A direct path that carried nothing for this long is given up (sessions send
        /// keepalives every 2 s), and the peer goes back to the relay.
        public var directIdleLimit: Duration = .seconds(6)
        /// Ask a node to introduce the same peer again at most this often.
        public var introductionInterval: Duration = .seconds(10)
        /// Session datagrams held per peer while its path is pending.
        public var maxQueued = 64
        /// Peers tracked at most (paths and virtual endpoints).
        public var maxPeers = 4096
        /// Our own socket addresses, offered to peers behind the same NAT (at most
        /// `BootstrapWire.maxLocals` are sent). `setLocalEndpoints` changes them later.
        public var localEndpoints: [Endpoint] = []

        public init() {}
    }

    public struct Counters: Sendable, Equatable {
        public var malformed = 0
        public var registered = 0
        public var cookies = 0
        public var lookupReplies = 0
        public var introductions = 0
        public var punchesSent = 0
        public var punchesReceived = 0
        public var badPunches = 0
        public var directConfirmed = 0
        public var directLost = 0
        public var relayedSent = 0
        public var relayedReceived = 0
        public var queueDropped = 0
        public var refusals: [RefusalReason: Int] = [:]
    }

    struct NodeState {
        var cookie: [UInt8]?
        var observed: Endpoint?
        var registered = false
        var nextRegister: Timestamp
        var nextLookup: Timestamp
        /// Topics the node answered a lookup for (for `isFlushed`).
        var answered: Set<Topic> = []
        /// Lookups answered since the last join: the first ones come quickly (1, 2, 4 s …)
        /// so peers that join together find each other, then every `lookupInterval`.
        var lookupRounds = 0
        var pendingConnects: Set<PeerID> = []
    }

    struct TopicState {
        var announce: Bool
        var lookup: Bool
    }

    public let localPeer: PeerID
    public var configuration: Configuration
    public internal(set) var counters = Counters()
    let identity: Ed25519.KeyPair
    var nodes: [Endpoint: NodeState] = [:]
    var topics: [Topic: TopicState] = [:]
    var epoch: BeaconEpoch
    var paths: [PeerID: PeerPath] = [:]
    var virtuals: [Endpoint: PeerID] = [:]
    /// Real endpoints of confirmed direct paths and of punches under way → their peer.
    var realEndpoints: [Endpoint: PeerID] = [:]
    var nextVirtual: UInt32 = 1
    var outbox: [Datagram] = []
    var sightings: [PeerSighting] = []

    public init(identity: Ed25519.KeyPair, nodes: [Endpoint], configuration: Configuration = Configuration(),
                now: Timestamp, unixSeconds: UInt64) {
        self.identity = identity
        localPeer = PeerID(identity.publicKey)
        self.configuration = configuration
        epoch = BeaconEpoch(unixSeconds: unixSeconds)
        for node in nodes { self.nodes[node] = NodeState(nextRegister: now, nextLookup: now) }
    }

    // MARK: Outputs

    public mutating func takeDatagrams() -> [Datagram] {
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    public mutating func takeSightings() -> [PeerSighting] {
        defer { sightings.removeAll() }
        return sightings
    }

    /// Whether every node answered a lookup for `topic` since it was joined.
    public func isFlushed(_ topic: Topic) -> Bool { nodes.values.allSatisfy { $0.answered.contains(topic) } }

    /// What the node at `node` says our endpoint is.
    public func observedEndpoint(at node: Endpoint) -> Endpoint? { nodes[node]?.observed }

    public func isRegistered(at node: Endpoint) -> Bool { nodes[node]?.registered ?? false }

    // MARK: Topics

    public mutating func join(_ topic: Topic, announce: Bool, lookup: Bool, now: Timestamp) {
        topics[topic] = TopicState(announce: announce, lookup: lookup)
        for key in Array(nodes.keys) {
            nodes[key]?.answered.remove(topic)
            nodes[key]?.lookupRounds = 0
            nodes[key]?.nextRegister = now
            nodes[key]?.nextLookup = now
        }
        tick(now: now, unixSeconds: nil)
    }

    public mutating func leave(_ topic: Topic, now: Timestamp) {
        guard topics.removeValue(forKey: topic) != nil else { return }
        for key in Array(nodes.keys) { nodes[key]?.nextRegister = now }
        tick(now: now, unixSeconds: nil)
    }

    // MARK: Our own addresses

    /// Our own socket addresses changed (an interface came or went, a new lease): every node
    /// is sent a registration with them at once, replacing the one it holds (§11.3), rather
    /// than at the next refresh. The same addresses again change nothing.
    public mutating func setLocalEndpoints(_ endpoints: [Endpoint], now: Timestamp) {
        guard endpoints != configuration.localEndpoints else { return }
        configuration.localEndpoints = endpoints
        for key in Array(nodes.keys) { nodes[key]?.nextRegister = now }
        tick(now: now, unixSeconds: nil)
    }

    // MARK: Timers

    /// The earliest time `tick` has something to do.
    public var nextDeadline: Timestamp? {
        var next: Timestamp?
        func consider(_ t: Timestamp?) { if let t, next.map({ t < $0 }) ?? true { next = t } }
        for node in nodes.values {
            consider(node.nextRegister)
            if node.cookie != nil && topics.values.contains(where: \.lookup) { consider(node.nextLookup) }
        }
        for path in paths.values { consider(path.nextDeadline(configuration)) }
        return next
    }

    /// Sends what is due: registrations, lookups, punches; releases queues to the relay;
    /// gives up idle direct paths. `unixSeconds` (the wall clock) moves beacon epochs.
    public mutating func tick(now: Timestamp, unixSeconds: UInt64?) {
        if let unixSeconds {
            let current = BeaconEpoch(unixSeconds: unixSeconds)
            if current != epoch {
                epoch = current
                for key in Array(nodes.keys) { nodes[key]?.nextRegister = now; nodes[key]?.nextLookup = now }
            }
        }
        for key in Array(nodes.keys) {
            guard var node = nodes[key] else { continue }
            if now >= node.nextRegister {
                sendRegister(to: key, node: &node)
                node.nextRegister = now + (node.registered && node.cookie != nil ? configuration.refreshInterval : configuration.requestRetransmit)
            }
            if now >= node.nextLookup && node.cookie != nil {
                sendLookups(to: key, node: node)
                node.nextLookup = now + configuration.requestRetransmit
            }
            nodes[key] = node
        }
        tickPaths(now: now)
    }

    // MARK: Requests to nodes

    private var announcedBeacons: [Beacon] {
        var out: [Beacon] = []
        for (topic, state) in topics where state.announce {
            // Previous, current and next epoch: a looker whose clock is off by less than an
            // epoch still finds us (§11.3).
            out += Beacon.acceptable(topic: topic, at: epoch)
        }
        return Array(out.prefix(BootstrapWire.maxBeacons))
    }

    private mutating func sendRegister(to key: Endpoint, node: inout NodeState) {
        var register = BootstrapMessage.Register(
            cookie: node.cookie ?? [UInt8](repeating: 0, count: BootstrapWire.cookieLength), peer: localPeer,
            ttl: configuration.ttl, beacons: announcedBeacons, locals: Array(configuration.localEndpoints.prefix(BootstrapWire.maxLocals)),
            signature: [UInt8](repeating: 0, count: BootstrapWire.signatureLength))
        // Without a cookie the node answers with one and reads nothing else: no signature
        // yet, since it must cover the observed endpoint the cookie reply tells us.
        if node.cookie != nil, let observed = node.observed {
            register.signature = identity.sign(register.signedBytes(observed: observed))
        }
        outbox.append(Datagram(remote: key, payload: BootstrapMessage.register(register).encoded()))
    }

    private mutating func sendLookups(to key: Endpoint, node: NodeState) {
        guard let cookie = node.cookie else { return }
        let beacons = topics.filter { $0.value.lookup }.keys.map { Beacon(topic: $0, epoch: epoch) }
        var start = 0
        while start < beacons.count {
            let chunk = Array(beacons[start..<min(start + BootstrapWire.maxLookupBeacons, beacons.count)])
            outbox.append(Datagram(remote: key, payload: BootstrapMessage.lookup(cookie: cookie, beacons: chunk).encoded()))
            start += BootstrapWire.maxLookupBeacons
        }
    }

    mutating func sendConnect(_ peer: PeerID, via key: Endpoint) {
        guard let cookie = nodes[key]?.cookie else {
            nodes[key]?.pendingConnects.insert(peer)
            return
        }
        outbox.append(Datagram(remote: key, payload: BootstrapMessage.connect(cookie: cookie, target: peer).encoded()))
    }

    // MARK: Answers from nodes

    /// A bootstrap datagram from a configured node. Returns a datagram for the sessions
    /// when it was a relayed one.
    mutating func receiveFromNode(_ message: BootstrapMessage, node key: Endpoint, now: Timestamp) -> Datagram? {
        guard var node = nodes[key] else { return nil }
        switch message {
        case let .cookie(observed, cookie):
            counters.cookies += 1
            node.cookie = cookie
            noteObserved(observed, &node)
            // Resend at once what the cookie was missing for.
            node.nextRegister = now
            node.nextLookup = min(node.nextLookup, now)
            let waiting = node.pendingConnects
            node.pendingConnects = []
            nodes[key] = node
            for peer in waiting { sendConnect(peer, via: key) }
            tick(now: now, unixSeconds: nil)
            return nil
        case let .registered(observed, ttl, _):
            counters.registered += 1
            noteObserved(observed, &node)
            node.registered = true
            let refresh = min(configuration.refreshInterval, .seconds(Int64(max(ttl, 2)) / 2))
            node.nextRegister = now + refresh
        case let .lookupReply(observed, groups):
            counters.lookupReplies += 1
            noteObserved(observed, &node)
            node.nextLookup = now + min(configuration.lookupInterval, .seconds(1 << min(node.lookupRounds, 10)))
            node.lookupRounds += 1
            nodes[key] = node
            for group in groups {
                guard let topic = topics.first(where: { $0.value.lookup && Beacon.acceptable(topic: $0.key, at: epoch).contains(group.beacon) })?.key
                else { continue }
                nodes[key]?.answered.insert(topic)
                for record in group.records where record.peer != localPeer {
                    found(record, topic: topic, via: key, now: now)
                }
            }
            return nil
        case let .introduction(observed, record, token):
            counters.introductions += 1
            noteObserved(observed, &node)
            nodes[key] = node
            introduced(record, token: token, via: key, now: now)
            return nil
        case let .relayed(source, payload):
            counters.relayedReceived += 1
            nodes[key] = node
            return relayedArrival(from: source, payload: payload, via: key, now: now)
        case let .refused(observed, reason, request, subject):
            counters.refusals[reason, default: 0] += 1
            noteObserved(observed, &node)
            nodes[key] = node
            refused(reason, request: request, subject: subject, node: key, now: now)
            return nil
        case .register, .lookup, .connect, .relay, .punch:
            counters.malformed += 1
        }
        nodes[key] = node
        return nil
    }

    /// Our public endpoint moved (a NAT rebinding): the registration names the old one.
    private func noteObserved(_ observed: Endpoint, _ node: inout NodeState) {
        if node.observed != observed {
            node.observed = observed
            node.registered = false
            node.nextRegister = .zero
        }
    }

    private mutating func refused(_ reason: RefusalReason, request: UInt8, subject: PeerID?, node key: Endpoint, now: Timestamp) {
        switch reason {
        case .notRegistered, .badSignature:
            // The node forgot us (a restart) or our endpoint changed: register again now.
            nodes[key]?.registered = false
            nodes[key]?.nextRegister = now
            tick(now: now, unixSeconds: nil)
        case .notIntroduced:
            if let peer = subject { requestIntroduction(peer, now: now, force: true) }
        case .unknownPeer:
            // The peer is not (yet again) registered there; its own refresh will bring it
            // back, and the next lookup or send asks again.
            if let peer = subject { paths[peer]?.lastConnect = now }
        case .registrationsFull, .rateLimited, .relayLimit:
            // Nothing to do but wait: the counters tell the operator.
            break
        }
    }
}
