/// The one error type of the Sodium module, compared by code.
public struct SodiumError: CodedError {
    public enum Code: Hashable, Sendable {
        /// An input had the wrong number of bytes.
        case invalidLength
        /// AEAD authentication failed: the ciphertext, the key, the nonce or the associated data is wrong.
        case authenticationFailed
        /// A public key is not a valid point, or a Diffie-Hellman result was all zeros.
        case invalidPublicKey
        /// A libsodium primitive returned an error it is not documented to return for valid input.
        case primitiveFailed
    }

    public let code: Code
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}

@inline(__always)
func requireLength<C: Collection>(_ bytes: C, _ expected: Int, _ what: StaticString) throws {
    guard bytes.count == expected else {
        throw SodiumError(.invalidLength, "\(what) must be \(expected) bytes, got \(bytes.count)")
    }
}
