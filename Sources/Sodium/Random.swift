import CSodium

/// The system CSPRNG, through libsodium.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        _ = Sodium.ready
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { if let b = $0.baseAddress { randombytes_buf(b, $0.count) } }
        return out
    }

    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        _ = Sodium.ready
        if let b = buffer.baseAddress { randombytes_buf(b, buffer.count) }
    }

    /// A uniformly distributed value in `0..<upperBound`.
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        _ = Sodium.ready
        return randombytes_uniform(upperBound)
    }

    public static func uint64() -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { fill($0) }
        return v
    }
}

/// A `RandomNumberGenerator` backed by libsodium, for `Int.random(in:using:)` and jitter.
public struct SodiumRandomNumberGenerator: RandomNumberGenerator, Sendable {
    public init() {}
    public mutating func next() -> UInt64 { SecureRandom.uint64() }
}
