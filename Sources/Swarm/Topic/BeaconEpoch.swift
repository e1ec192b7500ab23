/// The time epochs beacons rotate on (PROTOCOL.md §5.1).
///
/// Five minutes: short enough that a passive listener who learns one beacon can follow a
/// task for at most a few minutes; long enough that peers whose clocks disagree by up to one
/// epoch (accepted on both sides, see `acceptable`) still recognise each other, and that
/// announcements every few seconds rarely straddle a boundary. Within one LAN the source
/// address links a host's datagrams anyway, so rotating faster buys little.
public struct BeaconEpoch: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// PROTOCOL.md §5.1: epoch length in seconds of Unix time.
    public static let seconds: UInt64 = 300

    /// `floor(unixSeconds / 300)`.
    public let index: UInt64

    public init(index: UInt64) { self.index = index }

    /// The epoch that contains `unixSeconds` (seconds since 1970-01-01 UTC, the caller's wall
    /// clock; the protocol cores never read it themselves).
    public init(unixSeconds: UInt64) { index = unixSeconds / BeaconEpoch.seconds }

    /// The epochs a receiver accepts: the current one and one on either side, so two clocks
    /// that disagree by less than one epoch always overlap.
    public var acceptable: [BeaconEpoch] {
        [index &- 1, index, index &+ 1].map(BeaconEpoch.init(index:))
    }

    public static func < (lhs: BeaconEpoch, rhs: BeaconEpoch) -> Bool { lhs.index < rhs.index }
    public var description: String { "epoch(\(index))" }
}
