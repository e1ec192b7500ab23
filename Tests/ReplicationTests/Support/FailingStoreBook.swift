import Books
import Synchronization
@testable import Replication

/// A reader's book whose store fails to take verified pages while `failure` is set — a
/// full disk, a file system remounted read-only, a damaged file — as `Book.apply` would
/// throw it, storing nothing.
final class FailingStoreBook: ReplicatedBook, Sendable {
    let inner: Book
    private let failing = Mutex<BooksError?>(nil)
    private let attempts = Mutex(0)

    init(_ inner: Book) { self.inner = inner }

    /// What `applyAnswer` throws while set.
    var failure: BooksError? {
        get { failing.withLock { $0 } }
        set { failing.withLock { $0 = newValue } }
    }

    /// Answers `applyAnswer` was handed, failed or not.
    var applied: Int { attempts.withLock { $0 } }

    var id: BookID { inner.id }
    var isWritable: Bool { inner.isWritable }
    var forkProof: ForkProof? { inner.forkProof }
    var signedRoot: SignedRoot? { inner.signedRoot }
    func signedRoot(atLength length: UInt64) throws -> SignedRoot? { try inner.signedRoot(atLength: length) }
    func heldRanges() -> PageRanges { inner.heldRanges() }
    func check(signedRoot: SignedRoot) throws { try inner.check(signedRoot: signedRoot) }
    func keep(_ fork: ForkProof) throws { try inner.keep(fork) }

    func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [ArraySlice<UInt8>]) throws {
        attempts.withLock { $0 += 1 }
        if let failure { throw failure }
        try inner.applyAnswer(signedRoot: signedRoot, proof: proof, pages: pages)
    }

    func answer(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof {
        try inner.answer(pages: pages, atLength: atLength, upgradingFrom: fromLength, maxBytes: maxBytes, page: page)
    }
}
