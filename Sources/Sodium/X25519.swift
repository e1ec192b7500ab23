import CSodium

/// X25519 Diffie-Hellman (RFC 7748), through libsodium's `crypto_scalarmult`.
public enum X25519 {
    public static let keyLength = Int(crypto_scalarmult_BYTES)  // 32

    public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
        public let bytes: [UInt8]

        public init(bytes: [UInt8]) throws {
            try requireLength(bytes, X25519.keyLength, "an X25519 public key")
            self.bytes = bytes
        }

        public var description: String { bytes.hexString }
    }

    public struct KeyPair: Sendable {
        public let publicKey: PublicKey
        public let secretKey: SecretBytes

        public static func generate() -> KeyPair {
            try! KeyPair(secretKey: SecretBytes(randomCount: X25519.keyLength))
        }

        /// The key pair of a given 32-byte secret scalar (clamped by libsodium when used).
        public init(secretKey: SecretBytes) throws {
            _ = Sodium.ready
            try requireLength(0..<secretKey.count, X25519.keyLength, "an X25519 secret key")
            var pk = [UInt8](repeating: 0, count: X25519.keyLength)
            pk.withUnsafeMutableBufferPointer { p in
                secretKey.withUnsafeBytes { s in
                    _ = crypto_scalarmult_base(p.baseAddress!, s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            self.secretKey = secretKey
            publicKey = try PublicKey(bytes: pk)
        }

        /// The shared secret with `peer`. Throws for a low-order peer key, whose result is
        /// all zeros (libsodium checks this); Noise lets an implementation reject such keys.
        public func sharedSecret(with peer: PublicKey) throws -> SecretBytes {
            _ = Sodium.ready
            return try SecretBytes(count: X25519.keyLength) { out in
                let rc = secretKey.withUnsafeBytes { s in
                    peer.bytes.withUnsafeBufferPointer { p in
                        crypto_scalarmult(out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                          s.baseAddress!.assumingMemoryBound(to: UInt8.self), p.baseAddress!)
                    }
                }
                guard rc == 0 else { throw SodiumError(.invalidPublicKey, "X25519 with a low-order public key") }
            }
        }
    }
}
