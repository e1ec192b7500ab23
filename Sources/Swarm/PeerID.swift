import Sodium

/// A peer's identity: its Ed25519 public key. The peer's Noise static key is the X25519 form
/// of the same key (DESIGN decision 2), so knowing a peer id is enough to dial it with IK.
public struct PeerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let publicKey: Ed25519.PublicKey

    public init(_ publicKey: Ed25519.PublicKey) { self.publicKey = publicKey }

    public init(bytes: [UInt8]) throws { publicKey = try Ed25519.PublicKey(bytes: bytes) }

    public var bytes: [UInt8] { publicKey.bytes }

    /// Byte-wise order of the public keys: the deterministic tie-break when two peers dial
    /// each other at once.
    public static func < (lhs: PeerID, rhs: PeerID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The first 8 hex digits, for logs.
    public var short: String { String(publicKey.hex.prefix(8)) }
    public var description: String { publicKey.hex }
}
