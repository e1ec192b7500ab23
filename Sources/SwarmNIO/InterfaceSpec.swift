import NIOCore
import Swarm

/// One network interface LAN discovery runs on. Always chosen explicitly (MACHINE.md's
/// network rule): there is no "all interfaces" default that could multicast on the host's
/// real network by accident.
public struct InterfaceSpec: Hashable, Sendable, CustomStringConvertible {
    enum Selector: Hashable, Sendable {
        case name(String)
        case address(Endpoint.Address)
    }

    let selector: Selector

    private init(selector: Selector) { self.selector = selector }

    /// The loopback interface, by its address 127.0.0.1: works without root and without the
    /// MULTICAST flag on `lo` (membership and `IP_MULTICAST_IF` by address, TTL 0).
    public static let loopback = InterfaceSpec(selector: .address(.v4(127, 0, 0, 1)))

    /// The interface with this name (e.g. `eth0` inside a test namespace): its first IPv4
    /// address for IPv4 discovery and, where it has one, its IPv6 link-local address for IPv6
    /// discovery. An interface with only IPv6 runs only IPv6 discovery.
    public static func named(_ name: String) -> InterfaceSpec { InterfaceSpec(selector: .name(name)) }

    /// The interface that holds this IPv4 address (IPv4 discovery only).
    public static func address(_ address: Endpoint.Address) -> InterfaceSpec { InterfaceSpec(selector: .address(address)) }

    /// Given by its address (loopback among them), not by name.
    public var isAddress: Bool {
        if case .address = selector { return true }
        return false
    }

    public var description: String {
        switch selector {
        case let .name(name): return name
        case let .address(address): return Endpoint(address: address, port: 0).description.replacingOccurrences(of: ":0", with: "")
        }
    }

    /// `lo` (or `loopback`, `127.0.0.1`), an IPv4 address, or an interface name, as a person
    /// types it (`--interface`). Any other address literal is taken as an address too, so
    /// that resolving it says why it cannot be used.
    public init(parsing text: String) {
        if text == "lo" || text == "loopback" {
            self = .loopback
        } else if let endpoint = Endpoint(text, defaultPort: 0) {
            self = .address(endpoint.address)
        } else {
            self = .named(text)
        }
    }

    /// An interface resolved to what the socket options need, as it is at the moment.
    public struct Resolved: Sendable, Equatable {
        /// What it was resolved from, to resolve it again (an address or index may change).
        public var spec: InterfaceSpec
        public var name: String
        /// The kernel's interface index: IPv6 multicast options and link-local scopes use it.
        public var index: UInt32
        public var isLoopback: Bool
        /// Its IPv4 address; nil while an interface given by name has none (or is down).
        public var ipv4: Endpoint.Address?
        /// Whether IPv6 discovery belongs here: an interface given by name that is
        /// multicast-capable, not loopback (IPv6 multicast does not deliver on `lo`,
        /// MACHINE.md) and does not have IPv6 switched off (`disable_ipv6`). An interface
        /// given by its IPv4 address, and loopback, are IPv4 only.
        public var ipv6Capable: Bool
        /// Its usable IPv6 link-local address (`fe80::/10`) when `ipv6Capable`; nil while it
        /// has none.
        public var ipv6LinkLocal: Endpoint.Address?

        /// Whether IPv6 discovery may run here at some time, if not now: an interface given
        /// by name that is not loopback. It runs while `ipv6Capable`, which changes when IPv6
        /// is switched on or off there (or the MULTICAST flag set); LAN discovery follows it.
        public var mayRunIPv6: Bool { !spec.isAddress && !isLoopback }

        /// `ipv4` as bytes in network order, for the socket options.
        var ipv4Bytes: [UInt8]? { ipv4.map { Endpoint(address: $0, port: 0).addressBytes } }
    }

    /// Looks the interface up among the host's interfaces now (`NetworkInterface.all()`).
    /// Fails, in one line naming it, when no interface has that name or holds that address;
    /// an interface that exists but has no address (yet) resolves, with nil addresses.
    public func resolve(among interfaces: [NetworkInterface] = NetworkInterface.all()) throws -> Resolved {
        switch selector {
        case let .name(name):
            guard let found = interfaces.first(where: { $0.name == name }) else {
                throw SwarmNIOError(.invalidAddress, "no interface \(name) exists here (see: ip link)")
            }
            let ipv4 = found.ipv4
            let loopback = found.isLoopback || ipv4.map { Endpoint(address: $0, port: 0).isLoopback } == true
            // An interface with IPv6 switched off never gets a link-local address: IPv6 is
            // not waited for there (it would show as waiting for ever, looked up every second).
            let ipv6Capable = found.isMulticast && !loopback && !NetworkInterface.isIPv6Disabled(on: found.name)
            return Resolved(spec: self, name: name, index: found.index, isLoopback: loopback, ipv4: ipv4,
                            ipv6Capable: ipv6Capable, ipv6LinkLocal: ipv6Capable && found.isUp ? found.ipv6LinkLocal : nil)
        case let .address(address):
            let endpoint = Endpoint(address: address, port: 0)
            guard !endpoint.isIPv6 else {
                throw SwarmNIOError(.invalidAddress, "an interface is named, or given by its IPv4 address; \(self) is not one")
            }
            // 127.0.0.1 is on `lo` whether or not enumeration lists it (some namespaces list
            // `lo` without addresses until it is up).
            if endpoint.isLoopback {
                return Resolved(spec: self, name: "lo", index: 1, isLoopback: true, ipv4: address, ipv6Capable: false)
            }
            guard let holder = interfaces.first(where: { $0.ipv4Addresses.contains(address) }) else {
                throw SwarmNIOError(.invalidAddress, "no interface holds \(self) here (see: ip -4 addr)")
            }
            return Resolved(spec: self, name: holder.name, index: holder.index, isLoopback: holder.isLoopback,
                            ipv4: address, ipv6Capable: false)
        }
    }
}
