import Noise
import Sodium
import Testing

/// The cacophony file: `{"vectors": [...]}`, every field hex (see ../shared/MACHINE.md).
struct CacophonyFile: Decodable {
    struct Vector: Decodable {
        struct Message: Decodable {
            let payload: HexBytes
            let ciphertext: HexBytes
        }
        let protocol_name: String
        let init_prologue: HexBytes
        let init_psks: [HexBytes]?
        let init_static: HexBytes?
        let init_ephemeral: HexBytes?
        let init_remote_static: HexBytes?
        let resp_prologue: HexBytes
        let resp_psks: [HexBytes]?
        let resp_static: HexBytes?
        let resp_ephemeral: HexBytes?
        let resp_remote_static: HexBytes?
        let handshake_hash: HexBytes?
        let messages: [Message]
    }
    let vectors: [Vector]
}

@Suite("Noise cacophony vectors")
struct CacophonyVectorTests {
    static let fileName = "cacophony.txt"
    static let suffix = "_25519_ChaChaPoly_BLAKE2b"

    @Test("every Noise_*_25519_ChaChaPoly_BLAKE2b vector passes",
          .enabled(if: TestVectors.exists(fileName), "../shared/vectors/cacophony.txt is missing: vectors skipped"))
    func allVectors() throws {
        let file = try #require(try TestVectors.load(CacophonyFile.self, from: Self.fileName))
        var ran: [String] = []
        var unsupported: [String] = []
        for vector in file.vectors where vector.protocol_name.hasPrefix("Noise_") && vector.protocol_name.hasSuffix(Self.suffix) {
            let name = String(vector.protocol_name.dropFirst("Noise_".count).dropLast(Self.suffix.count))
            guard let pattern = NoisePattern.named(name) else {
                unsupported.append(vector.protocol_name)
                continue
            }
            try run(vector, pattern)
            ran.append(name)
        }
        print("cacophony: ran \(ran.count) Noise_*\(Self.suffix) vectors (\(ran.joined(separator: " ")))")
        if !unsupported.isEmpty { print("cacophony: unsupported, not run: \(unsupported.joined(separator: " "))") }
        #expect(ran.count > 0, "the vector file is present but no vector ran")
        #expect(unsupported.isEmpty)
    }

    private func run(_ v: CacophonyFile.Vector, _ pattern: NoisePattern) throws {
        let tag = Comment(rawValue: v.protocol_name)
        #expect(HandshakeState.protocolName(pattern) == v.protocol_name)
        var initiator = try HandshakeState(
            pattern: pattern, initiator: true, prologue: v.init_prologue.bytes,
            localStatic: try v.init_static.map { try X25519.KeyPair(secretKey: SecretBytes(copying: $0.bytes)) },
            localEphemeral: try v.init_ephemeral.map { try X25519.KeyPair(secretKey: SecretBytes(copying: $0.bytes)) },
            remoteStatic: try v.init_remote_static.map { try X25519.PublicKey(bytes: $0.bytes) },
            presharedKeys: (v.init_psks ?? []).map { SecretBytes(copying: $0.bytes) })
        var responder = try HandshakeState(
            pattern: pattern, initiator: false, prologue: v.resp_prologue.bytes,
            localStatic: try v.resp_static.map { try X25519.KeyPair(secretKey: SecretBytes(copying: $0.bytes)) },
            localEphemeral: try v.resp_ephemeral.map { try X25519.KeyPair(secretKey: SecretBytes(copying: $0.bytes)) },
            remoteStatic: try v.resp_remote_static.map { try X25519.PublicKey(bytes: $0.bytes) },
            presharedKeys: (v.resp_psks ?? []).map { SecretBytes(copying: $0.bytes) })

        let handshakeCount = pattern.messages.count
        try #require(v.messages.count >= handshakeCount, tag)
        for (i, m) in v.messages.prefix(handshakeCount).enumerated() {
            let fromInitiator = i % 2 == 0
            let written = fromInitiator ? try initiator.writeMessage(payload: m.payload.bytes)
                                        : try responder.writeMessage(payload: m.payload.bytes)
            #expect(written == m.ciphertext.bytes, "\(tag) handshake message \(i)")
            let read = fromInitiator ? try responder.readMessage(written) : try initiator.readMessage(written)
            #expect(read == m.payload.bytes, "\(tag) handshake payload \(i)")
        }
        #expect(initiator.isComplete && responder.isComplete, tag)
        if let expected = v.handshake_hash {
            #expect(initiator.handshakeHash == expected.bytes, tag)
            #expect(responder.handshakeHash == expected.bytes, tag)
        }

        var (initiatorSend, initiatorReceive) = try initiator.split()
        var (responderSend, responderReceive) = try responder.split()
        for (i, m) in v.messages.enumerated().dropFirst(handshakeCount) {
            // One-way patterns send every transport message initiator → responder (§7.4).
            let fromInitiator = pattern.isOneWay || i % 2 == 0
            let sealed = fromInitiator ? try initiatorSend.encrypt(associatedData: [], plaintext: m.payload.bytes)
                                       : try responderSend.encrypt(associatedData: [], plaintext: m.payload.bytes)
            #expect(sealed == m.ciphertext.bytes, "\(tag) transport message \(i)")
            let opened = fromInitiator ? try responderReceive.decrypt(associatedData: [], ciphertext: sealed)
                                       : try initiatorReceive.decrypt(associatedData: [], ciphertext: sealed)
            #expect(opened == m.payload.bytes, "\(tag) transport payload \(i)")
        }
    }
}
