import Noise
import Sodium
import Testing

@Suite("Noise HandshakeState")
struct HandshakeStateTests {
    static let allPatterns: [String] = NoisePattern.knownBaseNames + ["XXpsk3", "IKpsk2", "NNpsk0+psk2", "Xpsk1"]

    @Test("every known pattern completes, agrees on h and keys, and carries transport both ways", arguments: allPatterns)
    func roundTrip(name: String) throws {
        let pattern = try #require(NoisePattern.named(name))
        var (initiator, responder) = try Fixtures.pair(pattern, fixedEphemerals: false)
        let messages = try Fixtures.complete(&initiator, &responder)
        #expect(messages.count == pattern.messages.count)
        #expect(initiator.handshakeHash == responder.handshakeHash)
        #expect(initiator.handshakeHash.count == 64)
        func sends(static initiatorSide: Bool) -> Bool {
            (initiatorSide ? pattern.initiatorPreMessage : pattern.responderPreMessage).contains(.s)
                || pattern.messages.enumerated().contains { ($0.offset % 2 == 0) == initiatorSide && $0.element.contains(.s) }
        }
        #expect(initiator.remoteStaticKey == (sends(static: false) ? Fixtures.x25519(0x22).publicKey : nil))
        #expect(responder.remoteStaticKey == (sends(static: true) ? Fixtures.x25519(0x11).publicKey : nil))
        var (iSend, iReceive) = try initiator.split()
        var (rSend, rReceive) = try responder.split()
        for n in 0..<3 {
            let text = Array("to responder \(n)".utf8)
            #expect(try rReceive.decrypt(associatedData: [], ciphertext: iSend.encrypt(associatedData: [], plaintext: text)) == text)
            if !pattern.isOneWay {
                let back = Array("to initiator \(n)".utf8)
                #expect(try iReceive.decrypt(associatedData: [], ciphertext: rSend.encrypt(associatedData: [], plaintext: back)) == back)
            }
        }
    }

    @Test("injected ephemerals make the handshake deterministic")
    func deterministic() throws {
        var (a1, b1) = try Fixtures.pair(.IK)
        var (a2, b2) = try Fixtures.pair(.IK)
        #expect(try Fixtures.complete(&a1, &b1) == Fixtures.complete(&a2, &b2))
        #expect(a1.handshakeHash == a2.handshakeHash)
        #expect(a1.localEphemeralKey == Fixtures.x25519(0x33).publicKey)
    }

    @Test("static keys derived from Ed25519 identities work for IK and XX")
    func ed25519Identities() throws {
        let alice = Fixtures.ed25519(1), bob = Fixtures.ed25519(2)
        for pattern in [NoisePattern.IK, .XX] {
            var initiator = try HandshakeState(pattern: pattern, initiator: true, prologue: [], localStatic: alice.x25519(),
                                               remoteStatic: pattern == .IK ? bob.publicKey.x25519() : nil)
            var responder = try HandshakeState(pattern: pattern, initiator: false, prologue: [], localStatic: bob.x25519())
            _ = try Fixtures.complete(&initiator, &responder)
            #expect(responder.remoteStaticKey == (try alice.publicKey.x25519()))
            #expect(initiator.remoteStaticKey == (try bob.publicKey.x25519()))
        }
    }

    @Test("protocol names and pattern lookup")
    func names() {
        #expect(HandshakeState.protocolName(.IK) == "Noise_IK_25519_ChaChaPoly_BLAKE2b")
        #expect(HandshakeState.protocolName(.XX) == "Noise_XX_25519_ChaChaPoly_BLAKE2b")
        #expect(NoisePattern.named("XXpsk3")?.messages.last == [.s, .se, .psk])
        #expect(NoisePattern.named("NNpsk0+psk2")?.messages == [[.psk, .e], [.e, .ee, .psk]])
        #expect(NoisePattern.IK.responderPreMessage == [.s])
        #expect(NoisePattern.IK.messages == [[.e, .es, .s, .ss], [.e, .ee, .se]])
        for bad in ["", "ZZ", "XXpsk", "XXpsk4", "XXpsk3+psk3", "XXpsk03", "IKfallback", "xx"] {
            #expect(NoisePattern.named(bad) == nil, "\(bad)")
        }
    }

    @Test("calls out of turn throw outOfTurn and leave the handshake usable")
    func outOfTurn() throws {
        for pattern in [NoisePattern.IK, .XX] {
            var (initiator, responder) = try Fixtures.pair(pattern)
            #expect(throws: NoiseError(.outOfTurn, "")) { try responder.writeMessage(payload: []) }
            #expect(throws: NoiseError(.outOfTurn, "")) { try initiator.readMessage([UInt8](repeating: 0, count: 96)) }
            #expect(throws: NoiseError(.outOfTurn, "")) { try initiator.split() }
            let m1 = try initiator.writeMessage(payload: [])
            #expect(throws: NoiseError(.outOfTurn, "")) { try initiator.writeMessage(payload: []) }
            _ = try responder.readMessage(m1)
            #expect(throws: NoiseError(.outOfTurn, "")) { try responder.readMessage(m1) }  // a duplicate
            _ = try Fixtures.complete(&initiator, &responder)
            #expect(initiator.isComplete && responder.isComplete)
            #expect(!initiator.isMyTurnToWrite && !responder.isMyTurnToWrite)
            #expect(throws: NoiseError(.outOfTurn, "")) { try initiator.writeMessage(payload: []) }
            #expect(throws: NoiseError(.outOfTurn, "")) { try responder.readMessage(m1) }
        }
    }

    @Test("missing or malformed keys are refused at initialisation")
    func missingKeys() {
        let s = Fixtures.x25519(1)
        #expect(throws: NoiseError(.missingKey, "")) { try HandshakeState(pattern: .IK, initiator: true, prologue: [], localStatic: s) }
        #expect(throws: NoiseError(.missingKey, "")) { try HandshakeState(pattern: .XX, initiator: false, prologue: [], localStatic: nil) }
        #expect(throws: NoiseError(.missingKey, "")) {
            try HandshakeState(pattern: NoisePattern.named("XXpsk3")!, initiator: true, prologue: [], localStatic: s)
        }
        #expect(throws: NoiseError(.invalidLength, "")) {
            try HandshakeState(pattern: NoisePattern.named("XXpsk3")!, initiator: true, prologue: [], localStatic: s,
                               presharedKeys: [SecretBytes(copying: [1, 2, 3])])
        }
        #expect((try? HandshakeState(pattern: NoisePattern.named("NN")!, initiator: true, prologue: [], localStatic: nil)) != nil)
    }

    @Test("a payload too long for a message is refused without killing the handshake")
    func payloadTooLong() throws {
        var (initiator, responder) = try Fixtures.pair(.XX)
        // XX message 1 is e (32) ‖ plaintext payload: 65504 bytes fit, 65504 + 1 do not.
        #expect(throws: NoiseError(.messageTooLong, "")) { try initiator.writeMessage(payload: [UInt8](repeating: 7, count: 65504)) }
        #expect(!initiator.hasFailed)
        let m1 = try initiator.writeMessage(payload: [UInt8](repeating: 7, count: 65503))
        #expect(m1.count == 65535)
        #expect(try responder.readMessage(m1).count == 65503)
        #expect(throws: NoiseError(.messageTooLong, "")) { try initiator.readMessage([UInt8](repeating: 0, count: 65536)) }
        #expect(initiator.hasFailed)
    }

    @Test("a low-order ephemeral key from the peer is rejected with invalidPublicKey")
    func lowOrderKey() throws {
        var (_, responder) = try Fixtures.pair(.IK)
        let forged = [UInt8](repeating: 0, count: 32) + [UInt8](repeating: 0, count: 64)
        #expect(throws: NoiseError(.invalidPublicKey, "")) { try responder.readMessage(forged) }
        #expect(throws: NoiseError(.handshakeFailed, "")) { try responder.writeMessage(payload: []) }

        var (initiator, xxResponder) = try Fixtures.pair(.XX)
        _ = try initiator.writeMessage(payload: [])
        _ = try xxResponder.readMessage([UInt8](repeating: 0, count: 32))
        #expect(throws: NoiseError(.invalidPublicKey, "")) { try xxResponder.writeMessage(payload: []) }
        #expect(xxResponder.hasFailed)
    }
}
