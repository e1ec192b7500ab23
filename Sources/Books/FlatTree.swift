/// Index arithmetic of a flat tree, the layout hypercore uses for its Merkle tree
/// (PROTOCOL.md §3.2): the nodes of a binary tree over pages numbered in-order, so that
/// page `i` is the leaf at index `2i` (even), and parent nodes sit at odd indices between
/// their children. Depth = the number of trailing one bits. A node of depth `d` covers
/// `2^d` pages. The tree for `n` pages is a list of perfect subtrees ("peaks", `roots`).
public enum FlatTree {
    /// The node at `depth` and `offset` (its position among the nodes of that depth).
    @inlinable
    public static func index(depth: Int, offset: UInt64) -> UInt64 {
        (offset << UInt64(depth + 1)) | ((1 << UInt64(depth)) - 1)
    }

    /// The leaf index of page `page`.
    @inlinable
    public static func leaf(_ page: UInt64) -> UInt64 { page << 1 }

    @inlinable
    public static func depth(_ index: UInt64) -> Int { (~index).trailingZeroBitCount }

    @inlinable
    public static func offset(_ index: UInt64) -> UInt64 { index >> UInt64(depth(index) + 1) }

    @inlinable
    public static func parent(_ index: UInt64) -> UInt64 {
        let d = depth(index)
        return self.index(depth: d + 1, offset: offset(index) >> 1)
    }

    @inlinable
    public static func sibling(_ index: UInt64) -> UInt64 {
        let d = depth(index)
        return self.index(depth: d, offset: offset(index) ^ 1)
    }

    /// The left and right children of a parent node (depth ≥ 1).
    @inlinable
    public static func children(_ index: UInt64) -> (left: UInt64, right: UInt64) {
        let d = depth(index)
        precondition(d > 0, "a leaf has no children")
        let half: UInt64 = 1 << UInt64(d - 1)
        return (index - half, index + half)
    }

    /// The leftmost leaf index under `index`.
    @inlinable
    public static func leftSpan(_ index: UInt64) -> UInt64 { index - ((1 << UInt64(depth(index))) - 1) }

    /// The rightmost leaf index under `index`.
    @inlinable
    public static func rightSpan(_ index: UInt64) -> UInt64 { index + ((1 << UInt64(depth(index))) - 1) }

    /// The pages a node covers.
    @inlinable
    public static func pages(_ index: UInt64) -> Range<UInt64> {
        (leftSpan(index) >> 1)..<((rightSpan(index) >> 1) + 1)
    }

    /// The peaks of a tree of `length` pages, left to right: the perfect subtrees of the
    /// binary decomposition of `length`, largest first.
    public static func roots(length: UInt64) -> [UInt64] {
        var result: [UInt64] = []
        var start: UInt64 = 0
        var remaining = length
        while remaining > 0 {
            let depth = 63 - remaining.leadingZeroBitCount
            let size: UInt64 = 1 << UInt64(depth)
            result.append(index(depth: depth, offset: start >> UInt64(depth)))
            start += size
            remaining -= size
        }
        return result
    }

    /// The nodes that become complete when page `page` is appended: its leaf, then each
    /// parent of which it is the rightmost page, bottom up. Their count is 1 + the number
    /// of trailing one bits of `page`. Computed on access: a reader storing an answer walks
    /// them for every page, and an array each would be an allocation per page.
    public static func completed(byPage page: UInt64) -> CompletedNodes { CompletedNodes(page: page) }

    /// `completed(byPage:)`: the node of depth `i` above the page, for `i` from 0.
    public struct CompletedNodes: RandomAccessCollection, Sendable {
        public let page: UInt64
        public var startIndex: Int { 0 }
        public var endIndex: Int { 1 + (~page).trailingZeroBitCount }
        public subscript(depth: Int) -> UInt64 {
            precondition(depth >= 0 && depth < endIndex, "page \(page) completes nodes of depth 0..<\(endIndex)")
            return FlatTree.index(depth: depth, offset: page >> UInt64(depth))
        }
    }
}
