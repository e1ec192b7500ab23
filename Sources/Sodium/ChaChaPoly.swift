import CSodium

/// ChaCha20-Poly1305, IETF variant (RFC 8439), through libsodium's
/// `crypto_aead_chacha20poly1305_ietf_*`.
public enum ChaChaPoly {
    public static let keyLength = Int(crypto_aead_chacha20poly1305_ietf_KEYBYTES)    // 32
    public static let nonceLength = Int(crypto_aead_chacha20poly1305_ietf_NPUBBYTES) // 12
    public static let tagLength = Int(crypto_aead_chacha20poly1305_ietf_ABYTES)      // 16

    /// The nonce Noise uses for ChaChaPoly (Noise spec §12.3): 32 bits of zeros followed by
    /// the 64-bit counter, little-endian.
    /// Three 32-bit words so the 12 bytes are contiguous with no padding.
    @inline(__always)
    static func noiseNonce(_ counter: UInt64) -> (UInt32, UInt32, UInt32) {
        (0, UInt32(truncatingIfNeeded: counter).littleEndian, UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
    }

    /// Encrypt `plaintext` into `output` (which must hold `plaintext.count + tagLength`
    /// bytes) with the Noise nonce for `counter`. Returns the number of bytes written.
    @discardableResult
    public static func seal(key: SecretBytes, counter: UInt64, associatedData: UnsafeRawBufferPointer,
                            plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        _ = Sodium.ready
        precondition(key.count == keyLength, "ChaChaPoly key must be 32 bytes")
        precondition(output.count >= plaintext.count + tagLength, "output too small for ciphertext")
        var nonce = noiseNonce(counter)
        var written: UInt64 = 0
        withUnsafeBytes(of: &nonce) { n in
            key.withUnsafeBytes { k in
                _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                    output.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyByte, UInt64(plaintext.count),
                    associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                    nil,
                    n.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return Int(written)
    }

    /// Decrypt and authenticate `ciphertext` (tag included) into `output` (which must hold
    /// `ciphertext.count - tagLength` bytes). Returns the plaintext length.
    @discardableResult
    public static func open(key: SecretBytes, counter: UInt64, associatedData: UnsafeRawBufferPointer,
                            ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        _ = Sodium.ready
        precondition(key.count == keyLength, "ChaChaPoly key must be 32 bytes")
        guard ciphertext.count >= tagLength else {
            throw SodiumError(.invalidLength, "ciphertext shorter than the 16-byte tag")
        }
        precondition(output.count >= ciphertext.count - tagLength, "output too small for plaintext")
        var nonce = noiseNonce(counter)
        var written: UInt64 = 0
        // libsodium needs a non-nil output pointer even for an empty plaintext.
        var scratch: UInt8 = 0
        let rc = withUnsafeMutableBytes(of: &scratch) { scratchBuffer in
            withUnsafeBytes(of: &nonce) { n in
                key.withUnsafeBytes { k in
                    crypto_aead_chacha20poly1305_ietf_decrypt(
                        (output.baseAddress ?? scratchBuffer.baseAddress!).assumingMemoryBound(to: UInt8.self),
                        &written, nil,
                        ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                        associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                        n.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        guard rc == 0 else { throw SodiumError(.authenticationFailed, "ChaCha20-Poly1305 tag mismatch") }
        return Int(written)
    }

    public static func seal(key: SecretBytes, counter: UInt64, associatedData: [UInt8], plaintext: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        out.withUnsafeMutableBytes { o in
            associatedData.withUnsafeBytes { a in
                plaintext.withUnsafeBytes { p in
                    _ = seal(key: key, counter: counter, associatedData: a, plaintext: p, into: o)
                }
            }
        }
        return out
    }

    public static func open(key: SecretBytes, counter: UInt64, associatedData: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        guard ciphertext.count >= tagLength else {
            throw SodiumError(.invalidLength, "ciphertext shorter than the 16-byte tag")
        }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        try out.withUnsafeMutableBytes { o in
            try associatedData.withUnsafeBytes { a in
                try ciphertext.withUnsafeBytes { c in
                    _ = try open(key: key, counter: counter, associatedData: a, ciphertext: c, into: o)
                }
            }
        }
        return out
    }
}
