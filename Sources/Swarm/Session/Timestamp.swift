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

extension Timestamp {
    /// `self` plus `nanoseconds`, saturating.
    func adding(nanoseconds n: UInt64) -> Timestamp {
        let (sum, overflow) = nanoseconds.addingReportingOverflow(n)
        return Timestamp(nanoseconds: overflow ? .max : sum)
    }

    /// Nanoseconds from `earlier` to `self`, zero when `earlier` is later.
    func nanoseconds(since earlier: Timestamp) -> UInt64 {
        nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
    }
}

/// The session configuration's durations in nanoseconds, computed when the configuration is
/// set. Every packet sent or received recomputes its session's next timer and checks its
/// keys' age: with these that is integer arithmetic, where a `Duration` costs a 128-bit
/// multiplication or division each time it is taken apart or built.
struct SessionTiming {
    var deadPeerTimeout: UInt64
    var keepaliveInterval: UInt64
    var rekeyAfterTime: UInt64
    var rejectAfterTime: UInt64
    var previousKeysLinger: UInt64
    /// The whole retransmission schedule of an initiator (`handshakeRetransmitMax` ×
    /// `handshakeAttempts`): how long an unanswered or unconfirmed handshake is kept.
    var handshakeLifetime: UInt64
    /// The least time between two initiations the lower side of a simultaneous dial sends
    /// because the other side's initiations arrive (a quarter of the first retransmission).
    var simultaneousDialResend: UInt64
    /// How long the initiator of keys it has heard nothing under waits before it confirms
    /// them again (the first handshake retransmission's interval, capped by the keepalive).
    var confirmRetransmit: UInt64

    init(_ c: SessionConfiguration) {
        func ns(_ d: Duration) -> UInt64 { UInt64(max(0, d.nanosecondsClamped)) }
        deadPeerTimeout = ns(c.deadPeerTimeout)
        keepaliveInterval = ns(c.keepaliveInterval)
        rekeyAfterTime = ns(c.rekeyAfterTime)
        rejectAfterTime = ns(c.rejectAfterTime)
        previousKeysLinger = ns(c.previousKeysLinger)
        handshakeLifetime = ns(c.handshakeRetransmitMax * c.handshakeAttempts)
        simultaneousDialResend = ns(c.handshakeRetransmitBase / 4)
        confirmRetransmit = min(ns(c.handshakeRetransmitBase), ns(c.keepaliveInterval))
    }

    /// When keys made at `createdAt` are due for a rekey: on time for their initiator, a
    /// keepalive later for the responder (so the two do not rekey at once).
    func rekeyDue(createdAt: Timestamp, isInitiator: Bool) -> Timestamp {
        createdAt.adding(nanoseconds: isInitiator ? rekeyAfterTime : rekeyAfterTime + keepaliveInterval)
    }
}
