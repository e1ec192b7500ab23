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

    public static func == (lhs: PeerID, rhs: PeerID) -> Bool { lhs.publicKey == rhs.publicKey }

    /// The 32 bytes as four words. A peer id is hashed for every packet and every channel
    /// message, and hashing the bytes one at a time (the synthesized way) costs several
    /// times more.
    public func hash(into hasher: inout Hasher) {
        let bytes = publicKey.bytes
        guard bytes.count == 32 else { return hasher.combine(bytes) }
        bytes.withUnsafeBytes { raw in
            for offset in stride(from: 0, to: 32, by: 8) {
                hasher.combine(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            }
        }
    }

    /// The first 8 hex digits, for logs.
    public var short: String { String(publicKey.hex.prefix(8)) }
    public var description: String { publicKey.hex }
}
