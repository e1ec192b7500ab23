/// A set of page indices kept as sorted, disjoint, non-adjacent ranges: which pages of a
/// book a peer holds. Readers hold pages sparsely, usually in a few long runs.
public struct PageRanges: Hashable, Sendable, CustomStringConvertible {
    public private(set) var ranges: [Range<UInt64>] = []

    public init() {}

    public init(_ ranges: [Range<UInt64>]) {
        for range in ranges { insert(range) }
    }

    public var isEmpty: Bool { ranges.isEmpty }

    /// The number of pages in the set.
    public var count: UInt64 { ranges.reduce(0) { $0 + UInt64($1.count) } }

    public func contains(_ page: UInt64) -> Bool {
        guard let i = lastRange(startingAtOrBefore: page) else { return false }
        return ranges[i].contains(page)
    }

    /// The number of pages held from page 0 without a gap.
    public var contiguousCount: UInt64 {
        guard let first = ranges.first, first.lowerBound == 0 else { return 0 }
        return first.upperBound
    }

    /// Index of the last range whose lower bound is ≤ `page` (binary search).
    private func lastRange(startingAtOrBefore page: UInt64) -> Int? {
        var low = 0
        var high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].lowerBound <= page { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : low - 1
    }

    public mutating func insert(_ page: UInt64) { insert(page..<(page + 1)) }

    public mutating func insert(_ range: Range<UInt64>) {
        guard !range.isEmpty else { return }
        var lower = range.lowerBound
        var upper = range.upperBound
        // Merge every range that overlaps or touches the new one.
        var first = ranges.count
        var last = -1
        for (i, r) in ranges.enumerated() where r.upperBound >= lower && r.lowerBound <= upper {
            first = min(first, i)
            last = max(last, i)
            lower = min(lower, r.lowerBound)
            upper = max(upper, r.upperBound)
        }
        if last >= first {
            ranges.replaceSubrange(first...last, with: [lower..<upper])
        } else {
            let at = ranges.firstIndex { $0.lowerBound > upper } ?? ranges.count
            ranges.insert(lower..<upper, at: at)
        }
    }

    /// The parts of `range` not in the set, in order.
    public func missing(in range: Range<UInt64>) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        var cursor = range.lowerBound
        for r in ranges where r.upperBound > cursor {
            if r.lowerBound >= range.upperBound { break }
            if r.lowerBound > cursor { result.append(cursor..<r.lowerBound) }
            cursor = max(cursor, r.upperBound)
            if cursor >= range.upperBound { break }
        }
        if cursor < range.upperBound { result.append(cursor..<range.upperBound) }
        return result
    }

    /// True when every page of `range` is in the set.
    public func containsAll(_ range: Range<UInt64>) -> Bool { missing(in: range).isEmpty }

    public var description: String { ranges.map { "\($0.lowerBound)..<\($0.upperBound)" }.joined(separator: ", ") }
}
