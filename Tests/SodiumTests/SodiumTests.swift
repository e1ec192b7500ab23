import Testing
@testable import Sodium

/// Known-answer tests against published vectors (RFC 8032, RFC 7748, RFC 7693) and values
/// computed by independent implementations (Python's hmac + hashlib, PyNaCl), plus misuse.
@Suite struct SodiumTests {
    @Test func ed25519RFC8032Vector1() throws {
        // RFC 8032 §7.1, TEST 1.
        let seed = SecretBytes(copying: [UInt8](hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!)
        let pair = try Ed25519.KeyPair(seed: seed)
        #expect(pair.publicKey.hex == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let signature = pair.sign([])
        #expect(signature.hexString == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
        #expect(pair.publicKey.isValidSignature(signature, for: []))
        var flipped = signature
        flipped[10] ^= 1
        #expect(!pair.publicKey.isValidSignature(flipped, for: []))
        #expect(!pair.publicKey.isValidSignature(signature, for: [0]))
        #expect(!pair.publicKey.isValidSignature(Array(signature.dropLast()), for: []))
    }

    @Test func ed25519RoundTripAndRestore() throws {
        let pair = Ed25519.KeyPair.generate()
        let restored = try Ed25519.KeyPair(secretKey: pair.secretKey)
        #expect(restored.publicKey == pair.publicKey)
        #expect(try Ed25519.KeyPair(seed: pair.seed).publicKey == pair.publicKey)
        let message: [UInt8] = Array("book root".utf8)
        #expect(pair.publicKey.isValidSignature(pair.sign(message), for: message))
        #expect(throws: SodiumError(.invalidLength, "")) { try Ed25519.PublicKey(bytes: [1, 2, 3]) }
    }

    @Test func ed25519ToX25519MatchesPyNaCl() throws {
        let pair = try Ed25519.KeyPair(seed: SecretBytes(copying: Array(0..<32)))
        #expect(pair.publicKey.hex == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
        let x = try pair.x25519()
        #expect(x.publicKey.bytes.hexString == "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01")
        #expect(x.secretKey.unsafeArray.hexString == "3894eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6f")
        #expect(try pair.publicKey.x25519() == x.publicKey)
    }

    @Test("a sealed box opens with the recipient's key (its identity's X25519 form) only, and not once changed")
    func sealedBox() throws {
        let recipient = try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 3, count: 32)))
        let other = try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 4, count: 32)))
        let message = [UInt8]((0..<48).map { UInt8($0) })
        let sealed = SealedBox.seal(message, to: try recipient.publicKey.x25519())
        #expect(sealed.count == message.count + SealedBox.overhead)
        #expect(SealedBox.seal(message, to: try recipient.publicKey.x25519()) != sealed, "a fresh ephemeral key each time")
        #expect(try SealedBox.open(sealed, with: try recipient.x25519()) == message)
        #expect(throws: SodiumError.self) { try SealedBox.open(sealed, with: try other.x25519()) }
        for i in [0, 31, 32, 47, 48, sealed.count - 1] {
            var changed = sealed
            changed[i] ^= 0x01
            #expect(throws: SodiumError.self) { try SealedBox.open(changed, with: try recipient.x25519()) }
        }
        #expect(throws: SodiumError.self) { try SealedBox.open(Array(sealed.prefix(47)), with: try recipient.x25519()) }
    }

    @Test func x25519RFC7748() throws {
        // RFC 7748 §6.1.
        let alice = try X25519.KeyPair(secretKey: SecretBytes(copying: [UInt8](hex: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")!))
        #expect(alice.publicKey.bytes.hexString == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        let bob = try X25519.KeyPair(secretKey: SecretBytes(copying: [UInt8](hex: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")!))
        #expect(bob.publicKey.bytes.hexString == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = try alice.sharedSecret(with: bob.publicKey)
        #expect(shared.unsafeArray.hexString == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        #expect(shared == (try bob.sharedSecret(with: alice.publicKey)))
        // A low-order point (all zeros) gives an all-zero result, which is refused.
        #expect(throws: SodiumError(.invalidPublicKey, "")) {
            try alice.sharedSecret(with: X25519.PublicKey(bytes: [UInt8](repeating: 0, count: 32)))
        }
    }

    @Test func blake2bRFC7693() {
        // RFC 7693 Appendix A: BLAKE2b-512("abc").
        #expect(BLAKE2b.hash(Array("abc".utf8)).hexString ==
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
        var streaming = BLAKE2b()
        streaming.update(Array("a".utf8))
        streaming.update(Array("bc".utf8))
        #expect(streaming.finalize() == BLAKE2b.hash(Array("abc".utf8)))
        let keyed = BLAKE2b.hash([1, 2, 3], outputLength: 32, key: [UInt8](repeating: 7, count: 32))
        #expect(keyed.count == 32)
        #expect(keyed != BLAKE2b.hash([1, 2, 3], outputLength: 32))
    }

    @Test func hmacBLAKE2bMatchesPython() {
        // hmac.new(key, msg, hashlib.blake2b): a 150-byte key (longer than the block) and a 1-byte key.
        let long = HMACBLAKE2b.authenticate(key: Array(String(repeating: "key", count: 50).utf8), data: Array("The quick brown fox".utf8))
        #expect(long.hexString == "0a960fd30e68fa82728bf8ef6d6528cd02677327157ba3d87e4c9f3d374ee2af8743f809e882b88b3099815d196378aa2ea4dbd13f8ea57a9dc8fae4cba9ee73")
        let short = HMACBLAKE2b.authenticate(key: Array("k".utf8), data: [])
        #expect(short.hexString == "58bc130b7cc4e87f309532f121fb0f8eba276abdfcc56f73e0da310d895846f1f79efde9589a0550ae13911fa99f55451d9cdaa2beecdec2fb42cbf4fffc219c")
    }

    @Test func hkdfOutputsChain() {
        let ck = SecretBytes(copying: [UInt8](repeating: 1, count: 64))
        let two = NoiseHKDF.derive(chainingKey: ck, inputKeyMaterial: [9, 9], outputs: 2)
        let three = NoiseHKDF.derive(chainingKey: ck, inputKeyMaterial: [9, 9], outputs: 3)
        #expect(two[0] == three[0] && two[1] == three[1])
        // output1 = HMAC(temp, 0x01), temp = HMAC(ck, ikm)
        let temp = HMACBLAKE2b.authenticate(key: ck.unsafeArray, data: [9, 9])
        #expect(two[0].unsafeArray == HMACBLAKE2b.authenticate(key: temp, data: [1]))
        #expect(three[2].unsafeArray == HMACBLAKE2b.authenticate(key: temp, data: three[1].unsafeArray + [3]))
    }

    @Test func chachaPolyRoundTripAndTamper() throws {
        let key = SecretBytes(randomCount: 32)
        let ad: [UInt8] = [1, 2, 3]
        let plaintext = Array("hello, book".utf8)
        let sealed = ChaChaPoly.seal(key: key, counter: 5, associatedData: ad, plaintext: plaintext)
        #expect(sealed.count == plaintext.count + 16)
        #expect(try ChaChaPoly.open(key: key, counter: 5, associatedData: ad, ciphertext: sealed) == plaintext)
        #expect(throws: SodiumError(.authenticationFailed, "")) {
            try ChaChaPoly.open(key: key, counter: 6, associatedData: ad, ciphertext: sealed)
        }
        #expect(throws: SodiumError(.authenticationFailed, "")) {
            try ChaChaPoly.open(key: key, counter: 5, associatedData: [], ciphertext: sealed)
        }
        #expect(throws: SodiumError(.invalidLength, "")) {
            try ChaChaPoly.open(key: key, counter: 5, associatedData: ad, ciphertext: [1, 2])
        }
        // An empty plaintext still carries a tag and authenticates.
        let empty = ChaChaPoly.seal(key: key, counter: 0, associatedData: [], plaintext: [])
        #expect(try ChaChaPoly.open(key: key, counter: 0, associatedData: [], ciphertext: empty) == [])
    }

    @Test func secretBytesBehave() {
        let a = SecretBytes(copying: [1, 2, 3])
        #expect(a.count == 3)
        #expect(a == SecretBytes(copying: [1, 2, 3]))
        #expect(a != SecretBytes(copying: [1, 2, 4]))
        #expect(!a.description.contains("1"))
        #expect(SecretBytes(randomCount: 0).count == 0)
        #expect([UInt8](hex: "0aFf") == [10, 255])
        #expect([UInt8](hex: "abc") == nil)
        #expect([UInt8](hex: "zz") == nil)
    }
}
