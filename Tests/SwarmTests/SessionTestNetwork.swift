import Sodium
import Testing
@testable import Swarm

/// Drives several `SessionManager`s against each other on a fake clock: datagrams go from
/// one node's outbox to the node at the destination endpoint, with optional loss and
/// tampering, and time only moves when the test says so.
struct SessionTestNetwork {
    struct Node {
        var manager: SessionManager
        var endpoint: Endpoint
        var events: [SessionEvent] = []
        var isUp = true
    }

    var nodes: [Node] = []
    var now = Timestamp.seconds(1)
    /// Return false to lose a datagram (sender index, datagram).
    var filter: (Int, Datagram) -> Bool = { _, _ in true }
    /// Every datagram delivered, for replay tests: (to node, from endpoint, bytes).
    var delivered: [(to: Int, from: Endpoint, bytes: [UInt8])] = []

    static func identity(_ n: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: n, count: 32)))
    }

    @discardableResult
    mutating func addNode(seed: UInt8, configuration: SessionConfiguration = SessionTestNetwork.fastConfiguration,
                          endpoint: Endpoint? = nil) -> Int {
        let manager = try! SessionManager(identity: Self.identity(seed), configuration: configuration,
                                          random: SeededRandom(seed: UInt64(seed) &* 7919 &+ UInt64(nodes.count)))
        nodes.append(Node(manager: manager, endpoint: endpoint ?? .v4(10, 0, 0, UInt8(nodes.count + 1), port: 4000)))
        return nodes.count - 1
    }

    static var fastConfiguration: SessionConfiguration {
        var c = SessionConfiguration()
        c.handshakeRetransmitBase = .milliseconds(100)
        c.handshakeRetransmitMax = .milliseconds(800)
        c.keepaliveInterval = .milliseconds(500)
        c.deadPeerTimeout = .seconds(3)
        return c
    }

    func peer(_ i: Int) -> PeerID { nodes[i].manager.localPeer }

    /// Restart node `i` as a fresh manager with the same identity (a process restart).
    mutating func restart(_ i: Int, seed: UInt8, configuration: SessionConfiguration = SessionTestNetwork.fastConfiguration) {
        nodes[i].manager = try! SessionManager(identity: Self.identity(seed), configuration: configuration,
                                               random: SeededRandom(seed: UInt64(seed) &+ 99))
        nodes[i].events = []
        nodes[i].isUp = true
    }

    /// Delivers until no node has anything to send.
    mutating func settle(maxRounds: Int = 100) {
        for _ in 0..<maxRounds {
            var moved = false
            for i in nodes.indices {
                for event in nodes[i].manager.takeEvents() { nodes[i].events.append(event) }
                let out = nodes[i].manager.takeDatagrams()
                for d in out {
                    moved = true
                    guard filter(i, d), let j = nodes.firstIndex(where: { $0.endpoint == d.remote }), nodes[j].isUp else { continue }
                    delivered.append((j, nodes[i].endpoint, d.payload))
                    nodes[j].manager.receive(Datagram(remote: nodes[i].endpoint, payload: d.payload), now: now)
                }
            }
            if !moved { break }
        }
        for i in nodes.indices { for event in nodes[i].manager.takeEvents() { nodes[i].events.append(event) } }
        // Invariant: the timer cache names exactly the sessions with a pending timer.
        for node in nodes {
            let m = node.manager
            let expected = Set(m.sessions.compactMap { peer, s in m.deadline(of: s) == nil ? nil : peer })
            if Set(m.deadlines.keys) != expected { Issue.record("deadline cache out of step with the session table") }
            for (peer, t) in m.deadlines where m.sessions[peer].flatMap({ m.deadline(of: $0) }) != t {
                Issue.record("stale deadline for \(peer.short)")
            }
        }
    }

    /// Moves time forward in steps of at most `step`, running timers and delivering.
    mutating func advance(_ duration: Duration, step: Duration = .milliseconds(10)) {
        let end = now + duration
        settle()
        while now < end {
            now = min(now + step, end)
            for i in nodes.indices where nodes[i].isUp { nodes[i].manager.tick(now: now) }
            settle()
        }
    }

    mutating func inject(_ bytes: [UInt8], to i: Int, from endpoint: Endpoint) {
        nodes[i].manager.receive(Datagram(remote: endpoint, payload: bytes), now: now)
        settle()
    }

    func established(_ i: Int) -> [PeerID] {
        nodes[i].events.compactMap { if case let .established(p, _, _, _, _) = $0 { p } else { nil } }
    }

    func lost(_ i: Int) -> [(PeerID, CloseReason)] {
        nodes[i].events.compactMap { if case let .lost(p, _, r) = $0 { (p, r) } else { nil } }
    }

    func messages(_ i: Int) -> [[UInt8]] {
        nodes[i].events.compactMap { if case let .channelMessage(_, _, m) = $0 { m } else { nil } }
    }
}
