import Sodium
import Swarm

/// How one client reaches one remote peer found through bootstrap nodes (PROTOCOL.md
/// §11.5, §11.8): its virtual endpoint, the node that relays for it, the punch under way,
/// and the direct path once confirmed.
struct PeerPath {
    let peer: PeerID
    let virtual: Endpoint
    /// The node that last told us about the peer: introductions and relay go through it.
    var node: Endpoint
    var record: BootstrapMessage.PeerRecord?
    /// The two latest introduction tokens: when both peers ask for an introduction at once,
    /// each side may punch with either.
    var tokens: [[UInt8]] = []
    var punch: Punch?
    var direct: Direct?
    /// Before this, datagrams wait for a direct path; from then on they may take the relay.
    var relayFrom: Timestamp
    var queue: [[UInt8]] = []
    var lastConnect: Timestamp?
    /// When the last punching round ended without a direct path.
    var punchFailed: Timestamp?

    /// Whether a new introduction (and punching round) is worth asking for.
    func wantsIntroduction(now: Timestamp, _ c: BootstrapClientMachine.Configuration) -> Bool {
        guard direct == nil, punch == nil else { return false }
        guard let failed = punchFailed else { return true }
        return now - failed >= c.punchRetryAfterFailure
    }

    struct Punch {
        var candidates: [Endpoint]
        var started: Timestamp
        var next: Timestamp
    }

    struct Direct {
        var endpoint: Endpoint
        /// One of the peer's own socket addresses (same LAN or NAT) rather than its public one.
        var isLocal: Bool
        var lastHeard: Timestamp
    }

    func nextDeadline(_ c: BootstrapClientMachine.Configuration) -> Timestamp? {
        var next: Timestamp?
        func consider(_ t: Timestamp?) { if let t, next.map({ t < $0 }) ?? true { next = t } }
        consider(punch?.next)
        if !queue.isEmpty { consider(relayFrom) }
        if let direct { consider(direct.lastHeard + c.directIdleLimit) }
        return next
    }

    var kind: PathKind {
        if let direct { return direct.isLocal ? .lan(direct.endpoint) : .punched(direct.endpoint) }
        return .relay(node: node)
    }
}

extension BootstrapClientMachine {
    // MARK: Routing the sessions' datagrams

    /// A datagram from the sessions: to a real endpoint it goes as is; to a virtual one,
    /// over the peer's best path, or into its queue while the path is pending.
    public mutating func send(_ datagram: Datagram, now: Timestamp) {
        guard VirtualEndpoint.contains(datagram.remote) else {
            outbox.append(datagram)
            return
        }
        guard let peer = virtuals[datagram.remote], var path = paths[peer] else {
            counters.queueDropped += 1
            return
        }
        if let direct = path.direct {
            outbox.append(Datagram(remote: direct.endpoint, payload: datagram.payload))
        } else if now >= path.relayFrom {
            counters.relayedSent += 1
            outbox.append(Datagram(remote: path.node, payload: BootstrapMessage.relay(target: peer, payload: datagram.payload).encoded()))
        } else if path.queue.count < configuration.maxQueued {
            path.queue.append(datagram.payload)
        } else {
            counters.queueDropped += 1
        }
        paths[peer] = path
        if path.wantsIntroduction(now: now, configuration) { requestIntroduction(peer, now: now, force: false) }
    }

    /// A datagram from the network. Returns what the sessions should see (possibly with a
    /// virtual source), or nil when it was the bootstrap protocol's own.
    public mutating func receive(_ datagram: Datagram, now: Timestamp) -> Datagram? {
        if BootstrapWire.isBootstrap(datagram.payload) {
            guard let message = BootstrapMessage(decoding: datagram.payload) else {
                counters.malformed += 1
                return nil
            }
            if case let .punch(token, sender, ack) = message {
                receivePunch(token: token, sender: sender, ack: ack, from: datagram.remote, now: now)
                return nil
            }
            guard nodes[datagram.remote] != nil else {
                counters.malformed += 1
                return nil
            }
            return receiveFromNode(message, node: datagram.remote, now: now)
        }
        guard let peer = realEndpoints[datagram.remote], var path = paths[peer] else { return datagram }
        // From the peer's confirmed direct endpoint, or from one it is punching from: in
        // both cases the peer's own address (as a node or the peer itself told us), so
        // sending there can only reach the peer.
        if path.direct?.endpoint != datagram.remote { confirm(&path, at: datagram.remote, now: now) }
        path.direct?.lastHeard = now
        paths[peer] = path
        return Datagram(remote: path.virtual, payload: datagram.payload)
    }

    /// The path behind an endpoint a session uses.
    public func path(for endpoint: Endpoint) -> PathKind {
        guard VirtualEndpoint.contains(endpoint) else { return .direct }
        guard let peer = virtuals[endpoint], let path = paths[peer] else { return .pending }
        if path.direct == nil && !path.queue.isEmpty { return .pending }
        return path.kind
    }

    /// The path to `peer`, if bootstrap nodes told us about it.
    public func path(to peer: PeerID) -> PathKind? { paths[peer]?.kind }

    // MARK: Peers found, introduced, relayed

    /// The path for `peer`, created with a fresh virtual endpoint if new (nil when the
    /// table is full).
    mutating func ensurePath(_ peer: PeerID, node: Endpoint, now: Timestamp) -> PeerPath? {
        if let path = paths[peer] { return path }
        guard paths.count < configuration.maxPeers else { return nil }
        let virtual = VirtualEndpoint.make(nextVirtual)
        nextVirtual &+= 1
        let path = PeerPath(peer: peer, virtual: virtual, node: node, relayFrom: now + configuration.relayAfter)
        paths[peer] = path
        virtuals[virtual] = peer
        return path
    }

    mutating func found(_ record: BootstrapMessage.PeerRecord, topic: Topic, via node: Endpoint, now: Timestamp) {
        guard var path = ensurePath(record.peer, node: node, now: now) else { return }
        path.record = record
        path.node = node
        paths[record.peer] = path
        sightings.append(PeerSighting(peer: record.peer, topic: topic, endpoint: path.virtual))
        if path.wantsIntroduction(now: now, configuration) { requestIntroduction(record.peer, now: now, force: false) }
    }

    /// Asks the peer's node for an introduction, at most once per `introductionInterval`
    /// unless `force`d (the node said it forgot the pair).
    mutating func requestIntroduction(_ peer: PeerID, now: Timestamp, force: Bool) {
        guard var path = paths[peer] else { return }
        // Until a first introduction arrives, ask again soon (a lost request or answer);
        // after one, only every `introductionInterval`.
        let interval = path.tokens.isEmpty ? configuration.requestRetransmit * 2 : configuration.introductionInterval
        if !force, let last = path.lastConnect, now - last < interval { return }
        if force, let last = path.lastConnect, now - last < configuration.requestRetransmit { return }
        path.lastConnect = now
        paths[peer] = path
        sendConnect(peer, via: path.node)
    }

    mutating func introduced(_ record: BootstrapMessage.PeerRecord, token: [UInt8], via node: Endpoint, now: Timestamp) {
        guard record.peer != localPeer, var path = ensurePath(record.peer, node: node, now: now) else { return }
        path.record = record
        path.node = node
        path.lastConnect = now
        path.tokens = Array((path.tokens + [token]).suffix(2))
        // The peer's own addresses are worth trying only behind the same public address:
        // elsewhere they are someone else's private network.
        var candidates = [record.endpoint]
        if nodes[node]?.observed?.address == record.endpoint.address {
            candidates = record.locals + candidates
        }
        if let old = path.punch { for c in old.candidates where realEndpoints[c] == record.peer && path.direct?.endpoint != c { realEndpoints[c] = nil } }
        for c in candidates where realEndpoints[c] == nil { realEndpoints[c] = record.peer }
        path.punch = PeerPath.Punch(candidates: candidates, started: now, next: now + configuration.firstPunchAfter)
        paths[record.peer] = path
        tickPaths(now: now)
    }

    mutating func relayedArrival(from peer: PeerID, payload: [UInt8], via node: Endpoint, now: Timestamp) -> Datagram? {
        guard var path = ensurePath(peer, node: node, now: now) else { return nil }
        // The peer already relays to us: answering through the relay costs no waiting.
        if path.relayFrom > now { path.relayFrom = now }
        if path.direct == nil { path.node = node }
        paths[peer] = path
        flushQueue(peer, now: now)
        return Datagram(remote: path.virtual, payload: payload)
    }

    // MARK: Punching (§11.5)

    mutating func receivePunch(token: [UInt8], sender: PeerID, ack: Bool, from endpoint: Endpoint, now: Timestamp) {
        counters.punchesReceived += 1
        guard var path = paths[sender], path.tokens.contains(where: { $0.count == token.count && constantTimeEquals($0, token) }) else {
            counters.badPunches += 1
            return
        }
        if !ack {
            counters.punchesSent += 1
            outbox.append(Datagram(remote: endpoint, payload: BootstrapMessage.punch(token: token, sender: localPeer, ack: true).encoded()))
        }
        confirm(&path, at: endpoint, now: now)
        paths[sender] = path
        flushQueue(sender, now: now)
    }

    /// A datagram from the peer arrived at `endpoint`: take it as the direct path if it is
    /// better than the one we have (its own address before its public one).
    mutating func confirm(_ path: inout PeerPath, at endpoint: Endpoint, now: Timestamp) {
        let isLocal = path.record?.locals.contains(endpoint) ?? false
        if let direct = path.direct, direct.endpoint != endpoint, direct.isLocal || !isLocal {
            return
        }
        if path.direct?.endpoint != endpoint {
            if let old = path.direct?.endpoint, realEndpoints[old] == path.peer { realEndpoints[old] = nil }
            counters.directConfirmed += 1
        }
        path.direct = PeerPath.Direct(endpoint: endpoint, isLocal: isLocal, lastHeard: now)
        realEndpoints[endpoint] = path.peer
        // A LAN path ends the punching; a public one keeps trying the LAN candidates.
        if isLocal || path.punch?.candidates.allSatisfy({ $0 == endpoint }) == true { path.punch = nil }
    }

    mutating func flushQueue(_ peer: PeerID, now: Timestamp) {
        guard var path = paths[peer], !path.queue.isEmpty, path.direct != nil || now >= path.relayFrom else { return }
        let queued = path.queue
        path.queue = []
        paths[peer] = path
        for payload in queued { send(Datagram(remote: path.virtual, payload: payload), now: now) }
    }

    mutating func tickPaths(now: Timestamp) {
        for peer in Array(paths.keys) {
            guard var path = paths[peer] else { continue }
            if var punch = path.punch, now >= punch.next, let token = path.tokens.last {
                if now - punch.started >= configuration.punchDuration {
                    path.punch = nil
                    if path.direct == nil { path.punchFailed = now }
                    for c in punch.candidates where realEndpoints[c] == peer && path.direct?.endpoint != c { realEndpoints[c] = nil }
                } else {
                    let punchMessage = BootstrapMessage.punch(token: token, sender: localPeer, ack: false).encoded()
                    for c in punch.candidates where c != path.direct?.endpoint {
                        counters.punchesSent += 1
                        outbox.append(Datagram(remote: c, payload: punchMessage))
                    }
                    let fast = now - punch.started < configuration.punchFastPhase
                    punch.next = now + (fast ? configuration.punchFastInterval : configuration.punchSlowInterval)
                    path.punch = punch
                }
            }
            if let direct = path.direct, now - direct.lastHeard >= configuration.directIdleLimit {
                // Nothing came back for a while: the hole closed or the peer moved. Back to
                // the relay, and ask for a fresh introduction when the sessions next send.
                counters.directLost += 1
                if realEndpoints[direct.endpoint] == peer { realEndpoints[direct.endpoint] = nil }
                path.direct = nil
                path.relayFrom = min(path.relayFrom, now)
                path.lastConnect = nil
            }
            paths[peer] = path
            flushQueue(peer, now: now)
        }
    }
}

