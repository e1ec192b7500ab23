/// Crockford's base32 (https://www.crockford.com/base32.html), lower-case, no padding.
///
/// Chosen for invite codes because people copy them by hand and by paste: no letters that
/// look alike (no i, l, o, u), case-insensitive, and decoding forgives the usual slips
/// (o → 0, i/l → 1) and ignores dashes and white space that chat programs insert.
enum Base32 {
    static let alphabet: [UInt8] = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    enum DecodeError: Error, Equatable {
        case invalidCharacter(Character)
        case nonZeroPadding
    }

    /// The value of one symbol, with Crockford's forgiving aliases; nil for a separator.
    static func value(of c: UInt8) throws -> UInt8? {
        switch c {
        case UInt8(ascii: "-"), UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): return nil
        case UInt8(ascii: "o"), UInt8(ascii: "O"): return 0
        case UInt8(ascii: "i"), UInt8(ascii: "I"), UInt8(ascii: "l"), UInt8(ascii: "L"): return 1
        default:
            let lower = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) ? c + 32 : c
            guard let index = alphabet.firstIndex(of: lower) else {
                throw DecodeError.invalidCharacter(Character(Unicode.Scalar(c)))
            }
            return UInt8(index)
        }
    }

    /// Decodes `text`; a character outside the alphabet is reported as the character the
    /// text holds (a pasted "é" as "é", not as the first byte of its UTF-8).
    static func decode(_ text: Substring, strictPadding: Bool = true) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text {
            guard character.isASCII else { throw DecodeError.invalidCharacter(character) }
            // ASCII: one byte per scalar ("\r\n", one character, is two).
            for c in character.utf8 {
                guard let v = try value(of: c) else { continue }
                buffer = (buffer << 5) | UInt32(v)
                bits += 5
                if bits >= 8 {
                    out.append(UInt8((buffer >> UInt32(bits - 8)) & 0xff))
                    bits -= 8
                }
            }
        }
        // Leftover bits must be the zero padding the encoder wrote.
        if strictPadding && bits > 0 && (buffer & ((1 << UInt32(bits)) - 1)) != 0 { throw DecodeError.nonZeroPadding }
        return out
    }
}
