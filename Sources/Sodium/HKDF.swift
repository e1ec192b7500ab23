/// HMAC-BLAKE2b and HKDF exactly as the Noise Protocol Framework (revision 34) composes them:
/// §4.3 `HMAC-HASH` with HASHLEN = 64 and BLOCKLEN = 128 (RFC 2104), and `HKDF(chaining_key,
/// input_key_material, num_outputs)` (RFC 5869 with an empty `info`, outputs of HASHLEN).
public enum HMACBLAKE2b {
    public static let outputLength = BLAKE2b.maxOutputLength  // HASHLEN
    static let blockLength = BLAKE2b.blockLength              // BLOCKLEN

    /// HMAC-HASH(key, data), with `data` given as a list of parts that are concatenated.
    public static func authenticate(key: UnsafeRawBufferPointer, data parts: [UnsafeRawBufferPointer]) -> SecretBytes {
        // RFC 2104: keys longer than the block are hashed first; shorter keys are zero-padded.
        var block = [UInt8](repeating: 0, count: blockLength)
        defer { secureZero(&block) }
        if key.count > blockLength {
            var digest = BLAKE2b.hash(key)
            block.replaceSubrange(0..<digest.count, with: digest)
            secureZero(&digest)
        } else if key.count > 0 {
            block.replaceSubrange(0..<key.count, with: key)
        }
        var pad = [UInt8](repeating: 0, count: blockLength)
        defer { secureZero(&pad) }

        for i in 0..<blockLength { pad[i] = block[i] ^ 0x36 }
        var inner = BLAKE2b()
        inner.update(pad)
        for part in parts { inner.update(part) }
        var innerDigest = inner.finalize()
        defer { secureZero(&innerDigest) }

        for i in 0..<blockLength { pad[i] = block[i] ^ 0x5c }
        var outer = BLAKE2b()
        outer.update(pad)
        outer.update(innerDigest)
        return SecretBytes(count: outputLength) { outer.finalize(into: $0) }
    }

    public static func authenticate(key: [UInt8], data: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in data.withUnsafeBytes { d in authenticate(key: k, data: [d]).unsafeArray } }
    }
}

public enum NoiseHKDF {
    /// HKDF(chaining_key, input_key_material, num_outputs) of Noise §4.3, for 2 or 3 outputs.
    public static func derive(chainingKey: SecretBytes, inputKeyMaterial: UnsafeRawBufferPointer, outputs: Int) -> [SecretBytes] {
        precondition(outputs == 2 || outputs == 3, "Noise HKDF gives 2 or 3 outputs")
        let tempKey = chainingKey.withUnsafeBytes { ck in
            HMACBLAKE2b.authenticate(key: ck, data: [inputKeyMaterial])
        }
        var results: [SecretBytes] = []
        results.reserveCapacity(outputs)
        var counter: UInt8 = 1
        tempKey.withUnsafeBytes { tk in
            for _ in 0..<outputs {
                let output: SecretBytes = withUnsafeBytes(of: &counter) { c in
                    if let previous = results.last {
                        return previous.withUnsafeBytes { HMACBLAKE2b.authenticate(key: tk, data: [$0, c]) }
                    }
                    return HMACBLAKE2b.authenticate(key: tk, data: [c])
                }
                results.append(output)
                counter += 1
            }
        }
        return results
    }

    public static func derive(chainingKey: SecretBytes, inputKeyMaterial: [UInt8], outputs: Int) -> [SecretBytes] {
        inputKeyMaterial.withUnsafeBytes { derive(chainingKey: chainingKey, inputKeyMaterial: $0, outputs: outputs) }
    }
}
