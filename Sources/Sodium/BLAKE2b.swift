import CSodium

/// BLAKE2b (RFC 7693), plain and keyed, through libsodium's `crypto_generichash`.
public struct BLAKE2b: ~Copyable {
    public static let maxOutputLength = Int(crypto_generichash_BYTES_MAX)  // 64
    public static let minOutputLength = Int(crypto_generichash_BYTES_MIN)  // 16
    public static let maxKeyLength = Int(crypto_generichash_KEYBYTES_MAX)  // 64
    /// BLAKE2b's block length, which HMAC needs (Noise spec §12.8).
    public static let blockLength = 128

    // libsodium's state is an over-aligned opaque struct that Swift cannot import, so it
    // lives in memory of its declared size and alignment, wiped on release.
    private static let stateSize = crypto_generichash_statebytes()
    private let state: UnsafeMutableRawPointer
    public let outputLength: Int

    private var statePointer: OpaquePointer { OpaquePointer(state) }

    /// A streaming hasher. `key` (empty, or 16...64 bytes) makes it a keyed hash (a MAC / PRF).
    public init(outputLength: Int = BLAKE2b.maxOutputLength, key: UnsafeRawBufferPointer? = nil) {
        _ = Sodium.ready
        precondition((BLAKE2b.minOutputLength...BLAKE2b.maxOutputLength).contains(outputLength), "BLAKE2b output length")
        let keyCount = key?.count ?? 0
        precondition(keyCount == 0 || (16...64).contains(keyCount), "BLAKE2b key length")
        self.outputLength = outputLength
        state = UnsafeMutableRawPointer.allocate(byteCount: BLAKE2b.stateSize, alignment: 64)
        _ = crypto_generichash_init(OpaquePointer(state), key?.baseAddress?.assumingMemoryBound(to: UInt8.self), keyCount, outputLength)
    }

    public init(outputLength: Int = BLAKE2b.maxOutputLength, key: [UInt8]) {
        _ = Sodium.ready
        precondition((BLAKE2b.minOutputLength...BLAKE2b.maxOutputLength).contains(outputLength), "BLAKE2b output length")
        precondition(key.isEmpty || (16...64).contains(key.count), "BLAKE2b key length")
        self.outputLength = outputLength
        let state = UnsafeMutableRawPointer.allocate(byteCount: BLAKE2b.stateSize, alignment: 64)
        key.withUnsafeBufferPointer { k in
            _ = crypto_generichash_init(OpaquePointer(state), k.isEmpty ? nil : k.baseAddress, k.count, outputLength)
        }
        self.state = state
    }

    public init(outputLength: Int = BLAKE2b.maxOutputLength, key: SecretBytes) {
        _ = Sodium.ready
        precondition((BLAKE2b.minOutputLength...BLAKE2b.maxOutputLength).contains(outputLength), "BLAKE2b output length")
        precondition(key.count == 0 || (16...64).contains(key.count), "BLAKE2b key length")
        self.outputLength = outputLength
        let state = UnsafeMutableRawPointer.allocate(byteCount: BLAKE2b.stateSize, alignment: 64)
        key.withUnsafeBytes { k in
            _ = crypto_generichash_init(OpaquePointer(state), k.count == 0 ? nil : k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, outputLength)
        }
        self.state = state
    }

    deinit {
        sodium_memzero(state, BLAKE2b.stateSize)
        state.deallocate()
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = crypto_generichash_update(statePointer, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public mutating func update(byte: UInt8) { withUnsafeBytes(of: byte) { update($0) } }

    /// Feed an integer in little-endian order.
    public mutating func update(uint64 value: UInt64) { withUnsafeBytes(of: value.littleEndian) { update($0) } }

    public mutating func finalize(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == outputLength)
        _ = crypto_generichash_final(statePointer, out.baseAddress!.assumingMemoryBound(to: UInt8.self), outputLength)
    }

    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputLength)
        out.withUnsafeMutableBytes { finalize(into: $0) }
        return out
    }

    /// One-shot hash.
    public static func hash(_ data: [UInt8], outputLength: Int = maxOutputLength, key: [UInt8] = []) -> [UInt8] {
        data.withUnsafeBytes { hash($0, outputLength: outputLength, key: key) }
    }

    public static func hash(_ data: UnsafeRawBufferPointer, outputLength: Int = maxOutputLength, key: [UInt8] = []) -> [UInt8] {
        _ = Sodium.ready
        var out = [UInt8](repeating: 0, count: outputLength)
        out.withUnsafeMutableBufferPointer { o in
            key.withUnsafeBufferPointer { k in
                _ = crypto_generichash(o.baseAddress!, outputLength,
                                       data.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(data.count),
                                       k.isEmpty ? nil : k.baseAddress, k.count)
            }
        }
        return out
    }
}
