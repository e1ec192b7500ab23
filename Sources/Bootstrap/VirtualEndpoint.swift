import Swarm

/// Endpoints that stand for "peer X, through whichever path the bootstrap client picks"
/// (PROTOCOL.md §11.8). The session layer addresses a relayed or punched peer by one of
/// these and never learns which path carries it.
///
/// They live in `100::/64`, the IPv6 discard-only block (RFC 6666): reserved so that it is
/// never assigned to a host, and routers discard it — should one ever escape to a real
/// socket, it goes nowhere. The last four bytes number the peer within one client; the port
/// is 9 (the discard port), never a real one.
public enum VirtualEndpoint {
    /// RFC 6666 §2: `100::/64`.
    static let prefix: [UInt8] = [0x01, 0x00, 0, 0, 0, 0, 0, 0]
    static let port: UInt16 = 9

    static func make(_ index: UInt32) -> Endpoint {
        let tail: [UInt8] = [0, 0, 0, 0, UInt8(index >> 24), UInt8(index >> 16 & 0xff), UInt8(index >> 8 & 0xff), UInt8(index & 0xff)]
        return Endpoint(address: .v6(prefix + tail), port: port)
    }

    /// Whether `endpoint` is a virtual endpoint (and so never a real network address).
    public static func contains(_ endpoint: Endpoint) -> Bool {
        guard case let .v6(bytes) = endpoint.address else { return false }
        return bytes.starts(with: prefix)
    }
}

/// Which path carries the datagrams a session addresses to an endpoint.
public enum PathKind: Sendable, Equatable, CustomStringConvertible {
    /// A real endpoint the session addresses itself (LAN discovery, or a dial by address).
    case direct
    /// A peer found through a bootstrap node, reached at one of its own socket addresses
    /// (the two share a LAN or a NAT).
    case lan(Endpoint)
    /// A peer reached at its public endpoint through a punched hole.
    case punched(Endpoint)
    /// Through a bootstrap node's relay.
    case relay(node: Endpoint)
    /// A virtual endpoint whose path is not settled yet (punching, within the relay bound).
    case pending

    public var name: String {
        switch self {
        case .direct: "direct"
        case .lan: "lan"
        case .punched: "punched"
        case .relay: "relay"
        case .pending: "pending"
        }
    }

    public var description: String {
        switch self {
        case .direct, .pending: name
        case let .lan(e), let .punched(e): "\(name) \(e)"
        case let .relay(node): "relay via \(node)"
        }
    }
}
