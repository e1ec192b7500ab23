import Foundation

/// A point in time, in nanoseconds since an origin the caller chooses (a monotonic clock's
/// zero at run time, or 0 in tests). The session layer never reads a clock: every input
/// carries `now` as one of these.
public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static let zero = Timestamp(nanoseconds: 0)

    public static func seconds(_ s: Double) -> Timestamp { Timestamp(nanoseconds: UInt64(s * 1e9)) }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (t: Timestamp, d: Duration) -> Timestamp {
        let n = d.nanosecondsClamped
        return n >= 0 ? Timestamp(nanoseconds: t.nanoseconds &+ UInt64(n))
                      : Timestamp(nanoseconds: t.nanoseconds >= UInt64(-n) ? t.nanoseconds - UInt64(-n) : 0)
    }

    /// `a - b`, zero when `b` is later (timers only ever ask "how long since").
    public static func - (a: Timestamp, b: Timestamp) -> Duration {
        a.nanoseconds >= b.nanoseconds ? .nanoseconds(Int64(a.nanoseconds - b.nanoseconds)) : .zero
    }

    public var description: String { String(format: "%.3fs", Double(nanoseconds) / 1e9) }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int64`.
    var nanosecondsClamped: Int64 {
        let (s, atto) = components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return s < 0 ? .min : .max }
        return ns &+ atto / 1_000_000_000
    }

    var seconds: Double { Double(nanosecondsClamped) / 1e9 }
}
