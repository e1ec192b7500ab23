/// Unsigned LEB128 integers, as used by every compact Bookswarm encoding (PROTOCOL.md §10).
/// Encodings are canonical: the reader refuses over-long forms (a trailing zero group) and
/// values past 64 bits, so each value has exactly one encoding and re-encoding is identity.
extension Array where Element == UInt8 {
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
}

/// A cursor over untrusted bytes. Every read checks bounds and throws `PageDecodingError`.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func readByte() throws(PageDecodingError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readBytes(_ count: Int) throws(PageDecodingError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw .truncated }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func readVarint() throws(PageDecodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            let group = UInt64(byte & 0x7f)
            if shift == 63 && group > 1 { throw .malformedInteger }
            value |= group << shift
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 { throw .malformedInteger }  // over-long form
                return value
            }
            shift += 7
            if shift > 63 { throw .malformedInteger }
        }
    }

    /// A varint that must fit `limit`; used for lengths and counts before allocating.
    mutating func readLength(limit: Int) throws(PageDecodingError) -> Int {
        let v = try readVarint()
        guard v <= UInt64(limit) else { throw .fieldTooLarge(limit: limit) }
        return Int(v)
    }
}
