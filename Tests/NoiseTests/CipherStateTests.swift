import Noise
import Sodium
import Testing

@Suite("Noise CipherState")
struct CipherStateTests {
    static func key(_ b: UInt8) -> SecretBytes { SecretBytes(copying: [UInt8](repeating: b, count: 32)) }

    @Test("without a key, encryption is the identity (Noise §5.1)")
    func noKey() throws {
        var c = CipherState(key: nil)
        #expect(!c.hasKey)
        #expect(try c.encrypt(associatedData: [1], plaintext: [1, 2, 3]) == [1, 2, 3])
        #expect(try c.decrypt(associatedData: [1], ciphertext: [1, 2, 3]) == [1, 2, 3])
        #expect(c.nonce == 0)
        #expect(throws: NoiseError(.missingKey, "")) { try c.encrypt(nonce: 0, associatedData: [], plaintext: []) }
    }

    @Test("nonces count up, and a failed decrypt does not advance it")
    func nonces() throws {
        var a = CipherState(key: Self.key(1)), b = CipherState(key: Self.key(1))
        let c0 = try a.encrypt(associatedData: [9], plaintext: [1])
        let c1 = try a.encrypt(associatedData: [9], plaintext: [1])
        #expect(c0 != c1 && a.nonce == 2)
        #expect(throws: NoiseError(.authenticationFailed, "")) { try b.decrypt(associatedData: [8], ciphertext: c0) }
        #expect(b.nonce == 0)
        #expect(try b.decrypt(associatedData: [9], ciphertext: c0) == [1])
        #expect(try b.decrypt(associatedData: [9], ciphertext: c1) == [1])
        #expect(throws: NoiseError(.invalidLength, "")) { try b.decrypt(associatedData: [], ciphertext: [1, 2]) }
    }

    @Test("explicit nonces (§11.4) match the implicit ones and leave the counter alone")
    func explicitNonce() throws {
        var a = CipherState(key: Self.key(2))
        a.nonce = 41
        let explicit = try a.encrypt(nonce: 41, associatedData: [], plaintext: [5, 6])
        #expect(a.nonce == 41)
        #expect(try a.encrypt(associatedData: [], plaintext: [5, 6]) == explicit)
        #expect(try a.decrypt(nonce: 41, associatedData: [], ciphertext: explicit) == [5, 6])
        #expect(throws: NoiseError(.authenticationFailed, "")) { try a.decrypt(nonce: 40, associatedData: [], ciphertext: explicit) }
        #expect(throws: NoiseError(.nonceExhausted, "")) { try a.encrypt(nonce: .max, associatedData: [], plaintext: []) }
    }

    @Test("the nonce 2^64-1 is reserved")
    func exhaustion() throws {
        var a = CipherState(key: Self.key(3))
        a.nonce = .max - 1
        _ = try a.encrypt(associatedData: [], plaintext: [])
        #expect(throws: NoiseError(.nonceExhausted, "")) { try a.encrypt(associatedData: [], plaintext: []) }
        #expect(throws: NoiseError(.nonceExhausted, "")) { try a.decrypt(associatedData: [], ciphertext: [UInt8](repeating: 0, count: 16)) }
    }

    @Test("messages over 65535 bytes are refused (§3)")
    func maxLength() throws {
        var a = CipherState(key: Self.key(4))
        #expect(try a.encrypt(associatedData: [], plaintext: [UInt8](repeating: 0, count: 65519)).count == 65535)
        #expect(throws: NoiseError(.messageTooLong, "")) { try a.encrypt(associatedData: [], plaintext: [UInt8](repeating: 0, count: 65520)) }
        #expect(throws: NoiseError(.messageTooLong, "")) { try a.decrypt(associatedData: [], ciphertext: [UInt8](repeating: 0, count: 65536)) }
    }

    @Test("rekey is REKEY(k) of §4.2 and keeps both sides in step")
    func rekey() throws {
        var a = CipherState(key: Self.key(5)), b = CipherState(key: Self.key(5))
        let expected = Array(ChaChaPoly.seal(key: Self.key(5), counter: .max, associatedData: [],
                                             plaintext: [UInt8](repeating: 0, count: 32)).prefix(32))
        a.rekey()
        #expect(a.key?.unsafeArray == expected)
        #expect(a.nonce == 0)
        let sealed = try a.encrypt(associatedData: [], plaintext: [1])
        #expect(throws: NoiseError(.authenticationFailed, "")) { try b.decrypt(associatedData: [], ciphertext: sealed) }
        b.rekey()
        #expect(try b.decrypt(associatedData: [], ciphertext: sealed) == [1])
    }

    @Test("buffer variants agree with the array variants")
    func buffers() throws {
        var a = CipherState(key: Self.key(6)), b = a
        let text = [UInt8](repeating: 0xab, count: 1200)
        let viaArray = try a.encrypt(associatedData: [1], plaintext: text)
        var out = [UInt8](repeating: 0, count: 1216)
        let n = try out.withUnsafeMutableBytes { o in
            try [UInt8]([1]).withUnsafeBytes { ad in try text.withUnsafeBytes { try b.encrypt(associatedData: ad, plaintext: $0, into: o) } }
        }
        #expect(n == 1216 && out == viaArray && b.nonce == 1)
        var c = CipherState(key: Self.key(6))
        var plain = [UInt8](repeating: 0, count: 1200)
        let m = try plain.withUnsafeMutableBytes { p in
            try [UInt8]([1]).withUnsafeBytes { ad in try out.withUnsafeBytes { try c.decrypt(associatedData: ad, ciphertext: $0, into: p) } }
        }
        #expect(m == 1200 && plain == text)
    }
}
