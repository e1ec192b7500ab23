import Sodium

/// Noise §5.2 SymmetricState: the chaining key `ck`, the handshake hash `h`, and the
/// CipherState that handshake payloads and static keys are encrypted with.
///
/// HASH is BLAKE2b (HASHLEN 64) and HKDF is the §4.3 construction over HMAC-BLAKE2b; both
/// come from the Sodium module.
public struct SymmetricState: Sendable {
    public private(set) var cipherState: CipherState
    public private(set) var chainingKey: SecretBytes
    /// `h`. Not secret (both parties and any channel-binding check see it), so a plain array.
    public private(set) var handshakeHash: [UInt8]

    /// InitializeSymmetric(protocol_name).
    public init(protocolName: String) {
        let name = Array(protocolName.utf8)
        if name.count <= NoiseConstants.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: NoiseConstants.hashLength - name.count)
        } else {
            handshakeHash = BLAKE2b.hash(name)
        }
        chainingKey = SecretBytes(copying: handshakeHash)
        cipherState = CipherState(key: nil)
    }

    /// MixKey(input_key_material).
    public mutating func mixKey(_ inputKeyMaterial: UnsafeRawBufferPointer) {
        let outputs = NoiseHKDF.derive(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputs: 2)
        chainingKey = outputs[0]
        cipherState = CipherState(key: Self.truncatedKey(outputs[1]))
    }

    public mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        inputKeyMaterial.withUnsafeBytes { mixKey($0) }
    }

    public mutating func mixKey(_ inputKeyMaterial: SecretBytes) {
        inputKeyMaterial.withUnsafeBytes { mixKey($0) }
    }

    /// MixHash(data): h = HASH(h ‖ data).
    public mutating func mixHash(_ data: UnsafeRawBufferPointer) {
        var hasher = BLAKE2b()
        hasher.update(handshakeHash)
        hasher.update(data)
        handshakeHash.withUnsafeMutableBytes { hasher.finalize(into: $0) }
    }

    public mutating func mixHash(_ data: [UInt8]) {
        data.withUnsafeBytes { mixHash($0) }
    }

    /// MixKeyAndHash(input_key_material), used for "psk" tokens.
    public mutating func mixKeyAndHash(_ inputKeyMaterial: SecretBytes) {
        let outputs = inputKeyMaterial.withUnsafeBytes {
            NoiseHKDF.derive(chainingKey: chainingKey, inputKeyMaterial: $0, outputs: 3)
        }
        chainingKey = outputs[0]
        outputs[1].withUnsafeBytes { mixHash($0) }
        cipherState = CipherState(key: Self.truncatedKey(outputs[2]))
    }

    /// EncryptAndHash(plaintext).
    public mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        let ciphertext = try cipherState.encrypt(associatedData: handshakeHash, plaintext: plaintext)
        mixHash(ciphertext)
        return ciphertext
    }

    /// DecryptAndHash(ciphertext).
    public mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        let plaintext = try cipherState.decrypt(associatedData: handshakeHash, ciphertext: ciphertext)
        mixHash(ciphertext)
        return plaintext
    }

    /// Split(): the two transport CipherStates, initiator→responder first.
    public func split() -> (CipherState, CipherState) {
        let outputs = NoiseHKDF.derive(chainingKey: chainingKey, inputKeyMaterial: [], outputs: 2)
        return (CipherState(key: Self.truncatedKey(outputs[0])), CipherState(key: Self.truncatedKey(outputs[1])))
    }

    /// §5.2: with HASHLEN 64, HKDF outputs used as cipher keys are truncated to 32 bytes.
    private static func truncatedKey(_ output: SecretBytes) -> SecretBytes {
        output.withUnsafeBytes { o in
            SecretBytes(count: NoiseConstants.keyLength) {
                $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: o[0..<NoiseConstants.keyLength]))
            }
        }
    }
}
