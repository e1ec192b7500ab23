import Noise
import Sodium

/// `Tools/bench noise`: Noise handshakes and transport encryption on one core, each against
/// a floor of the bare primitives it cannot avoid, measured in the same run.
///
/// Handshake floor: the X25519 operations one full handshake needs, both sides, done bare
/// through the Sodium module: 2 key generations (crypto_scalarmult_base, one ephemeral per
/// side) plus the DH tokens (IK: es, ss, ee, se on each side = 8; XX: ee, es, se = 6).
/// Everything above that (BLAKE2b, HKDF, ChaCha20-Poly1305, allocation) is overhead.
var noiseSuite: Suite {
    Suite(name: "noise", summary: "IK/XX handshakes per second and transport encryption vs bare primitives") {
        try NoiseBenchmark.run()
    }
}

enum NoiseBenchmark {
    static let prologue = Array("bookswarm bench".utf8)

    static func run() throws {
        let alice = try Ed25519.KeyPair.generate().x25519()
        let bob = try Ed25519.KeyPair.generate().x25519()

        for (pattern, dhCount, label) in [(NoisePattern.IK, 8, "ik"), (NoisePattern.XX, 6, "xx")] {
            let (rate, floor) = try interleaved(
                { try handshake(pattern, alice, bob) },
                floor: { bareX25519(keyGenerations: 2, diffieHellmans: dhCount, alice, bob) })
            Report.result("noise.\(label)_handshakes", rate, "hs/s", floor: floor)
        }

        // Transport: one 1200-byte datagram payload, the size DESIGN.md §5 caps UDP payloads at.
        let size = 1200
        var (send, _) = try completedPair(.IK, alice, bob)
        let key = SecretBytes(randomCount: 32)
        let plaintext = [UInt8](repeating: 0x5a, count: size)
        var output = [UInt8](repeating: 0, count: size + 16)
        let header = [UInt8](repeating: 1, count: 16)  // a transport header as associated data
        let calls = 1000
        let bytesPerCall = Double(size * calls) / 1e6
        try plaintext.withUnsafeBytes { p in
            try header.withUnsafeBytes { ad in
                try output.withUnsafeMutableBytes { out in
                    var counter: UInt64 = 0
                    let bare = {
                        for _ in 0..<calls {
                            ChaChaPoly.seal(key: key, counter: counter, associatedData: ad, plaintext: p, into: out)
                            counter &+= 1
                        }
                    }
                    let (inPlace, floor) = try interleaved({
                        for _ in 0..<calls { _ = try send.encrypt(associatedData: ad, plaintext: p, into: out) }
                    }, floor: bare)
                    Report.result("noise.transport_encrypt_1200", inPlace * bytesPerCall, "MB/s", floor: floor * bytesPerCall)
                    let (arrays, floor2) = try interleaved({
                        for _ in 0..<calls { _ = try send.encrypt(associatedData: header, plaintext: plaintext) }
                    }, floor: bare)
                    Report.result("noise.transport_encrypt_1200_arrays", arrays * bytesPerCall, "MB/s", floor: floor2 * bytesPerCall)
                }
            }
        }
    }

    /// Rates of `body` and of its `floor`, measured in alternating short rounds and keeping
    /// the best of each, so that load from other processes on this shared machine falls on
    /// both alike instead of on whichever happened to run during it.
    static func interleaved(_ body: () throws -> Void, floor: () throws -> Void, rounds: Int = 10,
                            secondsPerRound: Double = 0.4) throws -> (value: Double, floor: Double) {
        var best = (value: 0.0, floor: 0.0)
        for _ in 0..<rounds {
            best.floor = max(best.floor, try measureRate(seconds: secondsPerRound, rounds: 1, floor))
            best.value = max(best.value, try measureRate(seconds: secondsPerRound, rounds: 1, body))
        }
        return best
    }

    static func completedPair(_ pattern: NoisePattern, _ alice: X25519.KeyPair, _ bob: X25519.KeyPair) throws -> (send: CipherState, receive: CipherState) {
        var initiator = try HandshakeState(pattern: pattern, initiator: true, prologue: prologue, localStatic: alice,
                                           remoteStatic: pattern == .IK ? bob.publicKey : nil)
        var responder = try HandshakeState(pattern: pattern, initiator: false, prologue: prologue, localStatic: bob)
        while !initiator.isComplete {
            if initiator.isMyTurnToWrite {
                _ = try responder.readMessage(initiator.writeMessage(payload: []))
            } else {
                _ = try initiator.readMessage(responder.writeMessage(payload: []))
            }
        }
        _ = try responder.split()
        return try initiator.split()
    }

    @inline(never)
    static func handshake(_ pattern: NoisePattern, _ alice: X25519.KeyPair, _ bob: X25519.KeyPair) throws {
        _ = try completedPair(pattern, alice, bob)
    }

    @inline(never)
    static func bareX25519(keyGenerations: Int, diffieHellmans: Int, _ alice: X25519.KeyPair, _ bob: X25519.KeyPair) {
        for _ in 0..<keyGenerations { _ = X25519.KeyPair.generate() }
        for _ in 0..<diffieHellmans { _ = try! alice.sharedSecret(with: bob.publicKey) }
    }
}
