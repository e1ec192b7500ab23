import Bootstrap
import BootstrapNIO
import Foundation
import Sodium
import Swarm
import SwarmNIO

#if canImport(Glibc)
import Glibc
#endif

/// The vault's IO: a UDP socket for sessions, LAN discovery on chosen interfaces, and the
/// swarm over both. `run()` until `stop()`.
public final class VaultNetwork: Sendable {
    /// Where the network runs. The default is what a person on a LAN wants: every
    /// non-loopback, multicast-capable IPv4 interface that is up. Tests and the demo always
    /// pass `lo` (MACHINE.md's network rule).
    public struct Options: Sendable {
        /// Discovery interfaces: `lo`, a name (`eth0`) or an IPv4 address; nil = the LAN default.
        public var interfaces: [String]?
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
    public let interfaces: [String]
    public var localEndpoint: Endpoint { swarm.transport.localEndpoint }
    private let transport: UDPTransport
    private let discovery: LANDiscovery
    /// The bootstrap client, when nodes were given: it wraps the UDP transport and chooses
    /// each peer's path (LAN, punched, relay) under the sessions.
    public let bootstrap: BootstrapClient?

    private init(swarm: Swarm, clock: SystemSwarmClock, interfaces: [String], transport: UDPTransport, discovery: LANDiscovery,
                 bootstrap: BootstrapClient?) {
        self.swarm = swarm
        self.clock = clock
        self.interfaces = interfaces
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
            "udp.socketRestarts": t.socketRestarts,
            "discovery.badMagic": m.badMagic, "discovery.unsupportedVersion": m.unsupportedVersion,
            "discovery.malformed": m.malformed, "discovery.wrongSocket": m.wrongSocket,
            "discovery.rateLimited": m.rateLimited, "discovery.unsolicitedAnswers": m.unsolicitedAnswers,
            "discovery.sendErrors": d.sendErrors, "discovery.sightingsDropped": d.sightingsDropped,
        ].merging(bootstrapDrops) { a, _ in a }
        return all.filter { $0.value > 0 }.mapValues { UInt64($0) }
    }

    public static func start(identity: Identity, options: Options) async throws(VaultError) -> VaultNetwork {
        let names: [String]
        if let given = options.interfaces { names = given } else { names = try defaultInterfaces() }
        guard !names.isEmpty else { throw VaultError(.network, "no discovery interface given") }
        var specs: [InterfaceSpec] = []
        var addresses: [Endpoint.Address] = []
        for name in names {
            let (spec, address) = try resolve(name)
            specs.append(spec)
            addresses.append(address)
        }
        // One interface: bind the session socket there (loopback stays loopback). Several:
        // every address, so each LAN reaches us.
        let bind = addresses.count == 1 ? addresses[0] : .v4(0, 0, 0, 0)
        do {
            let transport = try await UDPTransport.bind(Endpoint(address: bind, port: options.port))
            let peer = PeerID(identity.keyPair.publicKey)
            let discovery: LANDiscovery
            do {
                discovery = try await LANDiscovery.start(
                    peer: peer, sessionPort: transport.localEndpoint.port,
                    configuration: LANDiscovery.Configuration(interfaces: specs, port: options.discoveryPort))
            } catch {
                await transport.close()
                throw error
            }
            let clock = SystemSwarmClock()
            var bootstrap: BootstrapClient?
            if !options.bootstrapNodes.isEmpty {
                bootstrap = BootstrapClient.start(identity: identity.keyPair, udp: transport, nodes: options.bootstrapNodes)
            }
            let sources: [any DiscoverySource] = [discovery] + (bootstrap.map { [$0] } ?? [])
            let swarm = try Swarm(identity: identity.keyPair, transport: bootstrap ?? transport, discovery: sources,
                                  configuration: options.swarm, clock: clock)
            return VaultNetwork(swarm: swarm, clock: clock, interfaces: names, transport: transport, discovery: discovery,
                                bootstrap: bootstrap)
        } catch let error as VaultError {
            throw error
        } catch {
            throw VaultError(.network, "cannot start the network on \(names.joined(separator: ",")): \((error as? SwarmNIOError)?.detail ?? "\(error)")")
        }
    }

    /// Runs until `stop()`.
    public func run() async throws { try await swarm.run() }

    /// Closes every session (telling the peers) and the sockets.
    public func stop() async { await swarm.shutdown() }

    /// `lo`, an IPv4 address, or an interface name → discovery spec and the address to bind.
    static func resolve(_ name: String) throws(VaultError) -> (InterfaceSpec, Endpoint.Address) {
        if name == "lo" || name == "loopback" || name == "127.0.0.1" { return (.loopback, .v4(127, 0, 0, 1)) }
        if let endpoint = Endpoint(name, defaultPort: 0), endpoint.addressBytes.count == 4 { return (.address(endpoint.address), endpoint.address) }
        guard let found = ipv4Interfaces().first(where: { $0.name == name }) else {
            throw VaultError(.network, "interface \(name) has no IPv4 address here (see: ip -4 addr)")
        }
        return (.named(name), found.address)
    }

    /// Up, multicast-capable, non-loopback IPv4 interfaces.
    static func defaultInterfaces() throws(VaultError) -> [String] {
        let names = ipv4Interfaces().filter { $0.multicast && !$0.loopback }.map(\.name)
        guard !names.isEmpty else {
            throw VaultError(.network, "no multicast-capable network interface is up; use --interface lo to chat on this machine")
        }
        return Array(Set(names)).sorted()
    }

    struct InterfaceInfo {
        var name: String
        var address: Endpoint.Address
        var multicast: Bool
        var loopback: Bool
    }

    static func ipv4Interfaces() -> [InterfaceInfo] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [InterfaceInfo] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let flags = entry.pointee.ifa_flags
            guard flags & UInt32(IFF_UP) != 0 else { continue }
            let bytes = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                withUnsafeBytes(of: sin.pointee.sin_addr.s_addr) { Array($0) }
            }
            result.append(InterfaceInfo(name: String(cString: entry.pointee.ifa_name),
                                        address: .v4(bytes[0], bytes[1], bytes[2], bytes[3]),
                                        multicast: flags & UInt32(IFF_MULTICAST) != 0,
                                        loopback: flags & UInt32(IFF_LOOPBACK) != 0))
        }
        return result
    }
}
