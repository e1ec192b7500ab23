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

    /// An interface resolved to what the socket options need.
    struct Resolved: Sendable {
        /// What it was resolved from, to resolve it again (an address or index may change).
        var spec: InterfaceSpec
        var name: String
        /// IPv4 address bytes in network order; nil on an interface without IPv4.
        var ipv4: [UInt8]?
        /// The interface's IPv6 link-local address (`fe80::/10`) when IPv6 discovery runs on
        /// it: a multicast-capable, non-loopback interface that has one (IPv6 multicast does
        /// not deliver on `lo`, MACHINE.md).
        var ipv6LinkLocal: [UInt8]?
        /// The kernel's interface index: IPv6 multicast options and link-local scopes use it.
        var index: UInt32
        var isLoopback: Bool
    }

    /// Looks the interface up among the host's devices now.
    func resolve() throws -> Resolved {
        let devices = try System.enumerateDevices()
        func addresses(_ name: String) -> (v4: [UInt8]?, v6: [UInt8]?, index: UInt32, multicast: Bool) {
            var v4: [UInt8]?
            var v6: [UInt8]?
            var index: UInt32 = 0
            var multicast = false
            for device in devices where device.name == name {
                index = UInt32(clamping: device.interfaceIndex)
                multicast = multicast || device.multicastSupported
                guard let address = device.address, let endpoint = Endpoint(address) else { continue }
                if endpoint.isIPv6 {
                    if v6 == nil, endpoint.isLinkLocalUnicast { v6 = endpoint.addressBytes }
                } else if v4 == nil {
                    v4 = endpoint.addressBytes
                }
            }
            return (v4, v6, index, multicast)
        }
        switch selector {
        case let .name(name):
            let found = addresses(name)
            let loopback = found.v4?.first == 127 || name == "lo"
            let v6 = loopback || !found.multicast ? nil : found.v6
            guard found.v4 != nil || v6 != nil else {
                throw SwarmNIOError(.invalidAddress, "interface \(name) has no IPv4 address and no IPv6 link-local address here")
            }
            return Resolved(spec: self, name: name, ipv4: found.v4, ipv6LinkLocal: v6, index: found.index, isLoopback: loopback)
        case let .address(address):
            let bytes = Endpoint(address: address, port: 0).addressBytes
            guard bytes.count == 4 else {
                throw SwarmNIOError(.invalidAddress, "an interface is named, or given by its IPv4 address; \(self) is not one")
            }
            // 127.0.0.1 is on `lo` whether or not enumeration lists it (some namespaces list
            // `lo` without addresses until it is up).
            if bytes[0] == 127 { return Resolved(spec: self, name: "lo", ipv4: bytes, ipv6LinkLocal: nil, index: 1, isLoopback: true) }
            let holder = devices.first { device in
                device.address.flatMap(Endpoint.init).map { !$0.isIPv6 && $0.addressBytes == bytes } ?? false
            }
            guard let holder else {
                throw SwarmNIOError(.invalidAddress, "no interface holds \(self) here")
            }
            return Resolved(spec: self, name: holder.name, ipv4: bytes, ipv6LinkLocal: nil,
                            index: UInt32(clamping: holder.interfaceIndex), isLoopback: false)
        }
    }
}
