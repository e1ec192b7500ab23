import Books
import Sodium

/// A page copied out of another book (flow 4, "bookkeeping"), together with the evidence
/// that its original author wrote it: the original author's signed root and the Merkle
/// proof from the page to that root. A copy is checked with nothing but itself — the book
/// id in the reference is the original author's public key — so a compiled book stays
/// verifiable after the books it was compiled from are gone.
///
/// Encoding of a `copy` page's `data` (PROTOCOL.md §10.2):
/// `u8 version (1) ‖ varint n ‖ n bytes original page ‖ varint root length ‖ 32 root hash ‖
///  64 signature ‖ varint node count ‖ (varint tree index ‖ 32 hash)*`.
/// The page's `refs[0]` is `(original book, index, leaf hash of the original page)`.
public struct CopiedPage: Hashable, Sendable {
    public let original: [UInt8]
    public let ref: MessengerPage.Ref
    public let signedRoot: SignedRoot
    public let proof: MerkleProof

    static let version: UInt8 = 1
    static let maxNodes = 128

    /// Takes page `index` of `book` with the evidence for it. Throws when the page or the
    /// nodes its proof needs are not held here.
    public init(from book: Book, index: UInt64) throws {
        guard let root = book.signedRoot, index < root.length, let page = try book.get(index) else {
            throw BooksError(.notHeld, "page \(index) of book \(book.id.hex.prefix(16))… is not held")
        }
        original = page
        ref = MessengerPage.Ref(book: book.id.bytes, index: index, pageHash: PageHash.leaf(page).bytes)
        signedRoot = root
        proof = try book.proof(for: index, atLength: root.length)
    }

    init(original: [UInt8], ref: MessengerPage.Ref, signedRoot: SignedRoot, proof: MerkleProof) {
        self.original = original
        self.ref = ref
        self.signedRoot = signedRoot
        self.proof = proof
    }

    public func encodedData() -> [UInt8] {
        var out: [UInt8] = [CopiedPage.version]
        out.appendVarint(UInt64(original.count))
        out += original
        out.appendVarint(signedRoot.length)
        out += signedRoot.rootHash.bytes
        out += signedRoot.signature
        out.appendVarint(UInt64(proof.nodes.count))
        for node in proof.nodes {
            out.appendVarint(node.index)
            out += node.hash.bytes
        }
        return out
    }

    /// Reads the evidence of a `copy` page; nil when it is not one or is malformed.
    public init?(page: MessengerPage) {
        guard case .copy = page.kind, let ref = page.refs.first,
              let book = try? BookID(bytes: ref.book) else { return nil }
        var r = ByteReader(page.data)
        do {
            guard try r.readByte() == CopiedPage.version else { return nil }
            let original = try r.readBytes(try r.readLength(limit: Book.maximumPageSize))
            let length = try r.readVarint()
            let rootHash = try r.readBytes(32)
            let signature = try r.readBytes(64)
            let count = try r.readLength(limit: CopiedPage.maxNodes)
            var nodes: [TreeNode] = []
            for _ in 0..<count {
                let index = try r.readVarint()
                nodes.append(TreeNode(index: index, hash: try PageHash(bytes: try r.readBytes(32))))
            }
            guard r.isAtEnd, ref.index < length, ref.index < UInt64.max else { return nil }
            self.original = original
            self.ref = ref
            signedRoot = SignedRoot(book: book, length: length, rootHash: try PageHash(bytes: rootHash), signature: signature)
            proof = MerkleProof(pages: ref.index..<ref.index + 1, length: length, fromLength: 0, nodes: nodes)
        } catch {
            return nil
        }
    }

    /// True when the original author signed a tree that holds exactly these bytes at the
    /// referenced index: the signature verifies under the referenced book id, the leaf hash
    /// matches the reference, and the proof leads from the page to the signed root.
    public var isAuthentic: Bool {
        signedRoot.book.bytes == ref.book
            && signedRoot.isValid
            && PageHash.leaf(original).bytes == ref.pageHash
            && proof.verifies(pages: [original], against: signedRoot)
    }
}
