import Foundation

/// A UDP endpoint: an IPv4 or IPv6 address and a port, and for a link-local IPv6 address the
/// interface it belongs to.
///
/// Our own value type rather than NIO's `SocketAddress`, so the sans-I/O protocol cores can
/// hash, compare and encode endpoints cheaply, and the in-memory transport can invent them.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public enum Address: Hashable, Sendable {
        /// Four bytes in network order.
        case v4(UInt8, UInt8, UInt8, UInt8)
        /// Sixteen bytes in network order.
        case v6([UInt8])
    }

    public var address: Address
    public var port: UInt16
    /// The interface index of a link-local IPv6 address (`fe80::/10`, `ff02::/16`): the same
    /// address can exist on every link, so it means nothing without one (RFC 4007 §6). 0 for
    /// every other address. Local to this host: never sent on the wire.
    public var scopeID: UInt32

    public init(address: Address, port: UInt16, scopeID: UInt32 = 0) {
        self.address = address
        self.port = port
        self.scopeID = scopeID
    }

    /// IPv4 `a.b.c.d` and port.
    public static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> Endpoint {
        Endpoint(address: .v4(a, b, c, d), port: port)
    }

    /// The address bytes in network order (4 or 16).
    public var addressBytes: [UInt8] {
        switch address {
        case let .v4(a, b, c, d): return [a, b, c, d]
        case let .v6(bytes): return bytes
        }
    }

    public init?(addressBytes: [UInt8], port: UInt16) {
        switch addressBytes.count {
        case 4: self.init(address: .v4(addressBytes[0], addressBytes[1], addressBytes[2], addressBytes[3]), port: port)
        case 16: self.init(address: .v6(addressBytes), port: port)
        default: return nil
        }
    }

    /// The unspecified IPv6 address `::` (a socket bound there is dual-stack, PROTOCOL.md §6.3).
    public static let ipv6Unspecified: Address = .v6([UInt8](repeating: 0, count: 16))

    /// `0.0.0.0` or `::`: a socket bound there receives on every address of the host.
    public var isUnspecified: Bool { addressBytes.allSatisfy { $0 == 0 } }

    /// Whether this is an IPv6 address (of any scope).
    public var isIPv6: Bool {
        if case .v6 = address { return true }
        return false
    }

    /// An IPv6 link-local unicast address, `fe80::/10`.
    public var isLinkLocalUnicast: Bool {
        guard case let .v6(bytes) = address else { return false }
        return bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80
    }

    /// A link-local multicast address, `ff02::/16` (and `ffx2::` with other flags).
    public var isLinkLocalMulticast: Bool {
        guard case let .v6(bytes) = address else { return false }
        return bytes[0] == 0xff && bytes[1] & 0x0f == 0x02
    }

    public var isLoopback: Bool {
        switch address {
        case let .v4(a, _, _, _): return a == 127
        case let .v6(bytes): return bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }

    /// Parses `1.2.3.4:5`, `[::1]:5`, `[fe80::1%2]:5` (a numeric zone: the interface index)
    /// or the port-less forms `1.2.3.4` / `::1` / `fe80::1%2` with `defaultPort`.
    public init?(_ text: String, defaultPort: UInt16? = nil) {
        var host = Substring(text)
        var port = defaultPort
        var scope: UInt32 = 0
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") { port = UInt16(rest.dropFirst()) ; if port == nil { return nil } }
            else if !rest.isEmpty { return nil }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.lastIndex(of: ":") {
            guard let p = UInt16(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard let port else { return nil }
        if let percent = host.firstIndex(of: "%") {
            let zone = host[host.index(after: percent)...]
            guard !zone.isEmpty, zone.allSatisfy(\.isASCII), let index = UInt32(zone), index > 0 else { return nil }
            scope = index
            host = host[..<percent]
        }
        if let v4 = Endpoint.parseIPv4(host), scope == 0 {
            self.init(address: .v4(v4[0], v4[1], v4[2], v4[3]), port: port)
        } else if let v6 = Endpoint.parseIPv6(host) {
            self.init(address: .v6(v6), port: port, scopeID: scope)
        } else {
            return nil
        }
    }

    static func parseIPv4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func parseIPv6(_ s: Substring) -> [UInt8]? {
        // RFC 4291 §2.2 text forms, without embedded IPv4 or zone ids.
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.count), let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var words = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            words += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard words.count == 8 else { return nil }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    public var description: String {
        switch address {
        case let .v4(a, b, c, d): return "\(a).\(b).\(c).\(d):\(port)"
        case let .v6(bytes):
            let zone = scopeID == 0 ? "" : "%\(scopeID)"
            return "[\(Endpoint.ipv6Text(bytes))\(zone)]:\(port)"
        }
    }

    /// RFC 5952's text form: lower-case hex without leading zeros, the longest run of two or
    /// more zero groups (the first of equal runs) as `::`.
    static func ipv6Text(_ bytes: [UInt8]) -> String {
        let words = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            guard words[i] == 0 else { i += 1; continue }
            var j = i
            while j < 8 && words[j] == 0 { j += 1 }
            if j - i > best.length { best = (i, j - i) }
            i = j
        }
        let hex = words.map { String($0, radix: 16) }
        guard best.length >= 2 else { return hex.joined(separator: ":") }
        let head = hex[..<best.start].joined(separator: ":")
        let tail = hex[(best.start + best.length)...].joined(separator: ":")
        return head + "::" + tail
    }
}
