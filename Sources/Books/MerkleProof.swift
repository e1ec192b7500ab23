/// The tree nodes that tie a range of pages — and, optionally, a reader's verified length —
/// to the root of a longer tree (PROTOCOL.md §3.5).
///
/// One walk defines every proof: visit the peaks of the tree of `length` pages, left to
/// right, depth first. A node is
/// * *expanded* (its children visited) when it covers a proven page, or covers pages both
///   below and at or above `fromLength`; an expanded leaf is a proven page, hashed by the
///   reader from the page bytes it receives;
/// * *carried* in `nodes` otherwise. A carried node that is a peak of `fromLength` is also
///   *checked*: the reader compares it with the peak it verified before.
///
/// So a proof of one page against a signed root costs about log2(length) nodes, an upgrade
/// from a verified length about 2·log2(length), and the list is canonical: the reader
/// consumes it in walk order and rejects any node out of place or left over. The checked
/// peaks prove that the longer tree extends the one the reader verified; when one differs
/// and the root still matches a valid signature, the author signed two histories: a fork.
public struct MerkleProof: Hashable, Sendable, CustomStringConvertible {
    /// The pages proven (empty for a pure upgrade).
    public let pages: Range<UInt64>
    /// The length of the tree the proof leads to: the signed root's length.
    public let length: UInt64
    /// The reader's verified length this proof upgrades from, or 0 for none.
    public let fromLength: UInt64
    /// The carried nodes, in walk order.
    public let nodes: [TreeNode]

    public init(pages: Range<UInt64>, length: UInt64, fromLength: UInt64, nodes: [TreeNode]) {
        self.pages = pages
        self.length = length
        self.fromLength = fromLength
        self.nodes = nodes
    }

    public var description: String {
        "MerkleProof(pages \(pages), length \(length), from \(fromLength), \(nodes.count) nodes)"
    }

    enum Step { case checked, expanded, carried }

    /// Whether a request is well formed: pages within the length, a tree of 1 to
    /// `Book.maximumLength` pages, and an upgrade from a length no longer than the target.
    package static func isWellFormed(pages: Range<UInt64>, length: UInt64, fromLength: UInt64) -> Bool {
        length > 0 && length <= Book.maximumLength && pages.upperBound <= length && fromLength <= length
    }

    static func step(_ index: UInt64, pages: Range<UInt64>, fromLength: UInt64, oldPeaks: [UInt64]) -> Step {
        let covered = FlatTree.pages(index)
        let touchesPages = !pages.isEmpty && covered.lowerBound < pages.upperBound && pages.lowerBound < covered.upperBound
        if touchesPages { return .expanded }
        if fromLength > 0 {
            if oldPeaks.contains(index) { return .checked }
            if covered.lowerBound < fromLength && covered.upperBound > fromLength { return .expanded }
        }
        return .carried
    }

    /// The indices of the nodes a proof for this request carries, in walk order.
    package static func nodeIndices(pages: Range<UInt64>, length: UInt64, fromLength: UInt64) -> [UInt64] {
        precondition(isWellFormed(pages: pages, length: length, fromLength: fromLength), "malformed proof request")
        let oldPeaks = fromLength > 0 ? FlatTree.roots(length: fromLength) : []
        var result: [UInt64] = []
        func visit(_ index: UInt64) {
            switch step(index, pages: pages, fromLength: fromLength, oldPeaks: oldPeaks) {
            case .checked, .carried:
                result.append(index)
            case .expanded:
                guard FlatTree.depth(index) > 0 else { return }
                let (left, right) = FlatTree.children(index)
                visit(left)
                visit(right)
            }
        }
        for peak in FlatTree.roots(length: length) { visit(peak) }
        return result
    }

    /// What checking a proof yields.
    package struct Outcome {
        /// The root hash over the recomputed peaks of `length`.
        package var rootHash: PageHash
        /// Every node the proof establishes: carried, and recomputed (leaves included).
        var nodes: [TreeNode]
        /// Peaks of `fromLength` whose recomputed hash differs from the trusted one. If
        /// the root still matches a valid signature, the author signed a divergent tree.
        var conflicts: [UInt64]
    }

    /// Recompute the root from the proof and the hashes of the proven pages (in order),
    /// comparing the peaks of `fromLength` with `trusted`, the ones the reader verified.
    /// Throws `.invalidProof` when the proof does not fit the walk; the caller compares
    /// `rootHash` with the signed root.
    package func evaluate(pageHashes: [PageHash], trusted: [UInt64: PageHash]) throws -> Outcome {
        guard MerkleProof.isWellFormed(pages: pages, length: length, fromLength: fromLength),
              pageHashes.count == pages.count else {
            throw BooksError(.invalidProof, "proof of pages \(pages) at length \(length) from \(fromLength) with \(pageHashes.count) pages is malformed")
        }
        let oldPeaks = fromLength > 0 ? FlatTree.roots(length: fromLength) : []
        var cursor = 0
        var established: [TreeNode] = []
        established.reserveCapacity(nodes.count + 2 * pageHashes.count + 64)
        var conflicts: [UInt64] = []

        func visit(_ index: UInt64) throws -> PageHash {
            switch MerkleProof.step(index, pages: pages, fromLength: fromLength, oldPeaks: oldPeaks) {
            case .checked:
                guard let known = trusted[index] else {
                    throw BooksError(.notHeld, "tree node \(index) of the verified length \(fromLength) is not held")
                }
                guard cursor < nodes.count, nodes[cursor].index == index else {
                    throw BooksError(.invalidProof, "proof lacks tree node \(index) where the walk needs it")
                }
                let node = nodes[cursor]
                cursor += 1
                if node.hash != known { conflicts.append(index) }
                return node.hash
            case .carried:
                guard cursor < nodes.count, nodes[cursor].index == index else {
                    throw BooksError(.invalidProof, "proof lacks tree node \(index) where the walk needs it")
                }
                let node = nodes[cursor]
                cursor += 1
                established.append(node)
                return node.hash
            case .expanded:
                let hash: PageHash
                if FlatTree.depth(index) == 0 {
                    hash = pageHashes[Int((index >> 1) - pages.lowerBound)]
                } else {
                    let (left, right) = FlatTree.children(index)
                    let l = try visit(left)
                    let r = try visit(right)
                    hash = PageHash.parent(l, r)
                }
                established.append(TreeNode(index: index, hash: hash))
                if oldPeaks.contains(index), let known = trusted[index], known != hash {
                    conflicts.append(index)
                }
                return hash
            }
        }

        var peaks: [TreeNode] = []
        for peak in FlatTree.roots(length: length) {
            peaks.append(TreeNode(index: peak, hash: try visit(peak)))
        }
        guard cursor == nodes.count else {
            throw BooksError(.invalidProof, "proof carries \(nodes.count - cursor) nodes the walk does not use")
        }
        return Outcome(rootHash: PageHash.root(peaks: peaks), nodes: established, conflicts: conflicts)
    }
}

extension MerkleProof {
    /// Checks, without any store, that `pages` (the pages of `self.pages`, in order) and
    /// this proof lead to `signedRoot` and that its signature is valid. Only for proofs
    /// that upgrade from nothing (`fromLength == 0`); `Book.apply` checks the rest and
    /// stores.
    public func verifies(pages: [[UInt8]], against signedRoot: SignedRoot) -> Bool {
        guard fromLength == 0, length == signedRoot.length, pages.count == self.pages.count,
              pages.allSatisfy({ $0.count <= Book.maximumPageSize }),
              let outcome = try? evaluate(pageHashes: pages.map { PageHash.leaf($0) }, trusted: [:]) else { return false }
        return outcome.rootHash == signedRoot.rootHash && signedRoot.isValid
    }
}
