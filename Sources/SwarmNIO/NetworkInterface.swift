import Swarm

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One network interface of this host as the kernel has it now: the facts LAN discovery and
/// the vault choose interfaces by. The one place the host's interfaces are looked up
/// (`getifaddrs`); `InterfaceSpec.resolve()` and the vault's default set both read it.
///
/// A snapshot: addresses come and go (a link coming up, a DHCP lease, an IPv6 link-local
/// address a moment after the link), so whoever waits for one looks again.
public struct NetworkInterface: Sendable, Hashable {
    public var name: String
    /// The kernel's interface index: IPv6 multicast options and link-local scopes use it.
    public var index: UInt32
    /// `IFF_UP`: an interface that is down sends nothing, whatever addresses it holds.
    public var isUp: Bool
    public var isLoopback: Bool
    /// `IFF_MULTICAST`. `lo` lacks it, and IPv4 multicast works there all the same when
    /// the options are given by address (PROTOCOL.md §6.1).
    public var isMulticast: Bool
    /// Its IPv4 addresses, the kernel's first first. Listed while the interface is down too
    /// (the kernel keeps them).
    public var ipv4Addresses: [Endpoint.Address]
    /// Its first IPv6 link-local address (`fe80::/10`) that is usable: one the kernel still
    /// checks for duplicates (tentative) or found duplicated cannot be a source yet, and is
    /// left out (Linux; read from `/proc/net/if_inet6` where it exists).
    public var ipv6LinkLocal: Endpoint.Address?

    public init(name: String, index: UInt32, isUp: Bool, isLoopback: Bool, isMulticast: Bool,
                ipv4Addresses: [Endpoint.Address] = [], ipv6LinkLocal: Endpoint.Address? = nil) {
        self.name = name
        self.index = index
        self.isUp = isUp
        self.isLoopback = isLoopback
        self.isMulticast = isMulticast
        self.ipv4Addresses = ipv4Addresses
        self.ipv6LinkLocal = ipv6LinkLocal
    }

    /// The IPv4 address discovery uses on it: the first, while the interface is up.
    public var ipv4: Endpoint.Address? { isUp ? ipv4Addresses.first : nil }

    /// Every interface of this host, up or not, with or without addresses, in the kernel's
    /// order; empty when the kernel cannot be asked.
    public static func all() -> [NetworkInterface] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        let unusable = unusableIPv6Addresses()
        var result: [NetworkInterface] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            // Every interface has an entry of its link-layer family (AF_PACKET on Linux),
            // down or without addresses too: that is how an interface is known to exist.
            let name = String(cString: entry.pointee.ifa_name)
            let flags = entry.pointee.ifa_flags
            let i: Int
            if let known = result.firstIndex(where: { $0.name == name }) {
                i = known
            } else if let colon = name.firstIndex(of: ":"),
                      let base = result.firstIndex(where: { $0.name == name[..<colon] }) {
                // An IPv4 address with a label (`eth0:1`, an old-style alias) is listed under
                // its label, which is no interface of its own (no link entry, the same index):
                // it is an address of `eth0`. Listed apart, it made a second discovery socket on
                // the same link in the LAN default, and one waiting for ever for an IPv6 address.
                i = base
            } else {
                result.append(NetworkInterface(
                    name: name, index: if_nametoindex(name), isUp: flags & UInt32(IFF_UP) != 0,
                    isLoopback: flags & UInt32(IFF_LOOPBACK) != 0, isMulticast: flags & UInt32(IFF_MULTICAST) != 0))
                i = result.count - 1
            }
            guard let address = entry.pointee.ifa_addr else { continue }
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let bytes = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    withUnsafeBytes(of: sin.pointee.sin_addr.s_addr) { Array($0) }
                }
                result[i].ipv4Addresses.append(.v4(bytes[0], bytes[1], bytes[2], bytes[3]))
            case AF_INET6 where result[i].ipv6LinkLocal == nil:
                let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    withUnsafeBytes(of: sin6.pointee.sin6_addr) { Array($0) }
                }
                let endpoint = Endpoint(address: .v6(bytes), port: 0)
                if endpoint.isLinkLocalUnicast, !unusable.contains(UnusableKey(name: name, address: bytes)) {
                    result[i].ipv6LinkLocal = endpoint.address
                }
            default:
                continue
            }
        }
        return result
    }

    /// The interfaces a LAN peer runs on when none is named: up, multicast-capable, not
    /// loopback, with an IPv4 address; by name. Interfaces with only an IPv6 link-local
    /// address are left out — on a typical host they are container veths, taps and bridge
    /// ports, not a LAN — so an IPv6-only LAN must be named.
    public static func lanDefault(among interfaces: [NetworkInterface] = all()) -> [NetworkInterface] {
        interfaces.filter { $0.isMulticast && !$0.isLoopback && $0.ipv4 != nil }.sorted { $0.name < $1.name }
    }

    /// Whether this host can open IPv6 sockets at all (a kernel booted with `ipv6.disable=1`
    /// cannot): without it nothing waits for an IPv6 address.
    public static let ipv6Supported: Bool = {
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }()

    /// Whether IPv6 is switched off on interface `name` (`net.ipv6.conf.NAME.disable_ipv6 = 1`,
    /// which `…conf.all.disable_ipv6` sets on every interface): it then never gets a link-local
    /// address, so nothing should wait for one. False where the file is missing (no such
    /// interface, not Linux, IPv6 not in the kernel: `ipv6Supported` covers that).
    public static func isIPv6Disabled(on name: String) -> Bool {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..",
              let file = fopen("/proc/sys/net/ipv6/conf/\(name)/disable_ipv6", "r") else { return false }
        defer { fclose(file) }
        return fgetc(file) == Int32(UInt8(ascii: "1"))
    }

    private struct UnusableKey: Hashable {
        var name: String
        var address: [UInt8]
    }

    /// IPv6 addresses that cannot be used as a source yet or at all: tentative (duplicate
    /// address detection still running, `IFA_F_TENTATIVE` 0x40) or found duplicated
    /// (`IFA_F_DADFAILED` 0x08). `getifaddrs` lists them like any other; Linux's
    /// `/proc/net/if_inet6` has the flags (lines `ADDRESS-HEX IFINDEX PREFIX SCOPE FLAGS NAME`).
    private static func unusableIPv6Addresses() -> Set<UnusableKey> {
        guard let file = fopen("/proc/net/if_inet6", "r") else { return [] }
        defer { fclose(file) }
        var unusable: Set<UnusableKey> = []
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let fields = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[0].count == 32, let flags = UInt32(fields[4], radix: 16),
                  flags & 0x48 != 0 else { continue }
            let hex = Array(fields[0].utf8)
            let bytes = stride(from: 0, to: 32, by: 2).compactMap { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16) }
            guard bytes.count == 16 else { continue }
            unusable.insert(UnusableKey(name: String(fields[5].filter { !$0.isWhitespace }), address: bytes))
        }
        return unusable
    }
}
