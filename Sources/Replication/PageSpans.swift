import Books

/// Range arithmetic on sorted, disjoint page ranges, for choosing what to request:
/// wanted ∩ held by the remote − held here − in flight.
enum PageSpans {
    /// `a ∩ b`, both sorted and disjoint.
    static func intersect(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        var i = 0
        var j = 0
        while i < a.count, j < b.count {
            let lower = max(a[i].lowerBound, b[j].lowerBound)
            let upper = min(a[i].upperBound, b[j].upperBound)
            if lower < upper { result.append(lower..<upper) }
            if a[i].upperBound < b[j].upperBound { i += 1 } else { j += 1 }
        }
        return result
    }

    /// `a − b`, both sorted and disjoint.
    static func subtract(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        guard !b.isEmpty else { return a }
        var result: [Range<UInt64>] = []
        var j = 0
        for range in a {
            var lower = range.lowerBound
            while j < b.count, b[j].upperBound <= lower { j += 1 }
            var k = j
            while k < b.count, b[k].lowerBound < range.upperBound {
                if b[k].lowerBound > lower { result.append(lower..<b[k].lowerBound) }
                lower = max(lower, b[k].upperBound)
                k += 1
            }
            if lower < range.upperBound { result.append(lower..<range.upperBound) }
        }
        return result
    }

    /// Sorted, merged ranges from any list.
    static func normalized(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        PageRanges(ranges).ranges
    }
}
