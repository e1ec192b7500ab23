import Books
import Testing

@Suite("PageRanges") struct PageRangesTests {
    @Test func insertMergesTouchingAndOverlappingRanges() {
        var set = PageRanges()
        set.insert(10..<20)
        set.insert(30..<40)
        set.insert(5)
        #expect(set.ranges == [5..<6, 10..<20, 30..<40])
        set.insert(20..<30)
        #expect(set.ranges == [5..<6, 10..<40])
        set.insert(0..<5)
        #expect(set.ranges == [0..<6, 10..<40])
        set.insert(3..<50)
        #expect(set.ranges == [0..<50])
        set.insert(60..<60)
        #expect(set.ranges == [0..<50])
        #expect(set.count == 50 && set.contiguousCount == 50)
    }

    @Test func containsMissingAndContiguity() {
        let set = PageRanges([2..<4, 900..<901, 7..<9])
        #expect(set.ranges == [2..<4, 7..<9, 900..<901])
        #expect(set.contains(2) && set.contains(3) && set.contains(900))
        #expect(!set.contains(0) && !set.contains(4) && !set.contains(899) && !set.contains(901))
        #expect(set.contiguousCount == 0)
        #expect(set.missing(in: 0..<10) == [0..<2, 4..<7, 9..<10])
        #expect(set.missing(in: 2..<4) == [])
        #expect(set.missing(in: 3..<8) == [4..<7])
        #expect(set.missing(in: 950..<960) == [950..<960])
        #expect(set.containsAll(7..<9) && !set.containsAll(7..<10))
        #expect(PageRanges([0..<5]).contiguousCount == 5)
    }
}
