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
    /// Hands the pages of `pages` to `page` in order (a prefix of them holding at most
    /// `maxBytes`, but at least one page; each a view valid only during its call) and
    /// returns their proof against the tree of `atLength` pages, upgrading from
    /// `fromLength`: the proof's range is the pages handed over.
    func answer(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof
    /// `answer`, also when this side refuses the book as forked: from the history it
    /// verified before (`Book.historyProof`). Served to the book's author only (§9.6).
    func answerFromHistory(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                           page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof
    /// Verifies, then stores in one transaction (see `Book.apply`).
    func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [ArraySlice<UInt8>]) throws
    /// Checks a validly signed root against what is held (`Book.check(signedRoot:)`): a
    /// root that cannot belong to the held tree, or, at the author, one longer than the
    /// book, is a fork: the proof is kept and `.forked` thrown.
    func check(signedRoot: SignedRoot) throws
    /// Keeps a self-evident fork proof found elsewhere (`Book.keep(_:)`).
    func keep(_ fork: ForkProof) throws
    var forkProof: ForkProof? { get }
}

extension ReplicatedBook {
    /// A book that cannot tell its verified history apart answers as usual (a forked one
    /// then answers nothing).
    public func answerFromHistory(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                                  page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof {
        try answer(pages: pages, atLength: atLength, upgradingFrom: fromLength, maxBytes: maxBytes, page: page)
    }
}

extension Book: ReplicatedBook {
    public func answer(pages range: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                       page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof {
        let served = try withPages(in: range, maxBytes: maxBytes, page)
        return try proof(for: served, atLength: atLength, upgradingFrom: fromLength)
    }

    public func answerFromHistory(pages range: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                                  page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof {
        let served = try withPages(in: range, maxBytes: maxBytes, page)
        return try historyProof(for: served, atLength: atLength, upgradingFrom: fromLength)
    }

    public func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [ArraySlice<UInt8>]) throws {
        let _: BookLength = try apply(signedRoot: signedRoot, proof: proof, pageViews: pages)
    }
}
