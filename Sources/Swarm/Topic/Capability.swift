import Sodium

/// Proof, inside a session, that the sender holds a topic (DESIGN decision 3, PROTOCOL.md §5.3).
///
/// `cap = BLAKE2b-256(key: topic, "bookswarm/capability/v1" ‖ role ‖ handshakeHash)`.
///
/// * Keyed with the topic: only holders of the invite can compute it; a beacon, being a PRF
///   output under the same key, reveals nothing that helps.
/// * Bound to the Noise handshake hash, which is unique to one session and covers both static
///   keys: a capability recorded in one session is worthless in any other.
/// * Bound to the sender's role: without it a peer lacking the topic could simply send back
///   the capability it received, and it would verify (the reflection attack hypercore's
///   `caps.js` avoids the same way).
public enum Capability {
    /// PROTOCOL.md §5.3: capability length in bytes.
    public static let length = 32
    /// PROTOCOL.md §5.3: the domain tag.
    static let domainTag: [UInt8] = Array("bookswarm/capability/v1".utf8)

    /// Which end of the Noise handshake *sent* the capability.
    public enum Role: UInt8, Sendable {
        case initiator = 1
        case responder = 2

        /// The other end.
        public var peer: Role {
            switch self {
            case .initiator: return .responder
            case .responder: return .initiator
            }
        }
    }

    /// The capability the `sender` side of the session with `handshakeHash` sends for `topic`.
    public static func make(topic: Topic, handshakeHash: [UInt8], sender: Role) -> [UInt8] {
        var hasher = BLAKE2b(outputLength: length, key: topic.bytes)
        hasher.update(domainTag)
        hasher.update(byte: sender.rawValue)
        hasher.update(handshakeHash)
        return hasher.finalize()
    }

    /// Checks, in constant time, a capability received from the `sender` side of the session.
    /// Any length other than `length` fails.
    public static func verify(_ capability: [UInt8], topic: Topic, handshakeHash: [UInt8], sender: Role) -> Bool {
        guard capability.count == length else { return false }
        return constantTimeEquals(capability, make(topic: topic, handshakeHash: handshakeHash, sender: sender))
    }
}
