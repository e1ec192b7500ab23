import Books

/// What replication needs of a book: the holder's half (serve pages with their proof) and
/// the reader's half (apply verified answers). `Books.Book` conforms; tests also use an
/// in-memory fake. Every method is synchronous and short: the store's calls are.
///
/// Errors are `BooksError`s; the machine tells the peer's faults (`.invalidProof`,
/// `.invalidSignature`, `.forked`, `.pageTooLarge`) from benign ones (`.staleProof`,
/// `.notHeld`, `.outOfRange`) by their code.
public protocol ReplicatedBook: AnyObject, Sendable {
    var id: BookID { get }
    /// The latest verified signed root (nil while nothing is verified).
    var signedRoot: SignedRoot? { get }
    /// True for the author: it holds every page and never needs to fetch.
    var isWritable: Bool { get }
    /// The signed root of `length` if it is held (every length appended or verified).
    func signedRoot(atLength length: UInt64) throws -> SignedRoot?
    func heldRanges() -> PageRanges
    /// The pages of `pages` (a prefix of them holding at most `maxBytes`, but at least one
    /// page) and their proof against the tree of `atLength` pages, upgrading from
    /// `fromLength`.
    func answer(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int) throws
        -> (proof: MerkleProof, pages: [[UInt8]])
    /// Verifies, then stores in one transaction (see `Book.apply`).
    func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [[UInt8]]) throws
    /// Checks a validly signed root against the one held at the same length; a different
    /// root is a fork: the proof is kept and `.forked` thrown.
    func check(signedRoot: SignedRoot) throws
    var forkProof: ForkProof? { get }
}

extension Book: ReplicatedBook {
    public func answer(pages range: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int) throws
        -> (proof: MerkleProof, pages: [[UInt8]])
    {
        var pages = range.isEmpty ? [] : try self.pages(in: range)
        var bytes = 0
        for (i, page) in pages.enumerated() {
            bytes += page.count
            if bytes > maxBytes, i > 0 {
                pages.removeLast(pages.count - i)
                break
            }
        }
        let served = range.lowerBound..<(range.lowerBound + UInt64(pages.count))
        return (try proof(for: served, atLength: atLength, upgradingFrom: fromLength), pages)
    }

    public func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [[UInt8]]) throws {
        let _: BookLength = try apply(signedRoot: signedRoot, proof: proof, pages: pages)
    }
}
