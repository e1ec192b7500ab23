import Books
@testable import Replication

/// A holder that lies: wraps a real book and corrupts what it serves, to test that a
/// reader refuses it and stores nothing.
final class TamperingBook: ReplicatedBook, @unchecked Sendable {
    enum Lie {
        /// Flips a bit in the first page of every answer.
        case forgedPage
        /// Flips a bit in the first proof node of every answer.
        case wrongProof
        /// Announces its root with a corrupted signature.
        case forgedRoot
        /// Hands over the first page of every answer grown to 75 MB, as a store file edited
        /// on disk could (`Book` itself refuses a page over its maximum).
        case oversizedPage
    }

    let inner: Book
    let lie: Lie

    init(_ inner: Book, lie: Lie) {
        self.inner = inner
        self.lie = lie
    }

    var id: BookID { inner.id }
    var isWritable: Bool { inner.isWritable }
    var forkProof: ForkProof? { inner.forkProof }

    var signedRoot: SignedRoot? {
        guard let root = inner.signedRoot else { return nil }
        switch lie {
        case .forgedPage, .wrongProof, .oversizedPage:
            return root
        case .forgedRoot:
            var signature = root.signature
            signature[5] ^= 1
            return SignedRoot(book: root.book, length: root.length, rootHash: root.rootHash, signature: signature)
        }
    }

    func signedRoot(atLength length: UInt64) throws -> SignedRoot? { try inner.signedRoot(atLength: length) }
    func heldRanges() -> PageRanges { inner.heldRanges() }
    func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [ArraySlice<UInt8>]) throws {
        try inner.applyAnswer(signedRoot: signedRoot, proof: proof, pages: pages)
    }
    func check(signedRoot: SignedRoot) throws { try inner.check(signedRoot: signedRoot) }
    func keep(_ fork: ForkProof) throws { try inner.keep(fork) }

    func answer(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof {
        var first = true
        let proof = try inner.answer(pages: pages, atLength: atLength, upgradingFrom: fromLength, maxBytes: maxBytes) { data in
            defer { first = false }
            if lie == .oversizedPage, first {
                return try [UInt8](repeating: 0, count: 75_000_000).withUnsafeBytes { try page($0) }
            }
            guard lie == .forgedPage, first, !data.isEmpty else { return try page(data) }
            var forged = Array(data)
            forged[0] ^= 0x80
            try forged.withUnsafeBytes { try page($0) }
        }
        switch lie {
        case .forgedPage, .forgedRoot, .oversizedPage:
            return proof
        case .wrongProof:
            var nodes = proof.nodes
            if !nodes.isEmpty {
                var bytes = nodes[0].hash.bytes
                bytes[0] ^= 0x80
                nodes[0] = TreeNode(index: nodes[0].index, hash: try PageHash(bytes: bytes))
            }
            return MerkleProof(pages: proof.pages, length: proof.length, fromLength: proof.fromLength, nodes: nodes)
        }
    }
}
