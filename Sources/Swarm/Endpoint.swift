import Foundation

/// A UDP endpoint: an IPv4 or IPv6 address and a port.
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

    public init(address: Address, port: UInt16) {
        self.address = address
        self.port = port
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

    public var isLoopback: Bool {
        switch address {
        case let .v4(a, _, _, _): return a == 127
        case let .v6(bytes): return bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }

    /// Parses `1.2.3.4:5`, `[::1]:5` or `host-less` forms `1.2.3.4` / `::1` with `defaultPort`.
    public init?(_ text: String, defaultPort: UInt16? = nil) {
        var host = Substring(text)
        var port = defaultPort
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
        if let v4 = Endpoint.parseIPv4(host) {
            self.init(address: .v4(v4[0], v4[1], v4[2], v4[3]), port: port)
        } else if let v6 = Endpoint.parseIPv6(host) {
            self.init(address: .v6(v6), port: port)
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
            var words: [String] = []
            for i in stride(from: 0, to: 16, by: 2) {
                words.append(String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16))
            }
            return "[\(words.joined(separator: ":"))]:\(port)"
        }
    }
}
