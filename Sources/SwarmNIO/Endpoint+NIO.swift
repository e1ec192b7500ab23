import NIOCore
import Swarm

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Conversions between the sans-I/O `Endpoint` and NIO's `SocketAddress`, done on the raw
// sockaddr structures so no text parsing happens per datagram.

extension Endpoint {
    /// The NIO address for this endpoint.
    var socketAddress: SocketAddress {
        switch address {
        case let .v4(a, b, c, d):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            // s_addr holds the four bytes in network order whatever the host's endianness.
            withUnsafeMutableBytes(of: &sin.sin_addr) { raw in
                raw[0] = a; raw[1] = b; raw[2] = c; raw[3] = d
            }
            return SocketAddress(sin, host: "")
        case let .v6(bytes):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = scopeID
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                for i in 0..<16 { raw[i] = bytes[i] }
            }
            return SocketAddress(sin6, host: "")
        }
    }

    /// The address to hand an IPv6 socket: IPv4 endpoints as IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), which a dual-stack socket sends as IPv4.
    var socketAddressForIPv6Socket: SocketAddress {
        guard case let .v4(a, b, c, d) = address else { return socketAddress }
        return Endpoint(address: .v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]), port: port).socketAddress
    }

    /// The endpoint of a NIO IPv4 or IPv6 address; nil for Unix sockets.
    init?(_ socketAddress: SocketAddress) {
        switch socketAddress {
        case let .v4(v4):
            let sin = v4.address
            // s_addr holds the bytes in network order; read as big-endian it is a.b.c.d
            // from the top byte down, with no allocation on this per-datagram path.
            let a = UInt32(bigEndian: sin.sin_addr.s_addr)
            self.init(address: .v4(UInt8(a >> 24), UInt8((a >> 16) & 0xff), UInt8((a >> 8) & 0xff), UInt8(a & 0xff)),
                      port: UInt16(bigEndian: sin.sin_port))
        case let .v6(v6):
            var sin6 = v6.address
            let port = UInt16(bigEndian: sin6.sin6_port)
            let bytes = withUnsafeBytes(of: &sin6.sin6_addr) { Array($0.prefix(16)) }
            // An IPv4-mapped IPv6 source (::ffff:a.b.c.d) from a dual-stack socket is the
            // IPv4 peer it stands for.
            if bytes.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]) {
                self.init(address: .v4(bytes[12], bytes[13], bytes[14], bytes[15]), port: port)
            } else {
                self.init(address: .v6(bytes), port: port, scopeID: sin6.sin6_scope_id)
            }
        case .unixDomainSocket:
            return nil
        }
    }
}
