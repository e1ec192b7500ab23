import CSodium
import Sodium

/// A 32-byte BLAKE2b hash of a node of a book's Merkle tree: a page's leaf, a parent, or
/// the root over the peaks (PROTOCOL.md §3.3).
///
/// Stored inline (four words, no heap allocation): a tree is hashed and compared millions
/// of times, and an array per hash would cost more than the hashing.
public struct PageHash: Hashable, Sendable, CustomStringConvertible {
    public static let length = 32
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public init(bytes: [UInt8]) throws {
        guard bytes.count == PageHash.length else {
            throw BooksError(.invalidProof, "a tree hash must be \(PageHash.length) bytes, got \(bytes.count)")
        }
        Swift.withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: bytes) }
    }

    /// From exactly 32 bytes (the caller has checked the count).
    init(copying bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == PageHash.length)
        Swift.withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
    }

    /// Filled in place by `body` with 32 bytes.
    init(filling body: (UnsafeMutableRawBufferPointer) -> Void) {
        Swift.withUnsafeMutableBytes(of: &words) { body($0) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: words) { try body($0) }
    }

    public var hex: String { bytes.hexString }
    public var description: String { hex }

    public static func == (lhs: PageHash, rhs: PageHash) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    // Domain separation: the first byte of every hashed message says what the hash is of,
    // so a leaf can never be passed off as a parent or a root (PROTOCOL.md §3.3).
    static let leafTag: UInt8 = 0x00
    static let parentTag: UInt8 = 0x01
    static let rootTag: UInt8 = 0x02

    private static let stateSize = crypto_generichash_statebytes()

    /// The leaf hash of a page: BLAKE2b-256(0x00 ‖ u64 byte length ‖ page).
    public static func leaf(_ page: UnsafeRawBufferPointer) -> PageHash {
        Sodium.initialize()
        if page.count <= 1024 {
            // Small pages: one contiguous message on the stack and a one-shot hash, which
            // costs less than the streaming calls.
            return withUnsafeTemporaryAllocation(byteCount: 9 + page.count, alignment: 8) { message in
                message[0] = leafTag
                message.storeBytes(of: UInt64(page.count).littleEndian, toByteOffset: 1, as: UInt64.self)
                if page.count > 0 { UnsafeMutableRawBufferPointer(rebasing: message[9...]).copyMemory(from: page) }
                return PageHash { out in
                    _ = crypto_generichash(out.baseAddress!.assumingMemoryBound(to: UInt8.self), length,
                                           message.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(message.count), nil, 0)
                }
            }
        }
        // libsodium's streaming state lives on the stack: no allocation per page.
        return withUnsafeTemporaryAllocation(byteCount: stateSize + 9, alignment: 64) { memory in
            let state = OpaquePointer(memory.baseAddress!)
            let head = UnsafeMutableRawBufferPointer(rebasing: memory[stateSize...])
            head[0] = leafTag
            head.storeBytes(of: UInt64(page.count).littleEndian, toByteOffset: 1, as: UInt64.self)
            _ = crypto_generichash_init(state, nil, 0, length)
            _ = crypto_generichash_update(state, head.baseAddress!.assumingMemoryBound(to: UInt8.self), 9)
            if page.count > 0 {
                _ = crypto_generichash_update(state, page.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(page.count))
            }
            return PageHash { out in
                _ = crypto_generichash_final(state, out.baseAddress!.assumingMemoryBound(to: UInt8.self), length)
            }
        }
    }

    public static func leaf(_ page: [UInt8]) -> PageHash { page.withUnsafeBytes { leaf($0) } }

    /// A parent's hash: BLAKE2b-256(0x01 ‖ left ‖ right).
    public static func parent(_ left: PageHash, _ right: PageHash) -> PageHash {
        Sodium.initialize()
        return withUnsafeTemporaryAllocation(byteCount: 1 + 2 * length, alignment: 8) { message in
            message[0] = parentTag
            left.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: message[1..<(1 + length)]).copyMemory(from: $0) }
            right.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: message[(1 + length)...]).copyMemory(from: $0) }
            return PageHash { out in
                _ = crypto_generichash(out.baseAddress!.assumingMemoryBound(to: UInt8.self), length,
                                       message.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(message.count), nil, 0)
            }
        }
    }

    /// The root hash of a tree: BLAKE2b-256(0x02 ‖ for each peak, left to right:
    /// u64 flat index ‖ hash). The indices bind the shape, hence the length.
    public static func root(peaks: [TreeNode]) -> PageHash {
        var message: [UInt8] = [rootTag]
        message.reserveCapacity(1 + peaks.count * (8 + length))
        for peak in peaks {
            Swift.withUnsafeBytes(of: peak.index.littleEndian) { message += $0 }
            peak.hash.withUnsafeBytes { message += $0 }
        }
        let digest = BLAKE2b.hash(message, outputLength: length)
        return digest.withUnsafeBytes { PageHash(copying: $0) }
    }
}

/// One node of a book's Merkle tree: its flat-tree index (`FlatTree`) and its hash.
public struct TreeNode: Hashable, Sendable, CustomStringConvertible {
    public let index: UInt64
    public let hash: PageHash

    public init(index: UInt64, hash: PageHash) {
        self.index = index
        self.hash = hash
    }

    public var description: String { "#\(index):\(hash.hex.prefix(16))…" }
}
