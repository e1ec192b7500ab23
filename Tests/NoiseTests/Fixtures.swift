import Noise
import Sodium

/// Deterministic keys and handshakes shared by the Noise tests.
enum Fixtures {
    static func x25519(_ byte: UInt8) -> X25519.KeyPair {
        try! X25519.KeyPair(secretKey: SecretBytes(copying: [UInt8](repeating: byte, count: 32)))
    }

    static func ed25519(_ byte: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: byte, count: 32)))
    }

    static let prologue = Array("bookswarm test prologue".utf8)

    /// An initiator and a responder for `pattern`, with fixed static and ephemeral keys and
    /// whatever pre-shared keys the pattern needs.
    static func pair(_ pattern: NoisePattern, fixedEphemerals: Bool = true) throws -> (initiator: HandshakeState, responder: HandshakeState) {
        let initiatorStatic = x25519(0x11), responderStatic = x25519(0x22)
        let psks = (0..<pattern.presharedKeyCount).map { SecretBytes(copying: [UInt8](repeating: 0x50 + UInt8($0), count: 32)) }
        let initiator = try HandshakeState(
            pattern: pattern, initiator: true, prologue: prologue, localStatic: initiatorStatic,
            localEphemeral: fixedEphemerals ? x25519(0x33) : nil,
            remoteStatic: pattern.responderPreMessage.contains(.s) ? responderStatic.publicKey : nil,
            presharedKeys: psks)
        let responder = try HandshakeState(
            pattern: pattern, initiator: false, prologue: prologue, localStatic: responderStatic,
            localEphemeral: fixedEphemerals ? x25519(0x44) : nil,
            remoteStatic: pattern.initiatorPreMessage.contains(.s) ? initiatorStatic.publicKey : nil,
            presharedKeys: psks)
        return (initiator, responder)
    }

    /// Runs the whole handshake; returns the messages and both finished states.
    static func complete(_ initiator: inout HandshakeState, _ responder: inout HandshakeState,
                         payloads: (Int) -> [UInt8] = { Array("payload \($0)".utf8) }) throws -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var i = 0
        while !initiator.isComplete || !responder.isComplete {
            if initiator.isMyTurnToWrite {
                let m = try initiator.writeMessage(payload: payloads(i))
                _ = try responder.readMessage(m)
                messages.append(m)
            } else {
                let m = try responder.writeMessage(payload: payloads(i))
                _ = try initiator.readMessage(m)
                messages.append(m)
            }
            i += 1
        }
        return messages
    }
}

extension NoiseError.Code {
    /// Codes a tampered or malformed message from the network may produce.
    var isRejection: Bool {
        switch self {
        case .authenticationFailed, .invalidLength, .invalidPublicKey, .messageTooLong: return true
        case .outOfTurn, .handshakeFailed, .missingKey, .nonceExhausted: return false
        }
    }
}
