import Sodium

/// The one error type of the Noise module, compared by code.
///
/// Errors from reading a handshake message are fatal to that handshake (Noise §5.3 leaves
/// error recovery to the application; we choose to abort): every later call on the same
/// `HandshakeState` throws `.handshakeFailed`.
public struct NoiseError: CodedError {
    public enum Code: Hashable, Sendable {
        /// An AEAD tag did not verify: the message was altered, or the keys do not match.
        case authenticationFailed
        /// A message is too short for what the pattern says it carries (truncated), or a
        /// key or pre-shared key has the wrong length.
        case invalidLength
        /// A message (or a plaintext that would make one) exceeds 65535 bytes (Noise §3).
        case messageTooLong
        /// `writeMessage` when it is the peer's turn, `readMessage` when it is ours, any
        /// message after the handshake completed, or `split` before it completed.
        case outOfTurn
        /// The handshake already failed; it cannot be continued.
        case handshakeFailed
        /// The pattern needs a key (local static, remote static, pre-shared key, or a
        /// cipher key for an explicit-nonce operation) that was not supplied.
        case missingKey
        /// A Diffie-Hellman with the remote's public key gave all zeros (a low-order point).
        case invalidPublicKey
        /// The nonce reached 2^64-1, which Noise reserves (§5.1): rekey or start over.
        case nonceExhausted
    }

    public let code: Code
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}
