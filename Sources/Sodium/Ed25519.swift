import CSodium

/// Ed25519 signatures (RFC 8032), through libsodium's `crypto_sign_*`.
public enum Ed25519 {
    public static let publicKeyLength = Int(crypto_sign_PUBLICKEYBYTES)   // 32
    public static let secretKeyLength = Int(crypto_sign_SECRETKEYBYTES)   // 64 (seed ‖ public key)
    public static let seedLength = Int(crypto_sign_SEEDBYTES)             // 32
    public static let signatureLength = Int(crypto_sign_BYTES)            // 64

    /// An Ed25519 public key: a peer id or a book id.
    public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
        public let bytes: [UInt8]

        public init(bytes: [UInt8]) throws {
            try requireLength(bytes, Ed25519.publicKeyLength, "an Ed25519 public key")
            self.bytes = bytes
        }

        /// True when `signature` is a valid signature of `message` by this key.
        public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
            message.withUnsafeBytes { isValidSignature(signature, for: $0) }
        }

        public func isValidSignature(_ signature: [UInt8], for message: UnsafeRawBufferPointer) -> Bool {
            _ = Sodium.ready
            guard signature.count == Ed25519.signatureLength else { return false }
            return signature.withUnsafeBufferPointer { sig in
                bytes.withUnsafeBufferPointer { pk in
                    crypto_sign_verify_detached(
                        sig.baseAddress!,
                        message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyByte,
                        UInt64(message.count), pk.baseAddress!) == 0
                }
            }
        }

        /// The X25519 public key of the same curve point (birational map), as used for the
        /// Noise static key of a peer. Fails for points that have no X25519 counterpart.
        public func x25519() throws -> X25519.PublicKey {
            _ = Sodium.ready
            var out = [UInt8](repeating: 0, count: X25519.keyLength)
            let rc = out.withUnsafeMutableBufferPointer { o in
                bytes.withUnsafeBufferPointer { crypto_sign_ed25519_pk_to_curve25519(o.baseAddress!, $0.baseAddress!) }
            }
            guard rc == 0 else { throw SodiumError(.invalidPublicKey, "Ed25519 public key has no X25519 form") }
            return try X25519.PublicKey(bytes: out)
        }

        public var hex: String { bytes.hexString }
        public var description: String { hex }
    }

    /// An Ed25519 key pair. The secret half is zeroed when released.
    public struct KeyPair: Sendable {
        public let publicKey: PublicKey
        /// libsodium's 64-byte secret key: seed ‖ public key.
        public let secretKey: SecretBytes

        /// A fresh random key pair.
        public static func generate() -> KeyPair {
            try! KeyPair(seed: SecretBytes(randomCount: Ed25519.seedLength))
        }

        /// The key pair deterministically derived from a 32-byte seed.
        public init(seed: SecretBytes) throws {
            _ = Sodium.ready
            try requireLength(0..<seed.count, Ed25519.seedLength, "an Ed25519 seed")
            var pk = [UInt8](repeating: 0, count: Ed25519.publicKeyLength)
            secretKey = SecretBytes(count: Ed25519.secretKeyLength) { sk in
                seed.withUnsafeBytes { s in
                    pk.withUnsafeMutableBufferPointer { p in
                        _ = crypto_sign_seed_keypair(p.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            publicKey = try PublicKey(bytes: pk)
        }

        /// Restore from libsodium's 64-byte secret key (seed ‖ public key).
        public init(secretKey: SecretBytes) throws {
            try requireLength(0..<secretKey.count, Ed25519.secretKeyLength, "an Ed25519 secret key")
            self.secretKey = secretKey
            publicKey = try PublicKey(bytes: secretKey.withUnsafeBytes { Array($0[32..<64]) })
        }

        /// The 32-byte seed this key pair comes from.
        public var seed: SecretBytes {
            secretKey.withUnsafeBytes { sk in
                SecretBytes(count: Ed25519.seedLength) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: sk[0..<32])) }
            }
        }

        public func sign(_ message: [UInt8]) -> [UInt8] {
            message.withUnsafeBytes { sign($0) }
        }

        public func sign(_ message: UnsafeRawBufferPointer) -> [UInt8] {
            _ = Sodium.ready
            var sig = [UInt8](repeating: 0, count: Ed25519.signatureLength)
            sig.withUnsafeMutableBufferPointer { s in
                secretKey.withUnsafeBytes { sk in
                    _ = crypto_sign_detached(
                        s.baseAddress!, nil,
                        message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyByte,
                        UInt64(message.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            return sig
        }

        /// The X25519 key pair of the same identity (`crypto_sign_ed25519_*_to_curve25519`):
        /// a peer's Noise static key.
        public func x25519() throws -> X25519.KeyPair {
            _ = Sodium.ready
            let secret = try secretKey.withUnsafeBytes { sk in
                try SecretBytes(count: X25519.keyLength) { out in
                    let rc = crypto_sign_ed25519_sk_to_curve25519(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    guard rc == 0 else { throw SodiumError(.primitiveFailed, "Ed25519 secret key to X25519 failed") }
                }
            }
            return try X25519.KeyPair(secretKey: secret)
        }
    }
}

/// A valid pointer for empty messages: libsodium accepts any pointer when the length is 0,
/// but Swift gives a nil base address for an empty buffer.
nonisolated(unsafe) let emptyByte: UnsafePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    p.initialize(to: 0)
    return UnsafePointer(p)
}()
