import Sodium

/// Noise §5.3 HandshakeState for `Noise_<pattern>_25519_ChaChaPoly_BLAKE2b`.
///
/// The flow: both sides initialise with the same pattern and prologue; the initiator calls
/// `writeMessage`, the responder `readMessage` on those bytes, and so on, alternating, until
/// `isComplete`; then `split()` gives each side its transport CipherStates, already oriented
/// (send, receive). A value type with no I/O: the caller moves the bytes.
///
/// Ephemeral keys can be injected (tests, vectors); when none is given, `writeMessage`
/// draws one from libsodium's CSPRNG at the `e` token, which is the only randomness used.
///
/// Failure is final: once reading or writing a message throws, every later call throws
/// `.handshakeFailed`, so a party can never continue from a state an attacker influenced.
/// Calls out of turn throw `.outOfTurn` without changing anything (a duplicated datagram
/// must not kill a live handshake), and so does a payload too long to fit in a message.
public struct HandshakeState: Sendable {
    private enum State: Sendable {
        /// Waiting for message `index` of the pattern, to be written or read.
        case inProgress(index: Int)
        case complete
        case failed
    }

    public let pattern: NoisePattern
    public let isInitiator: Bool
    private var symmetric: SymmetricState
    private var state: State
    private let localStatic: X25519.KeyPair?
    private var localEphemeral: X25519.KeyPair?
    private var remoteStatic: X25519.PublicKey?
    private var remoteEphemeral: X25519.PublicKey?
    private let presharedKeys: [SecretBytes]
    private var presharedKeyIndex = 0

    /// Initialize(handshake_pattern, initiator, prologue, s, e, rs, re) of §5.3, plus the
    /// pre-shared keys in the order the pattern's `psk` tokens use them.
    public init(pattern: NoisePattern, initiator: Bool, prologue: [UInt8], localStatic: X25519.KeyPair?,
                localEphemeral: X25519.KeyPair? = nil, remoteStatic: X25519.PublicKey? = nil,
                remoteEphemeral: X25519.PublicKey? = nil, presharedKeys: [SecretBytes] = []) throws {
        self.pattern = pattern
        isInitiator = initiator
        self.localStatic = localStatic
        self.localEphemeral = localEphemeral
        self.remoteStatic = remoteStatic
        self.remoteEphemeral = remoteEphemeral
        self.presharedKeys = presharedKeys
        state = .inProgress(index: 0)
        symmetric = SymmetricState(protocolName: Self.protocolName(pattern))

        try Self.checkKeys(pattern: pattern, initiator: initiator, localStatic: localStatic, localEphemeral: localEphemeral,
                           remoteStatic: remoteStatic, remoteEphemeral: remoteEphemeral, presharedKeys: presharedKeys)

        symmetric.mixHash(prologue)
        // §7.1: the initiator's pre-message keys are hashed first, then the responder's.
        let ownPre = initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage
        let remotePre = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage
        for (tokens, local) in initiator ? [(ownPre, true), (remotePre, false)] : [(remotePre, false), (ownPre, true)] {
            for token in tokens {
                let key: [UInt8]
                switch token {
                case .s: key = local ? localStatic!.publicKey.bytes : remoteStatic!.bytes
                case .e: key = local ? localEphemeral!.publicKey.bytes : remoteEphemeral!.bytes
                case .ee, .es, .se, .ss, .psk: preconditionFailure("NoisePattern admits only e and s in pre-messages")
                }
                symmetric.mixHash(key)
                // §9.2: in a PSK handshake an ephemeral public key is also mixed into the key.
                if token == .e && pattern.usesPresharedKeys { symmetric.mixKey(key) }
            }
        }
    }

    /// `Noise_<pattern>_25519_ChaChaPoly_BLAKE2b` (§8).
    public static func protocolName(_ pattern: NoisePattern) -> String {
        "Noise_\(pattern.name)_25519_ChaChaPoly_BLAKE2b"
    }

    // MARK: State

    /// True once every message of the pattern has been written or read.
    public var isComplete: Bool {
        switch state {
        case .complete: return true
        case .inProgress, .failed: return false
        }
    }

    /// True when a message failed: the handshake cannot be continued.
    public var hasFailed: Bool {
        switch state {
        case .failed: return true
        case .inProgress, .complete: return false
        }
    }

    /// True when the next message of the pattern is this side's to write.
    public var isMyTurnToWrite: Bool {
        switch state {
        case .inProgress(let index): return (index % 2 == 0) == isInitiator
        case .complete, .failed: return false
        }
    }

    /// True when the next message of the pattern is this side's to read.
    public var isMyTurnToRead: Bool {
        switch state {
        case .inProgress(let index): return (index % 2 == 0) != isInitiator
        case .complete, .failed: return false
        }
    }

    /// `h`: after the handshake, a unique 64-byte identifier of this session (§11.2).
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    /// The remote party's static key, once known (from a pre-message or a handshake message).
    public var remoteStaticKey: X25519.PublicKey? { remoteStatic }

    /// The local ephemeral public key, once generated or injected.
    public var localEphemeralKey: X25519.PublicKey? { localEphemeral?.publicKey }

    // MARK: Messages

    /// WriteMessage(payload, message_buffer) of §5.3: returns the handshake message.
    public mutating func writeMessage(payload: [UInt8]) throws -> [UInt8] {
        let index = try messageIndex(writing: true)
        let tokens = pattern.messages[index]
        let length = messageLength(tokens: tokens, payloadCount: payload.count)
        guard length <= NoiseConstants.maxMessageLength else {
            throw NoiseError(.messageTooLong, "handshake message of \(length) bytes exceeds 65535 (Noise §3)")
        }
        do {
            var message: [UInt8] = []
            message.reserveCapacity(length)
            for token in tokens {
                switch token {
                case .e:
                    let ephemeral = localEphemeral ?? X25519.KeyPair.generate()
                    localEphemeral = ephemeral
                    message += ephemeral.publicKey.bytes
                    symmetric.mixHash(ephemeral.publicKey.bytes)
                    if pattern.usesPresharedKeys { symmetric.mixKey(ephemeral.publicKey.bytes) }
                case .s:
                    message += try symmetric.encryptAndHash(localStatic!.publicKey.bytes)
                case .ee, .es, .se, .ss:
                    try mixDiffieHellman(token)
                case .psk:
                    mixPresharedKey()
                }
            }
            message += try symmetric.encryptAndHash(payload)
            advance(after: index)
            return message
        } catch let error as NoiseError {
            state = .failed
            throw error
        }
    }

    /// ReadMessage(message, payload_buffer) of §5.3: returns the payload.
    public mutating func readMessage(_ message: [UInt8]) throws -> [UInt8] {
        let index = try messageIndex(writing: false)
        do {
            guard message.count <= NoiseConstants.maxMessageLength else {
                throw NoiseError(.messageTooLong, "handshake message of \(message.count) bytes exceeds 65535 (Noise §3)")
            }
            var offset = 0
            func take(_ count: Int, _ what: StaticString) throws -> [UInt8] {
                guard message.count - offset >= count else {
                    throw NoiseError(.invalidLength, "message \(index) truncated: \(what) needs \(count) bytes, \(message.count - offset) left")
                }
                defer { offset += count }
                return Array(message[offset..<(offset + count)])
            }
            for token in pattern.messages[index] {
                switch token {
                case .e:
                    let key = try take(NoiseConstants.dhLength, "ephemeral key")
                    remoteEphemeral = try X25519.PublicKey(bytes: key)
                    symmetric.mixHash(key)
                    if pattern.usesPresharedKeys { symmetric.mixKey(key) }
                case .s:
                    let sealed = try take(symmetric.cipherState.ciphertextLength(forPlaintextCount: NoiseConstants.dhLength), "static key")
                    remoteStatic = try X25519.PublicKey(bytes: symmetric.decryptAndHash(sealed))
                case .ee, .es, .se, .ss:
                    try mixDiffieHellman(token)
                case .psk:
                    mixPresharedKey()
                }
            }
            let payload = try symmetric.decryptAndHash(Array(message[offset...]))
            advance(after: index)
            return payload
        } catch let error as NoiseError {
            state = .failed
            throw error
        } catch {
            // X25519.PublicKey(bytes:) only fails on a length we already checked.
            state = .failed
            throw NoiseError(.invalidLength, "\(error)")
        }
    }

    /// Split() of §5.2, oriented for this side: the initiator sends with the first key.
    /// For one-way patterns only the initiator's `send` and the responder's `receive` are used.
    public func split() throws -> (send: CipherState, receive: CipherState) {
        switch state {
        case .failed: throw NoiseError(.handshakeFailed, "the handshake failed; no transport keys")
        case .inProgress(let index): throw NoiseError(.outOfTurn, "split() before the handshake completed (next message \(index))")
        case .complete:
            let (initiatorToResponder, responderToInitiator) = symmetric.split()
            return isInitiator ? (initiatorToResponder, responderToInitiator) : (responderToInitiator, initiatorToResponder)
        }
    }

    // MARK: Helpers

    private func messageIndex(writing: Bool) throws -> Int {
        switch state {
        case .failed:
            throw NoiseError(.handshakeFailed, "the handshake already failed and cannot be continued")
        case .complete:
            throw NoiseError(.outOfTurn, "the handshake is complete; use the transport CipherStates")
        case .inProgress(let index):
            let initiatorsMessage = index % 2 == 0
            guard initiatorsMessage == (isInitiator == writing) else {
                throw NoiseError(.outOfTurn, "message \(index) is the \(initiatorsMessage ? "initiator" : "responder")'s to write")
            }
            return index
        }
    }

    private mutating func advance(after index: Int) {
        state = index + 1 == pattern.messages.count ? .complete : .inProgress(index: index + 1)
    }

    /// The length of the message `tokens` make with a payload of `payloadCount` bytes, given
    /// whether a key is (or becomes) available for each encrypted part.
    private func messageLength(tokens: [NoisePattern.Token], payloadCount: Int) -> Int {
        var hasKey = symmetric.cipherState.hasKey
        var length = 0
        for token in tokens {
            switch token {
            case .e:
                length += NoiseConstants.dhLength
                if pattern.usesPresharedKeys { hasKey = true }
            case .s:
                length += NoiseConstants.dhLength + (hasKey ? NoiseConstants.tagLength : 0)
            case .ee, .es, .se, .ss, .psk:
                hasKey = true
            }
        }
        return length + payloadCount + (hasKey ? NoiseConstants.tagLength : 0)
    }

    /// The DH tokens of §5.3: "es" is DH(e, rs) for the initiator and DH(s, re) for the
    /// responder, and "se" the other way round.
    private mutating func mixDiffieHellman(_ token: NoisePattern.Token) throws {
        let local: X25519.KeyPair?, remote: X25519.PublicKey?
        switch token {
        case .ee: (local, remote) = (localEphemeral, remoteEphemeral)
        case .ss: (local, remote) = (localStatic, remoteStatic)
        case .es: (local, remote) = isInitiator ? (localEphemeral, remoteStatic) : (localStatic, remoteEphemeral)
        case .se: (local, remote) = isInitiator ? (localStatic, remoteEphemeral) : (localEphemeral, remoteStatic)
        case .e, .s, .psk: preconditionFailure("not a DH token: \(token)")
        }
        guard let local, let remote else {
            throw NoiseError(.missingKey, "\(token) needs a key this side does not have")
        }
        let shared: SecretBytes
        do {
            shared = try local.sharedSecret(with: remote)
        } catch {
            throw NoiseError(.invalidPublicKey, "\(token): Diffie-Hellman with a low-order public key")
        }
        symmetric.mixKey(shared)
    }

    private mutating func mixPresharedKey() {
        // checkKeys guarantees one key per psk token.
        symmetric.mixKeyAndHash(presharedKeys[presharedKeyIndex])
        presharedKeyIndex += 1
    }

    /// Every key the pattern will need must be present at the start, so a handshake never
    /// fails half-way for a reason known in advance.
    private static func checkKeys(pattern: NoisePattern, initiator: Bool, localStatic: X25519.KeyPair?,
                                  localEphemeral: X25519.KeyPair?, remoteStatic: X25519.PublicKey?,
                                  remoteEphemeral: X25519.PublicKey?, presharedKeys: [SecretBytes]) throws {
        let ownPre = initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage
        let remotePre = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage
        var needsLocalStatic = ownPre.contains(.s)
        for (index, tokens) in pattern.messages.enumerated() {
            let mine = (index % 2 == 0) == initiator
            for token in tokens {
                switch token {
                case .s: if mine { needsLocalStatic = true }
                case .ss: needsLocalStatic = true
                case .es: if !initiator { needsLocalStatic = true }
                case .se: if initiator { needsLocalStatic = true }
                case .e, .ee, .psk: break
                }
            }
        }
        guard !needsLocalStatic || localStatic != nil else {
            throw NoiseError(.missingKey, "\(pattern.name) needs this side's static key pair")
        }
        guard !remotePre.contains(.s) || remoteStatic != nil else {
            throw NoiseError(.missingKey, "\(pattern.name) needs the remote static key in advance")
        }
        guard !ownPre.contains(.e) || localEphemeral != nil else {
            throw NoiseError(.missingKey, "\(pattern.name) needs this side's pre-message ephemeral key")
        }
        guard !remotePre.contains(.e) || remoteEphemeral != nil else {
            throw NoiseError(.missingKey, "\(pattern.name) needs the remote ephemeral key in advance")
        }
        guard presharedKeys.count == pattern.presharedKeyCount else {
            throw NoiseError(.missingKey, "\(pattern.name) needs \(pattern.presharedKeyCount) pre-shared keys, got \(presharedKeys.count)")
        }
        for psk in presharedKeys where psk.count != NoiseConstants.pskLength {
            throw NoiseError(.invalidLength, "a pre-shared key is 32 bytes, got \(psk.count)")
        }
    }
}
