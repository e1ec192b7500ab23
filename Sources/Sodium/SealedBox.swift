import CSodium

/// A message for one recipient's X25519 key that only that key opens, from nobody in
/// particular: libsodium's sealed box (`crypto_box_seal`: an ephemeral X25519 key, the
/// shared secret, XSalsa20-Poly1305; the sender cannot open it afterwards either). A peer's
/// X25519 key is the one of its Ed25519 identity (`Ed25519.PublicKey.x25519()`).
public enum SealedBox {
    /// What sealing adds to the message: the ephemeral public key and the tag.
    public static let overhead = Int(crypto_box_sealbytes())  // 48

    public static func seal(_ message: [UInt8], to recipient: X25519.PublicKey) -> [UInt8] {
        _ = Sodium.ready
        var sealed = [UInt8](repeating: 0, count: message.count + overhead)
        let rc = sealed.withUnsafeMutableBufferPointer { out in
            message.withUnsafeBufferPointer { m in
                recipient.bytes.withUnsafeBufferPointer { pk in
                    crypto_box_seal(out.baseAddress!, m.baseAddress ?? emptyByte, UInt64(m.count), pk.baseAddress!)
                }
            }
        }
        precondition(rc == 0, "crypto_box_seal failed")
        return sealed
    }

    /// The message, if `sealed` was sealed to `recipient`'s public key and not changed since.
    public static func open(_ sealed: [UInt8], with recipient: X25519.KeyPair) throws -> [UInt8] {
        _ = Sodium.ready
        guard sealed.count >= overhead else {
            throw SodiumError(.invalidLength, "a sealed box holds at least \(overhead) bytes, got \(sealed.count)")
        }
        var message = [UInt8](repeating: 0, count: sealed.count - overhead)
        let rc = message.withUnsafeMutableBufferPointer { out in
            sealed.withUnsafeBufferPointer { c in
                recipient.publicKey.bytes.withUnsafeBufferPointer { pk in
                    recipient.secretKey.withUnsafeBytes { sk in
                        crypto_box_seal_open(out.baseAddress ?? UnsafeMutablePointer(mutating: emptyByte), c.baseAddress!, UInt64(c.count),
                                             pk.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
        }
        guard rc == 0 else { throw SodiumError(.authenticationFailed, "the sealed box does not open with this key") }
        return message
    }
}
