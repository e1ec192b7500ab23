import CSodium

/// Secret key material that is zeroed when it is released.
///
/// The bytes live in memory this object owns and never in a Swift array, which could be
/// copied behind our back. Equality is constant-time. `description` never shows the bytes.
public final class SecretBytes: @unchecked Sendable, Equatable, CustomStringConvertible {
    // Immutable after init; the class is Sendable because nothing mutates `storage` after
    // construction except `deinit`, which runs when no one else holds a reference.
    private let storage: UnsafeMutableRawBufferPointer

    private let byteCount_: Int

    /// The number of secret bytes.
    public var count: Int { byteCount_ }

    /// `count` bytes, all zero, filled in place by `body`.
    public init(count: Int, initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        _ = Sodium.ready
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        do {
            try body(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
        } catch {
            sodium_memzero(storage.baseAddress, storage.count)
            storage.deallocate()
            throw error
        }
        byteCount_ = count
    }

    /// A copy of `bytes`. The caller remains responsible for wiping its own copy.
    public convenience init<Bytes: Sequence>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        let array = Array(bytes)
        self.init(count: array.count) { buffer in
            buffer.copyBytes(from: array)
        }
    }

    /// `count` random bytes from the system CSPRNG.
    public convenience init(randomCount count: Int) {
        self.init(count: count) { buffer in
            if let base = buffer.baseAddress { randombytes_buf(base, buffer.count) }
        }
    }

    deinit {
        sodium_memzero(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<byteCount_]))
    }

    /// The bytes as an array. Use only where an API demands it (tests, vectors): the array
    /// is not wiped.
    public var unsafeArray: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.byteCount_ == rhs.byteCount_ else { return false }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in
                l.count == 0 || sodium_memcmp(l.baseAddress, r.baseAddress, l.count) == 0
            }
        }
    }

    public var description: String { "SecretBytes(\(byteCount_) bytes)" }
}

/// Constant-time comparison of two byte strings of equal length (false if lengths differ).
public func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    _ = Sodium.ready
    return a.count == b.count && (a.count == 0 || sodium_memcmp(a.baseAddress, b.baseAddress, a.count) == 0)
}

/// Constant-time comparison of two byte arrays (false if lengths differ).
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.withUnsafeBytes { l in b.withUnsafeBytes { r in constantTimeEquals(l, r) } }
}

/// Overwrite `bytes` with zeros in a way the optimiser cannot remove.
public func secureZero(_ bytes: inout [UInt8]) {
    _ = Sodium.ready
    bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress, $0.count) }
}
