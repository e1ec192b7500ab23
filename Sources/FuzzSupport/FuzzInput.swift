/// A cursor over a fuzz input read as a script of operations. Reads never fail: past the
/// end they give zeros and empty arrays, so every input is a valid script and the fuzzer's
/// mutations stay meaningful.
///
/// Script form, shared by the targets that drive a state machine: an operation byte, then
/// its operands; byte strings are a u16 length (little-endian) and that many bytes (fewer
/// at the end of the input). `FuzzScript` writes the same form for the seeds.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }

    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }

    /// A length-prefixed byte string.
    public mutating func chunk() -> [UInt8] {
        let count = min(Int(u16()), bytes.count - min(offset, bytes.count))
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// The rest of the input.
    public mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return offset < bytes.count ? Array(bytes[offset...]) : []
    }
}

/// Writes scripts in `FuzzInput`'s form, for seeds.
public struct FuzzScript {
    public private(set) var bytes: [UInt8]

    public init(_ prefix: [UInt8] = []) { bytes = prefix }

    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    public mutating func u16(_ value: UInt16) { bytes += [UInt8(value & 0xff), UInt8(value >> 8)] }

    public mutating func u32(_ value: UInt32) { u16(UInt16(value & 0xffff)); u16(UInt16(value >> 16)) }

    public mutating func chunk(_ value: [UInt8]) {
        precondition(value.count <= Int(UInt16.max), "a script chunk is at most 65 535 bytes")
        u16(UInt16(value.count))
        bytes += value
    }
}
