import FuzzSupport
import Noise
import Sodium

/// Every reader of untrusted bytes in the Noise module, each poised at the point where a
/// peer's message arrives: IK messages 1–2, XX messages 1–3, and a transport CipherState.
/// Keys are fixed so that every run, and every crash input, is reproducible.
///
/// An input is one selector byte (which reader, modulo their number) followed by the
/// message bytes. Invariants checked beyond "no crash": a reader that rejects a message is
/// dead afterwards, and one that accepts it has advanced.
enum NoiseReaders: FuzzTarget {
    static let name = "noise"

    struct Reader: Sendable {
        let name: String
        let state: HandshakeState
        /// A genuine message for this reader, the seed for the corpus.
        let validMessage: [UInt8]
    }

    static let readers: [Reader] = build()
    static let transport: (receive: CipherState, validMessage: [UInt8]) = buildTransport()

    static func fuzzOne(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let message = Array(input.dropFirst())
        let index = Int(selector) % (readers.count + 1)
        guard index < readers.count else {
            var receive = transport.receive
            let nonce = receive.nonce
            if (try? receive.decrypt(associatedData: [], ciphertext: message)) == nil {
                precondition(receive.nonce == nonce, "a failed decrypt must not advance the nonce")
            }
            return
        }
        var state = readers[index].state
        do {
            _ = try state.readMessage(message)
            precondition(state.isComplete || state.isMyTurnToWrite, "an accepted message advances the handshake")
        } catch let error as NoiseError {
            precondition(error.code != .outOfTurn && state.hasFailed, "a rejected message kills the handshake")
            do {
                _ = try state.writeMessage(payload: [])
                preconditionFailure("a failed handshake accepted a write")
            } catch let again as NoiseError {
                precondition(again.code == .handshakeFailed)
            } catch {
                preconditionFailure("untyped error \(error)")
            }
        } catch {
            preconditionFailure("untyped error \(error)")
        }
    }

    /// Seed inputs: each reader's genuine message, prefixed with its selector.
    static var seeds: [(name: String, bytes: [UInt8])] {
        readers.enumerated().map { (i, r) in (r.name, [UInt8(i)] + r.validMessage) }
            + [("transport", [UInt8(readers.count)] + transport.validMessage)]
    }

    private static func key(_ byte: UInt8) -> X25519.KeyPair {
        try! X25519.KeyPair(secretKey: SecretBytes(copying: [UInt8](repeating: byte, count: 32)))
    }

    private static let prologue = Array("bookswarm fuzz".utf8)

    private static func pair(_ pattern: NoisePattern) -> (HandshakeState, HandshakeState) {
        let initiatorStatic = key(1), responderStatic = key(2)
        let initiator = try! HandshakeState(
            pattern: pattern, initiator: true, prologue: prologue, localStatic: initiatorStatic, localEphemeral: key(3),
            remoteStatic: pattern.responderPreMessage.contains(.s) ? responderStatic.publicKey : nil)
        let responder = try! HandshakeState(
            pattern: pattern, initiator: false, prologue: prologue, localStatic: responderStatic, localEphemeral: key(4))
        return (initiator, responder)
    }

    private static func build() -> [Reader] {
        var readers: [Reader] = []
        for pattern in [NoisePattern.IK, NoisePattern.XX] {
            var (initiator, responder) = pair(pattern)
            for i in 0..<pattern.messages.count {
                let payload = Array("message \(i)".utf8)
                if i % 2 == 0 {
                    let before = responder
                    let message = try! initiator.writeMessage(payload: payload)
                    _ = try! responder.readMessage(message)
                    readers.append(Reader(name: "\(pattern.name)-msg\(i + 1)", state: before, validMessage: message))
                } else {
                    let before = initiator
                    let message = try! responder.writeMessage(payload: payload)
                    _ = try! initiator.readMessage(message)
                    readers.append(Reader(name: "\(pattern.name)-msg\(i + 1)", state: before, validMessage: message))
                }
            }
        }
        return readers
    }

    private static func buildTransport() -> (receive: CipherState, validMessage: [UInt8]) {
        var (initiator, responder) = pair(.IK)
        _ = try! responder.readMessage(initiator.writeMessage(payload: []))
        _ = try! initiator.readMessage(responder.writeMessage(payload: []))
        var send = try! initiator.split().send
        let receive = try! responder.split().receive
        return (receive, try! send.encrypt(associatedData: [], plaintext: Array("transport".utf8)))
    }
}
