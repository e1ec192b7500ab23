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

    /// The loopback interface, by its address 127.0.0.1: works without root and without the
    /// MULTICAST flag on `lo` (membership and `IP_MULTICAST_IF` by address, TTL 0).
    public static let loopback = InterfaceSpec(selector: .address(.v4(127, 0, 0, 1)))

    /// The interface with this name (e.g. `eth0` inside a test namespace); its first IPv4
    /// address is used.
    public static func named(_ name: String) -> InterfaceSpec { InterfaceSpec(selector: .name(name)) }

    /// The interface that holds this IPv4 address.
    public static func address(_ address: Endpoint.Address) -> InterfaceSpec { InterfaceSpec(selector: .address(address)) }

    public var description: String {
        switch selector {
        case let .name(name): return name
        case let .address(address): return Endpoint(address: address, port: 0).description.replacingOccurrences(of: ":0", with: "")
        }
    }

    /// An interface resolved to what the socket options need.
    struct Resolved: Sendable {
        var name: String
        /// IPv4 address bytes in network order.
        var ipv4: [UInt8]
        var isLoopback: Bool
    }

    /// Looks the interface up among the host's devices now.
    func resolve() throws -> Resolved {
        let devices = try System.enumerateDevices()
        let v4: [(name: String, bytes: [UInt8])] = devices.compactMap { device in
            guard let address = device.address, let endpoint = Endpoint(address), endpoint.isIPv4 else { return nil }
            return (device.name, endpoint.addressBytes)
        }
        switch selector {
        case let .name(name):
            guard let hit = v4.first(where: { $0.name == name }) else {
                throw SwarmNIOError(.invalidAddress, "interface \(name) has no IPv4 address here")
            }
            return Resolved(name: name, ipv4: hit.bytes, isLoopback: hit.bytes[0] == 127)
        case let .address(address):
            let bytes = Endpoint(address: address, port: 0).addressBytes
            guard bytes.count == 4 else {
                throw SwarmNIOError(.invalidAddress, "LAN discovery runs over IPv4; \(self) is not an IPv4 address")
            }
            // 127.0.0.1 is on `lo` whether or not enumeration lists it (some namespaces list
            // `lo` without addresses until it is up).
            if bytes[0] == 127 { return Resolved(name: "lo", ipv4: bytes, isLoopback: true) }
            guard let hit = v4.first(where: { $0.bytes == bytes }) else {
                throw SwarmNIOError(.invalidAddress, "no interface holds \(self) here")
            }
            return Resolved(name: hit.name, ipv4: bytes, isLoopback: false)
        }
    }
}
