import Bootstrap
import BootstrapNIO
import Foundation
import Sodium
import Swarm
import SwarmNIO

/// The vault's IO: a UDP socket for sessions, LAN discovery on chosen interfaces, and the
/// swarm over both. `run()` until `stop()`.
public final class VaultNetwork: Sendable {
    /// Where the network runs. The default is what a person on a LAN wants: every
    /// non-loopback, multicast-capable interface that is up and has an IPv4 address (with
    /// IPv6 discovery too where it has a link-local one), followed as interfaces come and go
    /// (`LANDiscovery.Configuration.lanDefault`): with none yet the network starts and
    /// waits. Tests and the demo pass `lo`, or run in network namespaces of their own
    /// (MACHINE.md's network rule). A named interface without an address yet is no error:
    /// discovery there starts when it gets one (`LANDiscovery`).
    public struct Options: Sendable {
        /// Discovery interfaces: `lo`, a name (`eth0`) or an IPv4 address; nil = the LAN
        /// default, followed.
        public var interfaces: [String]?
        /// IPv6 discovery and sessions on the named interfaces that have, or get, an IPv6
        /// link-local address (DESIGN decision 6), beside IPv4. `lo` and interfaces given by
        /// an IPv4 address are IPv4 only.
        public var ipv6 = true
        /// The session port (0: any free port).
        public var port: UInt16 = 0
        /// The LAN discovery port (tests use their own so they never meet other processes).
        public var discoveryPort: UInt16 = DiscoveryGroup.port
        /// Bootstrap nodes, used side by side with LAN discovery (issue 7): they find peers
        /// beyond the LAN, punch holes through NATs and relay when nothing else works.
        public var bootstrapNodes: [Endpoint] = []
        public var swarm = SwarmConfiguration()

        public init(interfaces: [String]? = nil, port: UInt16 = 0, discoveryPort: UInt16? = nil, bootstrapNodes: [Endpoint] = []) {
            self.interfaces = interfaces
            self.port = port
            self.bootstrapNodes = bootstrapNodes
            if let discoveryPort { self.discoveryPort = discoveryPort }
            // A task has few members, worth finding again quickly after a restart.
            swarm.retry = RetryPolicy(delays: [.milliseconds(300), .seconds(1), .seconds(3), .seconds(10)], jitter: 0.25)
        }
    }

    public let swarm: Swarm
    /// The swarm's clock (session times are relative to it).
    public let clock: SystemSwarmClock
    /// The discovery interfaces as they were given (`--interface`); empty for the LAN
    /// default, whose interfaces change (`interfaces`).
    public let interfaceNames: [String]

    /// Each discovery interface as given — or, on the LAN default, each of its interfaces
    /// now, `DiscoveryInterface.anyLANWaiting` while it has none — and how discovery runs
    /// there now: the families it runs on, those it waits for (no address yet), why IPv6
    /// failed.
    public var interfaces: [DiscoveryInterface] {
        get async {
            var shown = await discovery.interfaces
            for (i, name) in interfaceNames.enumerated() where shown.indices.contains(i) { shown[i].name = name }
            return shown
        }
    }

    public var localEndpoint: Endpoint { swarm.transport.localEndpoint }
    private let transport: UDPTransport
    private let discovery: LANDiscovery
    /// The bootstrap client, when nodes were given: it wraps the UDP transport and chooses
    /// each peer's path (LAN, punched, relay) under the sessions.
    public let bootstrap: BootstrapClient?

    private init(swarm: Swarm, clock: SystemSwarmClock, interfaceNames: [String], transport: UDPTransport, discovery: LANDiscovery,
                 bootstrap: BootstrapClient?) {
        self.swarm = swarm
        self.clock = clock
        self.interfaceNames = interfaceNames
        self.transport = transport
        self.discovery = discovery
        self.bootstrap = bootstrap
    }

    /// What a session to `endpoint` runs over: `direct ADDR` for a peer found on the LAN;
    /// through a bootstrap node `lan ADDR`, `punched ADDR` or `relay via NODE`.
    public func describePath(_ endpoint: Endpoint) -> String {
        guard let bootstrap, VirtualEndpoint.contains(endpoint) else { return "direct \(endpoint)" }
        return bootstrap.path(for: endpoint).description
    }

    /// Datagrams dropped or refused below the sessions, for devtools: the socket's and LAN
    /// discovery's counters that are not zero.
    public func dropCounters() async -> [String: UInt64] {
        let t = transport.counters
        let d = await discovery.counters
        var bootstrapDrops: [String: Int] = [:]
        if let b = bootstrap?.counters {
            bootstrapDrops = ["bootstrap.malformed": b.malformed, "bootstrap.badPunches": b.badPunches,
                              "bootstrap.queueDropped": b.queueDropped]
            for (reason, count) in b.refusals { bootstrapDrops["bootstrap.refused.\(reason)"] = count }
        }
        let m = d.machine
        let all: [String: Int] = [
            "udp.sendDropped": t.sendDropped, "udp.sendErrors": t.sendErrors, "udp.receiveDropped": t.receiveDropped,
            "udp.socketRestarts": t.socketRestarts, "discovery.socketRestarts": d.socketRestarts,
            "discovery.socketReopenFailures": d.socketReopenFailures, "discovery.socketsOpenedLate": d.socketsOpenedLate,
            "discovery.badMagic": m.badMagic, "discovery.unsupportedVersion": m.unsupportedVersion,
            "discovery.malformed": m.malformed, "discovery.wrongSocket": m.wrongSocket,
            "discovery.rateLimited": m.rateLimited, "discovery.unsolicitedAnswers": m.unsolicitedAnswers,
            "discovery.sendErrors": d.sendErrors, "discovery.sightingsDropped": d.sightingsDropped,
        ].merging(bootstrapDrops) { a, _ in a }
        return all.filter { $0.value > 0 }.mapValues { UInt64($0) }
    }

    /// The discovery interfaces given by name or address (`Options.interfaces`), looked up
    /// now (SwarmNIO's one lookup): a name no interface has, or an address none holds, is an
    /// error — a typo, most likely; an interface that exists without an address yet is not:
    /// discovery waits for it. `start` does this first; a command can do it before it
    /// opens, or makes, a vault for the network.
    @discardableResult
    public static func resolveInterfaces(_ names: [String]) throws(VaultError) -> ([InterfaceSpec], [InterfaceSpec.Resolved]) {
        var specs: [InterfaceSpec] = []
        var resolved: [InterfaceSpec.Resolved] = []
        for name in names {
            let spec = InterfaceSpec(parsing: name)
            do { resolved.append(try spec.resolve()) } catch {
                throw VaultError(.network, (error as? SwarmNIOError)?.detail ?? "\(error)")
            }
            specs.append(spec)
        }
        return (specs, resolved)
    }

    public static func start(identity: Identity, options: Options) async throws(VaultError) -> VaultNetwork {
        let names = options.interfaces ?? []
        let follows = options.interfaces == nil
        guard follows || !names.isEmpty else { throw VaultError(.network, "no discovery interface given") }
        let (specs, resolved) = try resolveInterfaces(names)
        // IPv6 wherever discovery may run it, now or later — a named interface (not `lo`)
        // whose link-local address appears, or whose IPv6 is switched on, after start; on the
        // LAN default, whatever interface comes: one dual-stack socket on every address of
        // both families, so the session port discovery announces is reachable on both.
        // Discovery runs IPv6 exactly then (never announcing a port nothing serves over IPv6).
        // Otherwise one interface given by its address: bind the session socket there
        // (loopback stays loopback); a named one or several: every address, so each LAN
        // reaches us and a new address (DHCP) does not strand the socket.
        let ipv6 = options.ipv6 && NetworkInterface.ipv6Supported && (follows || resolved.contains(where: \.mayRunIPv6))
        let bind: Endpoint.Address
        if ipv6 {
            bind = Endpoint.ipv6Unspecified
        } else if resolved.count == 1, specs[0].isAddress, let only = resolved[0].ipv4 {
            bind = only
        } else {
            bind = .v4(0, 0, 0, 0)
        }
        do {
            let transport = try await UDPTransport.bind(Endpoint(address: bind, port: options.port))
            let peer = PeerID(identity.keyPair.publicKey)
            let discovery: LANDiscovery
            do {
                var configuration = follows ? LANDiscovery.Configuration.lanDefault(port: options.discoveryPort)
                    : LANDiscovery.Configuration(interfaces: specs, port: options.discoveryPort)
                configuration.ipv6 = ipv6
                discovery = try await LANDiscovery.start(peer: peer, sessionPort: transport.localEndpoint.port, configuration: configuration)
            } catch {
                await transport.close()
                throw error
            }
            let clock = SystemSwarmClock()
            var bootstrap: BootstrapClient?
            if !options.bootstrapNodes.isEmpty {
                // Peers behind our NAT are offered the IPv4 addresses of the interfaces
                // discovery runs on (not every interface of the host, which a wildcard socket
                // would suggest), as they are now and whenever they change.
                let port = transport.localEndpoint.port
                let follow = transport.localEndpoint.isUnspecified
                @Sendable func offered(_ addresses: [Endpoint.Address]) -> [Endpoint] {
                    addresses.map { Endpoint(address: $0, port: port) }.filter { !$0.isLoopback }
                }
                var configuration = BootstrapClientMachine.Configuration()
                configuration.localEndpoints = follow ? offered(await discovery.ipv4Addresses) : [transport.localEndpoint]
                let client = BootstrapClient.start(identity: identity.keyPair, transport: transport, nodes: options.bootstrapNodes,
                                                   configuration: configuration)
                if follow { await discovery.observeIPv4Addresses { client.setLocalEndpoints(offered($0)) } }
                bootstrap = client
            }
            let sources: [any DiscoverySource] = [discovery] + (bootstrap.map { [$0] } ?? [])
            let swarm = try Swarm(identity: identity.keyPair, transport: bootstrap ?? transport, discovery: sources,
                                  configuration: options.swarm, clock: clock)
            return VaultNetwork(swarm: swarm, clock: clock, interfaceNames: names, transport: transport, discovery: discovery,
                                bootstrap: bootstrap)
        } catch let error as VaultError {
            throw error
        } catch {
            let on = follows ? "the LAN's interfaces" : names.joined(separator: ",")
            throw VaultError(.network, "cannot start the network on \(on): \((error as? SwarmNIOError)?.detail ?? "\(error)")")
        }
    }

    /// Runs until `stop()`.
    public func run() async throws { try await swarm.run() }

    /// Closes every session (telling the peers) and the sockets.
    public func stop() async { await swarm.shutdown() }
}
