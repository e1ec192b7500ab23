@testable import Bootstrap
import Sodium
import Swarm

/// A NAT router in memory, with the two behaviours of the namespace bed (MACHINE.md):
/// *cone* — one public port per inside endpoint, inbound allowed only from remotes the
/// inside host sent to (Linux conntrack with an input chain dropping the unsolicited);
/// *symmetric* — a new public port per destination (`masquerade random`).
struct SimulatedNAT {
    enum Mode { case open, cone, symmetric }

    struct Flow: Hashable { var port: UInt16; var remote: Endpoint }
    struct SymmetricKey: Hashable { var inside: Endpoint; var remote: Endpoint }

    let mode: Mode
    let publicAddress: Endpoint.Address
    var conePorts: [Endpoint: UInt16] = [:]
    var symmetricPorts: [SymmetricKey: UInt16] = [:]
    var inside: [UInt16: Endpoint] = [:]
    var allowed: Set<Flow> = []
    var nextPort: UInt16 = 40_000

    init(_ mode: Mode, publicAddress: Endpoint.Address) {
        self.mode = mode
        self.publicAddress = publicAddress
    }

    mutating func outbound(from host: Endpoint, to remote: Endpoint) -> Endpoint {
        let port: UInt16
        switch mode {
        case .open: return host
        case .cone:
            if let p = conePorts[host] { port = p } else { port = nextPort; nextPort += 1; conePorts[host] = port }
        case .symmetric:
            let key = SymmetricKey(inside: host, remote: remote)
            if let p = symmetricPorts[key] { port = p } else { port = nextPort; nextPort += 7; symmetricPorts[key] = port }
        }
        inside[port] = host
        allowed.insert(Flow(port: port, remote: remote))
        return Endpoint(address: publicAddress, port: port)
    }

    func inbound(to port: UInt16, from remote: Endpoint) -> Endpoint? {
        switch mode {
        case .open: return Endpoint(address: publicAddress, port: port)
        case .cone, .symmetric:
            guard allowed.contains(Flow(port: port, remote: remote)) else { return nil }
            return inside[port]
        }
    }
}

/// A node and two clients behind NATs, advanced in 10 ms steps of virtual time.
struct NATWorld {
    struct Host {
        var machine: BootstrapClientMachine
        var nat: SimulatedNAT
        let address: Endpoint
        var delivered: [Datagram] = []
        var sightings: [PeerSighting] = []
    }

    var node: BootstrapNode
    let nodeEndpoint = Endpoint.v4(203, 0, 113, 1, port: 7000)
    var hosts: [Host]
    var now = Timestamp.zero
    let unix: UInt64 = 1_800_000_000
    var nodeUp = true
    var nodeSaw: [[UInt8]] = []

    static func keys(_ n: UInt8) -> Ed25519.KeyPair { try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: n, count: 32))) }

    init(_ modes: [SimulatedNAT.Mode], configuration: BootstrapClientMachine.Configuration = .init()) {
        node = BootstrapNode(now: .zero)
        hosts = []
        for (i, mode) in modes.enumerated() {
            let address = Endpoint.v4(10, UInt8(i), 0, 2, port: 5000)
            var c = configuration
            c.localEndpoints = [address]
            let machine = BootstrapClientMachine(identity: Self.keys(UInt8(i + 1)), nodes: [nodeEndpoint], configuration: c,
                                                 now: .zero, unixSeconds: unix)
            hosts.append(Host(machine: machine, nat: SimulatedNAT(mode, publicAddress: .v4(198, 51, 100, UInt8(i + 1))), address: address))
        }
    }

    func peer(_ i: Int) -> PeerID { hosts[i].machine.localPeer }

    mutating func join(_ topic: Topic) {
        for i in hosts.indices { hosts[i].machine.join(topic, announce: true, lookup: true, now: now) }
    }

    /// Moves every datagram in flight, repeatedly, until nothing is left (no delay).
    mutating func deliver() {
        var flying: [(from: Endpoint, datagram: Datagram)] = []
        for _ in 0..<50 {
            for i in hosts.indices {
                for d in hosts[i].machine.takeDatagrams() {
                    let source = hosts[i].nat.outbound(from: hosts[i].address, to: d.remote)
                    flying.append((source, d))
                }
            }
            if flying.isEmpty { return }
            let batch = flying
            flying = []
            for (source, d) in batch {
                if d.remote == nodeEndpoint {
                    guard nodeUp else { continue }
                    nodeSaw.append(d.payload)
                    node.receive(Datagram(remote: source, payload: d.payload), now: now)
                    for out in node.takeDatagrams() { flying.append((nodeEndpoint, out)) }
                    continue
                }
                guard let i = hosts.firstIndex(where: { $0.nat.publicAddress == d.remote.address }),
                      let inside = hosts[i].nat.inbound(to: d.remote.port, from: source), inside == hosts[i].address else { continue }
                if let up = hosts[i].machine.receive(Datagram(remote: source, payload: d.payload), now: now) {
                    hosts[i].delivered.append(up)
                }
                hosts[i].sightings += hosts[i].machine.takeSightings()
            }
        }
    }

    mutating func run(for duration: Duration) {
        let end = now + duration
        while now < end {
            now = now + .milliseconds(10)
            node.tick(now: now)
            for i in hosts.indices { hosts[i].machine.tick(now: now, unixSeconds: unix) }
            deliver()
        }
    }

    /// Host `i` sends a session datagram to the virtual endpoint of host `j`.
    mutating func send(_ payload: [UInt8], from i: Int, to j: Int) -> Bool {
        guard let virtual = hosts[i].sightings.last(where: { $0.peer == peer(j) })?.endpoint
            ?? hosts[i].delivered.last(where: { hosts[i].machine.virtuals[$0.remote] == peer(j) })?.remote else { return false }
        hosts[i].machine.send(Datagram(remote: virtual, payload: payload), now: now)
        deliver()
        return true
    }
}
