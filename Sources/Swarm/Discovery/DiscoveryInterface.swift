/// One interface LAN discovery was asked to run on, and how it runs there at the moment: the
/// daemon's ready line and `inspect` show it (PROTOCOL.md §6.1, §10.7). Encoded as
/// `{name, families, waiting?, ipv6Failed?}`, an empty field left out.
public struct DiscoveryInterface: Sendable, Codable, Hashable, CustomStringConvertible {
    /// The interface as it was given (`eth0`, `lo`, `10.0.0.2`), or as the kernel names it
    /// when discovery follows the LAN default (no interface given); `*` for the entry that
    /// stands for the LAN default while it has no interface (`anyLANWaiting`).
    public var name: String
    /// The address families discovery runs on there now: "IPv4", "IPv6", or both.
    public var families: [String]
    /// The families it looks for there and has no socket for yet: the interface has no such
    /// address (down, no lease, no link-local address yet), or its socket is being opened
    /// again. Nil when nothing is missing.
    public var waiting: [String]?
    /// Why IPv6 could not be set up there, when it was wanted.
    public var ipv6Failed: String?

    public init(name: String, families: [String], waiting: [String]? = nil, ipv6Failed: String? = nil) {
        self.name = name
        self.families = families
        self.waiting = waiting.flatMap { $0.isEmpty ? nil : $0 }
        self.ipv6Failed = ipv6Failed
    }

    /// Discovery follows the LAN default (no interface given) and no interface is in it yet
    /// — none is up with an IPv4 address: it waits for one. Shown `any LAN interface
    /// (waiting for IPv4)`; encoded `{"name":"*","families":[],"waiting":["IPv4"]}`.
    public static let anyLANWaiting = DiscoveryInterface(name: anyLANName, families: [], waiting: ["IPv4"])

    /// The name of `anyLANWaiting`.
    public static let anyLANName = "*"

    /// `eth0` (IPv4 alone, as ever), `eth0 (IPv4+IPv6)`, `eth0 (IPv6)`, `eth0 (IPv4; IPv6
    /// failed: …)`, `eth0 (IPv4; waiting for IPv6)`, `eth0 (waiting for IPv4+IPv6)`,
    /// `any LAN interface (waiting for IPv4)`.
    public var description: String {
        let name = self.name == Self.anyLANName ? "any LAN interface" : self.name
        var parts: [String] = []
        if !families.isEmpty { parts.append(families.joined(separator: "+")) }
        if let ipv6Failed { parts.append("IPv6 failed: \(ipv6Failed)") }
        if let waiting { parts.append("waiting for \(waiting.joined(separator: "+"))") }
        if parts == ["IPv4"] { return name }
        return "\(name) (\(parts.joined(separator: "; ")))"
    }
}
