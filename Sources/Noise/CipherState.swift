import Sodium

/// Noise §5.1 CipherState: a cipher key `k` (or none) and a 64-bit nonce `n`.
///
/// After the handshake, `split()` yields one per direction for transport messages. With no
/// key, encryption is the identity, as the specification requires for the first handshake
/// messages. The explicit-nonce operations (§11.4, for transports that may reorder, such as
/// UDP) do not touch `nonce` and require a key.
public struct CipherState: Sendable {
    public private(set) var key: SecretBytes?
    public var nonce: UInt64

    public init(key: SecretBytes?) {
        precondition(key.map { $0.count == NoiseConstants.keyLength } ?? true, "a Noise cipher key is 32 bytes")
        self.key = key
        nonce = 0
    }

    public var hasKey: Bool { key != nil }

    /// The ciphertext length for a plaintext of `count` bytes under this state.
    public func ciphertextLength(forPlaintextCount count: Int) -> Int {
        hasKey ? count + NoiseConstants.tagLength : count
    }

    // MARK: EncryptWithAd / DecryptWithAd (§5.1), with the state's own nonce

    public mutating func encrypt(associatedData: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        guard let key else {
            try Self.checkLength(plaintext.count)
            return plaintext
        }
        try checkNonceAvailable()
        let out = try Self.seal(key: key, nonce: nonce, associatedData: associatedData, plaintext: plaintext)
        nonce += 1
        return out
    }

    public mutating func decrypt(associatedData: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        guard let key else {
            try Self.checkLength(ciphertext.count)
            return ciphertext
        }
        try checkNonceAvailable()
        // §5.1: on an authentication failure n is not incremented.
        let out = try Self.open(key: key, nonce: nonce, associatedData: associatedData, ciphertext: ciphertext)
        nonce += 1
        return out
    }

    /// Encrypts into `output` (at least `plaintext.count + 16` bytes); returns the bytes written.
    public mutating func encrypt(associatedData: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
                                 into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let key = try requireKey()
        try checkNonceAvailable()
        let written = try Self.seal(key: key, nonce: nonce, associatedData: associatedData, plaintext: plaintext, into: output)
        nonce += 1
        return written
    }

    /// Decrypts into `output` (at least `ciphertext.count - 16` bytes); returns the plaintext length.
    public mutating func decrypt(associatedData: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer,
                                 into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let key = try requireKey()
        try checkNonceAvailable()
        let written = try Self.open(key: key, nonce: nonce, associatedData: associatedData, ciphertext: ciphertext, into: output)
        nonce += 1
        return written
    }

    // MARK: Explicit nonces (§11.4)

    public func encrypt(nonce: UInt64, associatedData: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        let key = try requireKey()
        try Self.checkNonce(nonce)
        return try Self.seal(key: key, nonce: nonce, associatedData: associatedData, plaintext: plaintext)
    }

    public func decrypt(nonce: UInt64, associatedData: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        let key = try requireKey()
        try Self.checkNonce(nonce)
        return try Self.open(key: key, nonce: nonce, associatedData: associatedData, ciphertext: ciphertext)
    }

    public func encrypt(nonce: UInt64, associatedData: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
                        into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let key = try requireKey()
        try Self.checkNonce(nonce)
        return try Self.seal(key: key, nonce: nonce, associatedData: associatedData, plaintext: plaintext, into: output)
    }

    public func decrypt(nonce: UInt64, associatedData: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer,
                        into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let key = try requireKey()
        try Self.checkNonce(nonce)
        return try Self.open(key: key, nonce: nonce, associatedData: associatedData, ciphertext: ciphertext, into: output)
    }

    // MARK: Rekey (§4.2, §11.3)

    /// `k = REKEY(k)`: the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes).
    /// The nonce is left as it is, as the specification says.
    public mutating func rekey() {
        guard let key else { preconditionFailure("rekey() on a CipherState without a key") }
        let zeros = [UInt8](repeating: 0, count: NoiseConstants.keyLength)
        var sealed = [UInt8](repeating: 0, count: NoiseConstants.keyLength + NoiseConstants.tagLength)
        defer { secureZero(&sealed) }
        sealed.withUnsafeMutableBytes { out in
            zeros.withUnsafeBytes { pt in
                _ = ChaChaPoly.seal(key: key, counter: NoiseConstants.maxNonce, associatedData: UnsafeRawBufferPointer(start: nil, count: 0),
                                    plaintext: pt, into: out)
            }
        }
        self.key = sealed.withUnsafeBytes { s in
            SecretBytes(count: NoiseConstants.keyLength) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: s[0..<NoiseConstants.keyLength])) }
        }
    }

    // MARK: Checks and the AEAD itself

    private func requireKey() throws -> SecretBytes {
        guard let key else { throw NoiseError(.missingKey, "CipherState has no key") }
        return key
    }

    private func checkNonceAvailable() throws {
        try Self.checkNonce(nonce)
    }

    private static func checkNonce(_ n: UInt64) throws {
        guard n != NoiseConstants.maxNonce else {
            throw NoiseError(.nonceExhausted, "nonce 2^64-1 is reserved (Noise §5.1)")
        }
    }

    private static func checkLength(_ messageCount: Int) throws {
        guard messageCount <= NoiseConstants.maxMessageLength else {
            throw NoiseError(.messageTooLong, "\(messageCount) bytes exceeds the 65535-byte Noise message limit")
        }
    }

    private static func seal(key: SecretBytes, nonce: UInt64, associatedData: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        try checkLength(plaintext.count + NoiseConstants.tagLength)
        var out = [UInt8](repeating: 0, count: plaintext.count + NoiseConstants.tagLength)
        out.withUnsafeMutableBytes { o in
            associatedData.withUnsafeBytes { a in
                plaintext.withUnsafeBytes { p in
                    _ = ChaChaPoly.seal(key: key, counter: nonce, associatedData: a, plaintext: p, into: o)
                }
            }
        }
        return out
    }

    private static func open(key: SecretBytes, nonce: UInt64, associatedData: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        try checkLength(ciphertext.count)
        guard ciphertext.count >= NoiseConstants.tagLength else {
            throw NoiseError(.invalidLength, "ciphertext of \(ciphertext.count) bytes is shorter than the 16-byte tag")
        }
        var out = [UInt8](repeating: 0, count: ciphertext.count - NoiseConstants.tagLength)
        let ok = out.withUnsafeMutableBytes { o in
            associatedData.withUnsafeBytes { a in
                ciphertext.withUnsafeBytes { c in
                    (try? ChaChaPoly.open(key: key, counter: nonce, associatedData: a, ciphertext: c, into: o)) != nil
                }
            }
        }
        guard ok else { throw NoiseError(.authenticationFailed, "AEAD tag mismatch") }
        return out
    }

    private static func seal(key: SecretBytes, nonce: UInt64, associatedData: UnsafeRawBufferPointer,
                             plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        try checkLength(plaintext.count + NoiseConstants.tagLength)
        precondition(output.count >= plaintext.count + NoiseConstants.tagLength, "output buffer too small")
        return ChaChaPoly.seal(key: key, counter: nonce, associatedData: associatedData, plaintext: plaintext, into: output)
    }

    private static func open(key: SecretBytes, nonce: UInt64, associatedData: UnsafeRawBufferPointer,
                             ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        try checkLength(ciphertext.count)
        guard ciphertext.count >= NoiseConstants.tagLength else {
            throw NoiseError(.invalidLength, "ciphertext of \(ciphertext.count) bytes is shorter than the 16-byte tag")
        }
        precondition(output.count >= ciphertext.count - NoiseConstants.tagLength, "output buffer too small")
        do {
            return try ChaChaPoly.open(key: key, counter: nonce, associatedData: associatedData, ciphertext: ciphertext, into: output)
        } catch {
            throw NoiseError(.authenticationFailed, "AEAD tag mismatch")
        }
    }
}
