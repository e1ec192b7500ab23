@testable import Books
import Testing

@Suite("FlatTree") struct FlatTreeTests {
    @Test func indexArithmeticMatchesTheLayout() {
        //            7
        //      3           11
        //   1     5     9     13
        //  0 2   4 6   8 10 12  14
        #expect(FlatTree.index(depth: 0, offset: 3) == 6)
        #expect(FlatTree.index(depth: 2, offset: 1) == 11)
        #expect(FlatTree.depth(7) == 3 && FlatTree.depth(8) == 0 && FlatTree.depth(5) == 1)
        #expect(FlatTree.offset(11) == 1 && FlatTree.offset(12) == 6)
        #expect(FlatTree.parent(4) == 5 && FlatTree.parent(5) == 3 && FlatTree.parent(3) == 7 && FlatTree.parent(11) == 7)
        #expect(FlatTree.sibling(4) == 6 && FlatTree.sibling(3) == 11 && FlatTree.sibling(9) == 13)
        #expect(FlatTree.children(7) == (3, 11) && FlatTree.children(5) == (4, 6))
        #expect(FlatTree.leftSpan(11) == 8 && FlatTree.rightSpan(11) == 14 && FlatTree.rightSpan(6) == 6)
        #expect(FlatTree.pages(11) == 4..<8 && FlatTree.pages(6) == 3..<4 && FlatTree.pages(7) == 0..<8)
    }

    @Test func rootsArePeaksOfTheBinaryDecomposition() {
        #expect(FlatTree.roots(length: 0) == [])
        #expect(FlatTree.roots(length: 1) == [0])
        #expect(FlatTree.roots(length: 2) == [1])
        #expect(FlatTree.roots(length: 3) == [1, 4])
        #expect(FlatTree.roots(length: 7) == [3, 9, 12])
        #expect(FlatTree.roots(length: 8) == [7])
        #expect(FlatTree.roots(length: 11) == [7, 17, 20])
        for length in UInt64(1)...300 {
            let roots = FlatTree.roots(length: length)
            #expect(roots.count == length.nonzeroBitCount)
            // The peaks tile 0..<length, left to right, without gaps.
            var next: UInt64 = 0
            for root in roots {
                #expect(FlatTree.pages(root).lowerBound == next)
                next = FlatTree.pages(root).upperBound
            }
            #expect(next == length)
        }
    }

    @Test func eachNodeIsCompletedByExactlyOnePage() {
        #expect(Array(FlatTree.completed(byPage: 0)) == [0])
        #expect(Array(FlatTree.completed(byPage: 1)) == [2, 1])
        #expect(Array(FlatTree.completed(byPage: 3)) == [6, 5, 3])
        #expect(Array(FlatTree.completed(byPage: 7)) == [14, 13, 11, 7])
        var seen = Set<UInt64>()
        for page in UInt64(0)..<256 {
            // Leaf first, each next node the parent of the one before, up to the first that
            // is a left child (even offset): where the walk up from the leaf stops.
            let nodes = FlatTree.completed(byPage: page)
            #expect(nodes.first == FlatTree.leaf(page))
            for (child, parent) in zip(nodes, nodes.dropFirst()) { #expect(FlatTree.parent(child) == parent) }
            #expect(FlatTree.offset(nodes.last!) & 1 == 0)
            for node in nodes {
                #expect(FlatTree.rightSpan(node) == 2 * page)
                #expect(seen.insert(node).inserted)
            }
        }
        // 256 pages complete every node of the perfect tree over them: 511.
        #expect(seen.count == 511)
    }
}
