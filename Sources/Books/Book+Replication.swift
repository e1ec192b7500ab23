import Foundation

/// The holder's and the reader's halves of replication (DESIGN.md decision 9).
///
/// Holder (author or any reader holding the pages): push `signedRoot` whenever
/// `lengthUpdates` yields; answer a request with `signedRoot(atLength:)`,
/// `proof(for:atLength:upgradingFrom:)` and `pages(in:)`.
///
/// Reader: ask for what `missing(in:)` reports, passing its own `length` as
/// `upgradingFrom` when the pushed root is longer; feed the answer to `apply`, which
/// verifies everything before storing anything. The rules `apply` enforces:
/// * a proof for a longer tree than the reader's verified length must upgrade from that
///   length exactly (else `.staleProof`: ask again), which proves the new tree extends the
///   verified one;
/// * a proof at the verified length or below is checked against the signed root already
///   held at that length (an unknown older root gives `.staleProof`);
/// * two roots of one length that differ, or an upgrade that does not extend the verified
///   tree although validly signed, store a `ForkProof` and throw `.forked`.
extension Book {
    /// The signed root at `length`, if this peer holds it (every length it appended or
    /// verified).
    public func signedRoot(atLength length: UInt64) throws -> SignedRoot? {
        try store.withState(id) { state, db in
            if let latest = state.latest, latest.length == length { return latest }
            return try db.root(book: state.number, id: id, length: length)
        }
    }

    /// A proof for `pages` against the tree of `length` pages (default: this peer's
    /// length), upgrading the reader from `fromLength` (0: the reader holds nothing
    /// verified). Any holder of the needed nodes can make it; `.notHeld` otherwise.
    public func proof(for pages: Range<UInt64>, atLength length: UInt64? = nil, upgradingFrom fromLength: UInt64 = 0) throws -> MerkleProof {
        try proof(for: pages, atLength: length, upgradingFrom: fromLength, evenIfForked: false)
    }

    /// `proof(for:atLength:upgradingFrom:)` from the history this peer verified, also when it
    /// refuses the book as forked: everything it holds was verified against the author's
    /// signature before the fork was found (a fork is recorded before anything of it is
    /// stored), so the pages and nodes held are one history, the one its signed roots sign.
    /// For the book's author only, which lost that history (PROTOCOL.md §9.6); anyone else
    /// is refused a forked book.
    public func historyProof(for pages: Range<UInt64>, atLength length: UInt64? = nil, upgradingFrom fromLength: UInt64 = 0) throws -> MerkleProof {
        try proof(for: pages, atLength: length, upgradingFrom: fromLength, evenIfForked: true)
    }

    private func proof(for pages: Range<UInt64>, atLength length: UInt64?, upgradingFrom fromLength: UInt64,
                       evenIfForked: Bool) throws -> MerkleProof {
        try store.withState(id) { state, db in
            guard state.forks.isEmpty || evenIfForked else {
                throw BooksError(.forked, "book \(id.hex.prefix(16))… is forked", file: store.file)
            }
            let length = length ?? state.length
            guard length <= state.length,
                  MerkleProof.isWellFormed(pages: pages, length: length, fromLength: fromLength) else {
                throw BooksError(.outOfRange, "no proof of pages \(pages) at length \(length) from \(fromLength): this peer's length is \(state.length)", file: store.file)
            }
            let indices = MerkleProof.nodeIndices(pages: pages, length: length, fromLength: fromLength)
            let nodes = try indices.map { index in
                guard let hash = try db.node(book: state.number, index: index) else {
                    throw BooksError(.notHeld, "tree node \(index) is not held", file: store.file)
                }
                return TreeNode(index: index, hash: hash)
            }
            return MerkleProof(pages: pages, length: length, fromLength: fromLength, nodes: nodes)
        }
    }

    /// A proof for one page.
    public func proof(for index: UInt64, atLength length: UInt64? = nil, upgradingFrom fromLength: UInt64 = 0) throws -> MerkleProof {
        try proof(for: index..<(index + 1), atLength: length, upgradingFrom: fromLength)
    }

    /// The nodes a reader at verified length `from` needs to accept the signed root at
    /// `to` (default: this peer's length): a proof of no pages.
    public func upgradeProof(from: UInt64, to: UInt64? = nil) throws -> MerkleProof {
        let to = try to ?? store.withState(id) { state, _ in state.length }
        return try proof(for: to..<to, atLength: to, upgradingFrom: from)
    }

    /// Checks a validly signed root against what this peer holds; a root that cannot belong
    /// to the tree held is a fork: the proof is kept (durably) and `.forked` thrown.
    /// * A root held at the same length: the two must be one.
    /// * Shorter than the verified length, with no root held at its length: its hash must
    ///   be the root the held tree has at that length (from the peaks of that length, when
    ///   held — a sparse reader may lack them, and then nothing is compared). A reader that
    ///   fetched a book in one answer holds one root only, and the author's store, lost and
    ///   written again from page 0, is shorter than the reader's copy for a while.
    /// * Longer than the verified length: news for a reader. For the author (a writable
    ///   book) it is a root it signed but no longer holds: its store lost pages (a vault
    ///   restored from the key alone), and its book can only fork from here.
    /// The signature must have been checked (`signedRoot.isValid`). A root of more pages
    /// than a book holds (`Book.maximumLength`) throws `.invalidProof`.
    public func check(signedRoot root: SignedRoot) throws {
        try Book.checkLength(root)
        guard root.book == id, root.length > 0 else { return }
        try store.withState(id) { state, db in
            guard let latest = state.latest else { return }
            func conflict(with held: SignedRoot, detail: String? = nil) throws -> Never {
                guard state.forks.isEmpty else {
                    throw BooksError(.forked, "book \(id.hex.prefix(16))… is forked", file: store.file)
                }
                try recordFork(ForkProof(first: held, second: root), state: &state, db: db, detail: detail)
            }
            if root.length > latest.length {
                guard state.keyPair != nil else { return }
                try conflict(with: latest,
                             detail: "book \(id.hex.prefix(16))… holds \(latest.length) pages, but its key signed a root of \(root.length): "
                                 + "this store lost pages (restored from an older copy or from the key alone), so the book can only fork from here")
            }
            if let held = root.length == latest.length ? latest : try db.root(book: state.number, id: id, length: root.length) {
                if held.rootHash != root.rootHash { try conflict(with: held) }
                return
            }
            var peaks: [TreeNode] = []
            for index in FlatTree.roots(length: root.length) {
                guard let hash = try db.node(book: state.number, index: index) else { return }
                peaks.append(TreeNode(index: index, hash: hash))
            }
            if PageHash.root(peaks: peaks) != root.rootHash { try conflict(with: latest) }
        }
    }

    /// Verifies `pages` (the pages of `proof.pages`, in order) and the proof against
    /// `signedRoot`, then stores the pages, the tree nodes they establish and the root in
    /// one transaction, and notifies `lengthUpdates`. Nothing is stored unless all of it
    /// verifies; a root of more pages than a book holds (`Book.maximumLength`) never does,
    /// however it is signed. Returns the book's new state.
    ///
    /// The transaction is atomic but not synced when it returns (unlike an author's
    /// `append`): a reader's pages can be fetched again, so one fsync per answer would only
    /// bound replication by the disk. It survives a killed process; a power loss may drop
    /// the last answers whole, and the held pages read back at open are then exactly the
    /// ones stored (PROTOCOL.md §4.1). The next durable commit of the store syncs them too.
    @discardableResult
    public func apply(signedRoot: SignedRoot, proof: MerkleProof, pages: [[UInt8]]) throws -> BookLength {
        try applyPages(signedRoot: signedRoot, proof: proof, pages: pages)
    }

    /// `apply` for pages that are views of a larger buffer (an answer as it arrived),
    /// which spares a copy of every page.
    @discardableResult
    public func apply(signedRoot: SignedRoot, proof: MerkleProof, pageViews: [ArraySlice<UInt8>]) throws -> BookLength {
        try applyPages(signedRoot: signedRoot, proof: proof, pages: pageViews)
    }

    private func applyPages<Page: RandomAccessCollection<UInt8> & ContiguousBytes>(
        signedRoot: SignedRoot, proof: MerkleProof, pages: [Page]
    ) throws -> BookLength {
        guard signedRoot.book == id else {
            throw BooksError(.invalidSignature, "the signed root belongs to book \(signedRoot.book.hex.prefix(16))…, not \(id.hex.prefix(16))…")
        }
        // Before anything else: a page beyond the limit would be stored under another row's
        // key (§4.3), and a tree of more pages under row slots made for 41 nodes at most.
        try Book.checkLength(signedRoot)
        guard proof.length == signedRoot.length, pages.count == proof.pages.count,
              MerkleProof.isWellFormed(pages: proof.pages, length: proof.length, fromLength: proof.fromLength) else {
            throw BooksError(.invalidProof, "\(proof) does not fit \(signedRoot) with \(pages.count) pages")
        }
        for page in pages where page.count > Book.maximumPageSize {
            throw BooksError(.pageTooLarge, "a page of \(page.count) bytes exceeds the maximum page size of \(Book.maximumPageSize) bytes",
                             limit: Book.maximumPageSize)
        }
        // Hashing outside the lock: the expensive part for large pages.
        let pageHashes = pages.map { page in page.withUnsafeBytes { PageHash.leaf($0) } }
        return try store.withState(id) { state, db in
            guard state.forks.isEmpty else {
                throw BooksError(.forked, "book \(id.hex.prefix(16))… is forked", file: store.file)
            }
            let verified = state.length
            let target = signedRoot.length
            if target > verified {
                guard verified == 0 || proof.fromLength == verified else {
                    throw BooksError(.staleProof, "the proof upgrades from length \(proof.fromLength) but the verified length is \(verified)", file: store.file)
                }
                try Book.checkSignature(signedRoot)
            } else {
                let held = state.latest?.length == target ? state.latest : try db.root(book: state.number, id: id, length: target)
                guard let held else {
                    throw BooksError(.staleProof, "no signed root of length \(target) is held to check the proof against", file: store.file)
                }
                // A root held here was checked when it was stored: an answer to a request
                // at the verified length, which carries that very root, costs no signature
                // check. Any other root (a different signature, or a fork) is checked.
                if held != signedRoot {
                    try Book.checkSignature(signedRoot)
                }
                if held.rootHash != signedRoot.rootHash {
                    try recordFork(ForkProof(first: held, second: signedRoot), state: &state, db: db)
                }
            }
            guard proof.fromLength <= verified else {
                throw BooksError(.staleProof, "the proof upgrades from length \(proof.fromLength), beyond the verified length \(verified)", file: store.file)
            }
            var trusted: [UInt64: PageHash] = [:]
            if proof.fromLength > 0 {
                for index in FlatTree.roots(length: proof.fromLength) {
                    guard let hash = try db.node(book: state.number, index: index) else {
                        throw BooksError(.notHeld, "tree node \(index) of verified length \(proof.fromLength) is not held", file: store.file)
                    }
                    trusted[index] = hash
                }
            }
            let outcome = try proof.evaluate(pageHashes: pageHashes, trusted: trusted)
            guard outcome.rootHash == signedRoot.rootHash else {
                throw BooksError(.invalidProof, "\(proof) does not lead to the root of \(signedRoot)", file: store.file)
            }
            if !outcome.conflicts.isEmpty {
                // Validly signed, yet not an extension of the tree this peer verified. Conflicts
                // need peaks of `fromLength` > 0, and `fromLength <= verified`: `latest` is set.
                let first = try db.root(book: state.number, id: id, length: proof.fromLength) ?? state.latest!
                try recordFork(ForkProof(first: first, second: signedRoot), state: &state, db: db)
            }
            // Nothing new (pages held, root not longer): verified, but no write, no event.
            if target > verified || !state.held.containsAll(proof.pages) {
                try commit(outcome, trusted: trusted, range: proof.pages, pages: pages, signedRoot: signedRoot, state: &state, db: db)
                store.notify(state)
            }
            return BookLength(book: id, length: state.length, contiguousLength: state.held.contiguousCount, signedRoot: state.latest)
        }
    }

    private func commit<Page: RandomAccessCollection<UInt8> & ContiguousBytes>(
        _ outcome: MerkleProof.Outcome, trusted: [UInt64: PageHash], range: Range<UInt64>, pages: [Page],
        signedRoot: SignedRoot, state: inout BookStore.BookState, db: SQLiteDatabase
    ) throws {
        var byIndex = trusted
        byIndex.reserveCapacity(trusted.count + outcome.nodes.count)
        for node in outcome.nodes { byIndex[node.index] = node.hash }
        // Pages bound for the page file (§4.10): their bytes are gathered as their rows are
        // inserted, and written in one call before the transaction that names them commits.
        let pageFile = db.pageFile.flatMap { $0.writable ? $0 : nil }
        let fileEnd = try db.transaction(durable: false) { () -> UInt64? in
            var tree: [UInt8] = []
            var filed: [UInt8] = []
            let start = pageFile?.end ?? 0
            if pageFile != nil {
                filed.reserveCapacity(pages.reduce(0) { $0 + (Book.goesToPageFile(size: $1.count) ? $1.count : 0) })
            }
            for (offset, page) in pages.enumerated() {
                let index = range.lowerBound + UInt64(offset)
                guard !state.held.contains(index) else { continue }
                tree.removeAll(keepingCapacity: true)
                let at = pageFile != nil && Book.goesToPageFile(size: page.count) ? start + UInt64(filed.count) : nil
                // A verified page completes the same nodes as at the author's: all of them
                // lie on its path to a peak, so the walk established every one. A page in the
                // page file keeps its leaf, so that its bytes can be checked (§4.10).
                for node in FlatTree.completed(byPage: index)
                where node != FlatTree.leaf(index) || page.count > Book.storedLeafThreshold || at != nil {
                    guard let hash = byIndex[node] else {
                        throw BooksError(.invalidProof, "the proof did not establish tree node \(node) of page \(index)", file: store.file)
                    }
                    hash.withUnsafeBytes { tree += $0 }
                }
                if let at {
                    page.withUnsafeBytes { filed.append(contentsOf: $0) }
                    try tree.withUnsafeBytes { t in
                        try db.insertFilePage(book: state.number, index: index, tree: t, at: at, size: page.count)
                    }
                    continue
                }
                try tree.withUnsafeBytes { t in
                    try page.withUnsafeBytes { d in
                        try db.insertPage(book: state.number, index: index, tree: t, data: d, ignoreExisting: true)
                    }
                }
            }
            if let pageFile, !filed.isEmpty {
                _ = try filed.withUnsafeBytes { try pageFile.write($0) }
                try db.recordPageFileWrite(at: start, size: filed.count, book: state.number, pages: range)
            }
            for node in outcome.nodes {
                let owner = FlatTree.rightSpan(node.index) >> 1
                // Nodes a held or arriving page completes live in that page's row.
                if range.contains(owner) || state.held.contains(owner) { continue }
                try db.insertNode(book: state.number, node: node)
            }
            if signedRoot.length > state.length {
                try db.insertRoot(book: state.number, root: signedRoot)
            }
            try db.recordPageFileSynced()
            return filed.isEmpty ? nil : start + UInt64(filed.count)
        }
        if let fileEnd { pageFile?.commit(through: fileEnd) }
        state.held.insert(range)
        if signedRoot.length > state.length {
            state.latest = signedRoot
            // The walk visited every peak of `length`: each was established (carried or
            // recomputed) or checked against a trusted one, so each is in `byIndex`.
            state.peaks = FlatTree.roots(length: signedRoot.length).map { TreeNode(index: $0, hash: byIndex[$0]!) }
        }
    }

    /// A root of more pages than a book holds is invalid, however it is signed (§3.1).
    private static func checkLength(_ signedRoot: SignedRoot) throws {
        guard signedRoot.length <= Book.maximumLength else {
            throw BooksError(.invalidProof, "the signed root claims \(signedRoot.length) pages; a book holds at most \(Book.maximumLength)",
                             limit: Int(Book.maximumLength))
        }
    }

    private static func checkSignature(_ signedRoot: SignedRoot) throws {
        guard signedRoot.isValid else {
            throw BooksError(.invalidSignature, "the signature of \(signedRoot) does not verify")
        }
    }

    private func recordFork(_ fork: ForkProof, state: inout BookStore.BookState, db: SQLiteDatabase,
                            detail: String? = nil) throws -> Never {
        try db.transaction { try db.insertFork(book: state.number, proof: fork) }
        state.forks.append(fork)
        throw BooksError(.forked, detail ?? "the author of book \(id.hex.prefix(16))… signed two different trees: \(fork)", file: store.file)
    }

    /// Keeps a fork proof found elsewhere — a holder announced two roots of one length —
    /// like one found here (§3.6): stored durably, the book refused from then on. Only a
    /// self-evident proof of this book is kept (`.invalidProof` otherwise); a book already
    /// forked keeps the proof it has.
    public func keep(_ fork: ForkProof) throws {
        guard fork.first.book == id, fork.isSelfEvident else {
            throw BooksError(.invalidProof, "\(fork) is not a fork proof of book \(id.hex.prefix(16))…")
        }
        try store.withState(id) { state, db in
            guard state.forks.isEmpty else { return }
            try db.transaction { try db.insertFork(book: state.number, proof: fork) }
            state.forks.append(fork)
        }
    }
}
