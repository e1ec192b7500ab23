import Testing
import Sodium
@testable import Messenger

@Suite struct MessengerPageTests {
    static func sample(index: UInt64 = 3) -> MessengerPage {
        MessengerPage(
            head: .init(author: SecureRandom.bytes(32), book: SecureRandom.bytes(32), index: index,
                        previous: index == 0 ? nil : SecureRandom.bytes(32)),
            refs: [.init(book: SecureRandom.bytes(32), index: 900, pageHash: SecureRandom.bytes(32))],
            kind: .chat, data: Array("hello, Ana".utf8),
            meta: .init(time: 1_764_000_000_000, fields: ["client": "cli", "a": "1"]))
    }

    @Test func roundTrip() throws {
        for page in [Self.sample(), Self.sample(index: 0)] {
            let bytes = page.encoded()
            let decoded = try MessengerPage(decoding: bytes)
            #expect(decoded == page)
            #expect(decoded.encoded() == bytes)
        }
        #expect(Self.sample().text == "hello, Ana")
    }

    @Test func unknownKindsSurvive() throws {
        var page = Self.sample()
        page.kind = .unknown(77)
        #expect(try MessengerPage(decoding: page.encoded()).kind == .unknown(77))
    }

    @Test func everyTruncationIsRefused() {
        let bytes = Self.sample().encoded()
        for n in 0..<bytes.count {
            #expect(throws: PageDecodingError.self) { try MessengerPage(decoding: Array(bytes.prefix(n))) }
        }
        #expect(throws: PageDecodingError.trailingBytes(1)) { try MessengerPage(decoding: bytes + [0]) }
    }

    @Test func malformedFieldsAreRefused() throws {
        var bytes = Self.sample(index: 0).encoded()
        bytes[0] = 2
        #expect(throws: PageDecodingError.unsupportedVersion(2)) { try MessengerPage(decoding: bytes) }
        // An over-long varint (0x80 0x00 for zero) is not canonical.
        var r = ByteReader([0x80, 0x00])
        #expect(throws: PageDecodingError.malformedInteger) { try r.readVarint() }
        var big = ByteReader([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
        #expect(throws: PageDecodingError.malformedInteger) { try big.readVarint() }
        var max = ByteReader([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
        #expect(try max.readVarint() == UInt64.max)
        var copy = Self.sample()
        copy.kind = .copy
        copy.refs = []
        #expect(throws: PageDecodingError.copyWithoutOrigin) { try MessengerPage(decoding: copy.encoded()) }
    }

    /// Found writing fuzz-messenger's round-trip check (decode, encode, compare bytes): the
    /// encoder sorted meta keys as Swift orders Strings (by their Unicode-normalized text)
    /// while the decoder requires byte order, so a page with the keys "e\u{301}" and "f",
    /// which decodes, encoded to "f" first and its own decoder refused it; and two keys with
    /// different bytes but the same text ("e\u{301}", "é") decoded to one field. Now the
    /// encoder writes byte order and the decoder refuses keys that are the same text.
    @Test func metaKeysAreCanonicalAsBytesAndAsText() throws {
        func page(_ keys: [String]) -> [UInt8] {
            // A page without fields ends with its field count: 0. Write our own fields.
            var sample = Self.sample(index: 0)
            sample.meta.fields = [:]
            var bytes = sample.encoded()
            bytes[bytes.count - 1] = UInt8(keys.count)
            for (i, key) in keys.enumerated() {
                bytes += [UInt8(key.utf8.count)] + Array(key.utf8) + [1, UInt8(ascii: "0") + UInt8(i)]
            }
            return bytes
        }
        let decomposed = "e\u{301}"
        let ordered = page([decomposed, "f"])
        let decoded = try MessengerPage(decoding: ordered)
        #expect(decoded.encoded() == ordered)
        #expect(try MessengerPage(decoding: decoded.encoded()) == decoded)
        #expect(throws: PageDecodingError.unsortedMeta) { try MessengerPage(decoding: page(["f", decomposed])) }
        #expect(throws: PageDecodingError.unsortedMeta) { try MessengerPage(decoding: page([decomposed, "\u{E9}"])) }
        var written = Self.sample()
        written.meta.fields = ["f": "1", decomposed: "2", "\u{E9}x": "3"]
        #expect(try MessengerPage(decoding: written.encoded()) == written)
    }

    @Test func randomBytesNeverCrash() {
        var rng = SodiumRandomNumberGenerator()
        var decodedCount = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0..<200, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !bytes.isEmpty { bytes[0] = 1 }
            if (try? MessengerPage(decoding: bytes)) != nil { decodedCount += 1 }
        }
        #expect(decodedCount < 20_000)
    }
}
