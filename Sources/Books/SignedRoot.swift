import Sodium

/// The author's signature over a book's tree at one length (PROTOCOL.md §3.4): what a
/// holder pushes to its readers whenever the book grows, and what every proof is checked
/// against. One is made per append batch, not per page.
public struct SignedRoot: Hashable, Sendable, CustomStringConvertible {
    /// "bookswarm/book/v1": the domain tag that keeps these signatures apart from every
    /// other signature an Ed25519 key could make.
    public static let domainTag: [UInt8] = Array("bookswarm/book/v1".utf8)
    /// The length of the signed message: tag ‖ book id ‖ u64 length ‖ root hash.
    public static let signableLength = domainTag.count + 32 + 8 + PageHash.length

    public let book: BookID
    /// The number of pages the tree covers.
    public let length: UInt64
    /// `PageHash.root(peaks:)` of the tree of `length` pages.
    public let rootHash: PageHash
    /// Ed25519 signature by `book`'s key over `signable`.
    public let signature: [UInt8]

    /// A signed root as received (from the network or the disk); check `isValid` before
    /// trusting it (`Book.apply` does).
    public init(book: BookID, length: UInt64, rootHash: PageHash, signature: [UInt8]) {
        self.book = book
        self.length = length
        self.rootHash = rootHash
        self.signature = signature
    }

    /// Sign a root with the book's key pair.
    init(signing rootHash: PageHash, length: UInt64, with keyPair: Ed25519.KeyPair) {
        book = BookID(keyPair.publicKey)
        self.length = length
        self.rootHash = rootHash
        signature = keyPair.sign(SignedRoot.signable(book: book, length: length, rootHash: rootHash))
    }

    /// tag ‖ book id (32) ‖ u64 length (LE) ‖ root hash (32).
    public static func signable(book: BookID, length: UInt64, rootHash: PageHash) -> [UInt8] {
        var message = domainTag
        message.reserveCapacity(signableLength)
        message += book.bytes
        withUnsafeBytes(of: length.littleEndian) { message += $0 }
        message += rootHash.bytes
        return message
    }

    /// True when `signature` is `book`'s valid signature over this root.
    public var isValid: Bool {
        book.publicKey.isValidSignature(signature, for: SignedRoot.signable(book: book, length: length, rootHash: rootHash))
    }

    public var description: String { "SignedRoot(\(book.hex.prefix(8))… length \(length) root \(rootHash.hex.prefix(16))…)" }
}

/// Evidence that a book's author signed two different trees (PROTOCOL.md §3.6). When both
/// roots have the same length the proof stands on its own: anyone can check the two
/// signatures. When the lengths differ, the newer tree did not extend the older one; the
/// two roots are kept and the conflict is checked with an upgrade proof between them.
public struct ForkProof: Hashable, Sendable, CustomStringConvertible {
    /// The root held first.
    public let first: SignedRoot
    /// The conflicting root received later.
    public let second: SignedRoot

    public init(first: SignedRoot, second: SignedRoot) {
        self.first = first
        self.second = second
    }

    /// Both signatures are valid, by the same book, over different roots at one length.
    public var isSelfEvident: Bool {
        first.book == second.book && first.length == second.length && first.rootHash != second.rootHash
            && first.isValid && second.isValid
    }

    public var description: String { "ForkProof(\(first), \(second))" }
}
