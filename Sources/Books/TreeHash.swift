import Sodium

/// A 32-byte BLAKE2b hash of a node of a book's Merkle tree: a page's leaf, a parent, or
/// the root over the peaks (PROTOCOL.md §3.2).
public struct PageHash: Hashable, Sendable, CustomStringConvertible {
    public static let length = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == PageHash.length else {
            throw BooksError(.invalidProof, "a tree hash must be \(PageHash.length) bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    public var hex: String { bytes.hexString }
    public var description: String { hex }

    // Domain separation: the first byte of every hashed message says what the hash is of,
    // so a leaf can never be passed off as a parent or a root (PROTOCOL.md §3.2).
    static let leafTag: UInt8 = 0x00
    static let parentTag: UInt8 = 0x01
    static let rootTag: UInt8 = 0x02

    /// The leaf hash of a page: BLAKE2b-256(0x00 ‖ u64 byte length ‖ page).
    public static func leaf(_ page: UnsafeRawBufferPointer) -> PageHash {
        var hasher = BLAKE2b(outputLength: length)
        hasher.update(byte: leafTag)
        hasher.update(uint64: UInt64(page.count))
        hasher.update(page)
        return PageHash(unchecked: hasher.finalize())
    }

    public static func leaf(_ page: [UInt8]) -> PageHash { page.withUnsafeBytes { leaf($0) } }

    /// A parent's hash: BLAKE2b-256(0x01 ‖ left ‖ right).
    public static func parent(_ left: PageHash, _ right: PageHash) -> PageHash {
        var hasher = BLAKE2b(outputLength: length)
        hasher.update(byte: parentTag)
        hasher.update(left.bytes)
        hasher.update(right.bytes)
        return PageHash(unchecked: hasher.finalize())
    }

    /// The root hash of a tree: BLAKE2b-256(0x02 ‖ for each peak, left to right:
    /// u64 flat index ‖ hash). The indices bind the shape, hence the length.
    public static func root(peaks: [TreeNode]) -> PageHash {
        var hasher = BLAKE2b(outputLength: length)
        hasher.update(byte: rootTag)
        for peak in peaks {
            hasher.update(uint64: peak.index)
            hasher.update(peak.hash.bytes)
        }
        return PageHash(unchecked: hasher.finalize())
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
