@testable import Books
import Sodium
import Testing

@Suite("MerkleProof") struct MerkleProofTests {
    /// An author with 11 pages appended in batches (signed roots at 3, 6 and 11).
    final class Fixture {
        let dir = TemporaryDirectory("proofs")
        let store: BookStore
        let book: Book

        init() throws {
            store = try openStore(dir)
            book = try store.createOrOpen(name: "proofs")
            try book.append(contentsOf: (0..<3).map { testPage($0) })
            try book.append(contentsOf: (3..<6).map { testPage($0) })
            try book.append(contentsOf: (6..<11).map { testPage($0) })
        }

        deinit {
            store.close()
            dir.remove()
        }
    }

    @Test func proofsAreCanonicalAndSmall() throws {
        #expect(MerkleProof.nodeIndices(pages: 0..<1, length: 1, fromLength: 0) == [])
        #expect(MerkleProof.nodeIndices(pages: 0..<1, length: 2, fromLength: 0) == [2])
        // Page 4 of 11 (peaks 7, 17, 20): siblings 10, 13, 3 on its path, then the peaks.
        #expect(MerkleProof.nodeIndices(pages: 4..<5, length: 11, fromLength: 0) == [3, 10, 13, 17, 20])
        // Upgrade 6 → 11: peaks of 6 (3, 9) are carried to be checked; 13 and the new peaks.
        #expect(MerkleProof.nodeIndices(pages: 11..<11, length: 11, fromLength: 6) == [3, 9, 13, 17, 20])
        for length in UInt64(1)...1024 {
            let count = MerkleProof.nodeIndices(pages: (length - 1)..<length, length: length, fromLength: 0).count
            #expect(count <= 2 * (64 - length.leadingZeroBitCount))
        }
    }

    @Test func anySingleBitChangeMakesVerificationFail() throws {
        let f = try Fixture()
        let root = try #require(f.book.signedRoot)
        let range: Range<UInt64> = 3..<5
        let pages = try f.book.pages(in: range)
        let proof = try f.book.proof(for: range)
        #expect(proof.verifies(pages: pages, against: root))

        var checked = 0
        func expectRejected(_ pages: [[UInt8]], _ proof: MerkleProof, _ root: SignedRoot) {
            #expect(!proof.verifies(pages: pages, against: root))
            checked += 1
        }
        // Every bit of every page.
        for p in pages.indices {
            for bit in 0..<(pages[p].count * 8) {
                var changed = pages
                changed[p][bit / 8] ^= 1 << UInt8(bit % 8)
                expectRejected(changed, proof, root)
            }
        }
        // Every bit of every tree node's hash, and of its index.
        for n in proof.nodes.indices {
            for bit in 0..<(PageHash.length * 8) {
                var nodes = proof.nodes
                var hash = nodes[n].hash.bytes
                hash[bit / 8] ^= 1 << UInt8(bit % 8)
                nodes[n] = TreeNode(index: nodes[n].index, hash: try PageHash(bytes: hash))
                expectRejected(pages, MerkleProof(pages: proof.pages, length: proof.length, fromLength: 0, nodes: nodes), root)
            }
            for bit in 0..<64 {
                var nodes = proof.nodes
                nodes[n] = TreeNode(index: nodes[n].index ^ (1 << UInt64(bit)), hash: nodes[n].hash)
                expectRejected(pages, MerkleProof(pages: proof.pages, length: proof.length, fromLength: 0, nodes: nodes), root)
            }
        }
        // Every bit of the root hash, the signature and the length.
        for bit in 0..<(PageHash.length * 8) {
            var hash = root.rootHash.bytes
            hash[bit / 8] ^= 1 << UInt8(bit % 8)
            expectRejected(pages, proof, SignedRoot(book: root.book, length: root.length, rootHash: try PageHash(bytes: hash), signature: root.signature))
        }
        for bit in 0..<(Ed25519.signatureLength * 8) {
            var signature = root.signature
            signature[bit / 8] ^= 1 << UInt8(bit % 8)
            expectRejected(pages, proof, SignedRoot(book: root.book, length: root.length, rootHash: root.rootHash, signature: signature))
        }
        for bit in 0..<64 {
            let length = root.length ^ (1 << UInt64(bit))
            let moved = MerkleProof(pages: proof.pages, length: length, fromLength: 0, nodes: proof.nodes)
            expectRejected(pages, moved, SignedRoot(book: root.book, length: length, rootHash: root.rootHash, signature: root.signature))
        }
        // A missing or an extra node.
        expectRejected(pages, MerkleProof(pages: proof.pages, length: proof.length, fromLength: 0, nodes: Array(proof.nodes.dropLast())), root)
        expectRejected(pages, MerkleProof(pages: proof.pages, length: proof.length, fromLength: 0, nodes: proof.nodes + [proof.nodes[0]]), root)
        #expect(checked > 3000)
    }

    @Test func anySingleBitChangeInAnUpgradeProofIsRefusedAndStoresNothing() throws {
        let f = try Fixture()
        let readerDir = TemporaryDirectory("upgrade-reader")
        defer { readerDir.remove() }
        let readerStore = try openStore(readerDir, secret: 5)
        let reader = try readerStore.open(id: f.book.id)
        let sixRoot = try #require(try f.book.signedRoot(atLength: 6))
        try reader.apply(signedRoot: sixRoot, proof: f.book.proof(for: 0..<6, atLength: 6), pages: f.book.pages(in: 0..<6))
        let root = try #require(f.book.signedRoot)
        let upgrade = try f.book.upgradeProof(from: 6)
        #expect(!upgrade.nodes.isEmpty)
        for n in upgrade.nodes.indices {
            for bit in 0..<(PageHash.length * 8) {
                var nodes = upgrade.nodes
                var hash = nodes[n].hash.bytes
                hash[bit / 8] ^= 1 << UInt8(bit % 8)
                nodes[n] = TreeNode(index: nodes[n].index, hash: try PageHash(bytes: hash))
                let changed = MerkleProof(pages: upgrade.pages, length: upgrade.length, fromLength: 6, nodes: nodes)
                let error = #expect(throws: BooksError.self) { try reader.apply(signedRoot: root, proof: changed, pages: []) }
                #expect(error?.code == .invalidProof)
            }
        }
        for bit in 0..<(Ed25519.signatureLength * 8) {
            var signature = root.signature
            signature[bit / 8] ^= 1 << UInt8(bit % 8)
            let changed = SignedRoot(book: root.book, length: root.length, rootHash: root.rootHash, signature: signature)
            #expect(throws: BooksError(.invalidSignature, "")) { try reader.apply(signedRoot: changed, proof: upgrade, pages: []) }
        }
        #expect(reader.length == 6)
        #expect(reader.forkProof == nil)
        try reader.apply(signedRoot: root, proof: upgrade, pages: [])
        #expect(reader.length == 11)
        try reader.verify()
        readerStore.close()
    }
}
