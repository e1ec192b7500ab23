import Books

/// Which pages of a book a reader wants from its peers.
public enum Interest: Sendable, Equatable {
    /// None: this side only serves (an author's interest).
    case none
    /// Every page, following the book as it grows.
    case all
    /// These pages (sparse reading), as far as they exist.
    case pages(PageRanges)
    /// The last `n` pages of the longest length known (e.g. 1: just the newest page).
    case latest(UInt64)

    func wanted(length: UInt64) -> [Range<UInt64>] {
        guard length > 0 else { return [] }
        switch self {
        case .none: return []
        case .all: return [0..<length]
        case let .pages(ranges): return PageSpans.intersect(ranges.ranges, [0..<length])
        case let .latest(n): return n == 0 ? [] : [(length > n ? length - n : 0)..<length]
        }
    }
}
