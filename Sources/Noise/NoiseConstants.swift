/// Sizes fixed by the Noise specification (revision 34) for the one suite Bookswarm speaks,
/// `25519_ChaChaPoly_BLAKE2b`.
public enum NoiseConstants {
    /// §3: every Noise message, handshake or transport, is at most 65535 bytes.
    public static let maxMessageLength = 65535
    /// §12.1: DHLEN for Curve25519.
    public static let dhLength = 32
    /// §12.8: HASHLEN for BLAKE2b.
    public static let hashLength = 64
    /// §5.1: cipher keys are 32 bytes; HKDF outputs are truncated to this.
    public static let keyLength = 32
    /// §5: the AEAD tag added to every encrypted message.
    public static let tagLength = 16
    /// §5.1: the nonce 2^64-1 is reserved (it is the one REKEY uses).
    public static let maxNonce = UInt64.max
    /// §9.1: pre-shared keys are 32 bytes.
    public static let pskLength = 32
}
