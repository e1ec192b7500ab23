import Noise
import Sodium

/// The one place the session layer touches the Noise module: a handshake of one of our two
/// suites with our prologue, reduced to what the packet layer needs.
struct NoiseHandshake {
    enum Pattern { case ik, xx }

    /// §7.3: binds every handshake to this protocol version, so a peer of another version
    /// fails the first authenticated message instead of misreading later ones.
    static let prologue = Array("bookswarm/session/v1".utf8)

    private var state: HandshakeState

    init(_ pattern: Pattern, initiator: Bool, localStatic: X25519.KeyPair, ephemeral: X25519.KeyPair,
         remoteStatic: X25519.PublicKey?) throws {
        state = try HandshakeState(
            pattern: pattern == .ik ? NoisePattern.IK : NoisePattern.XX,
            initiator: initiator, prologue: NoiseHandshake.prologue,
            localStatic: localStatic, localEphemeral: ephemeral, remoteStatic: remoteStatic)
    }

    mutating func write(payload: [UInt8]) throws -> [UInt8] { try state.writeMessage(payload: payload) }

    mutating func read(_ message: [UInt8]) throws -> [UInt8] { try state.readMessage(message) }

    var remoteStatic: X25519.PublicKey? { state.remoteStaticKey }

    var handshakeHash: [UInt8] { state.handshakeHash }

    /// Transport keys oriented for our role.
    func split() throws -> (send: SecretBytes, receive: SecretBytes) {
        let (send, receive) = try state.split()
        guard let s = send.key, let r = receive.key else {
            throw NoiseError(.missingKey, "split produced no keys")
        }
        return (s, r)
    }
}
