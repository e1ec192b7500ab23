import Sodium

/// What goes on the wire instead of a topic (DESIGN decision 3, PROTOCOL.md §5.2).
///
/// `Beacon = BLAKE2b-128(key: topic, "bookswarm/beacon/v1" ‖ u64le(epoch))`. Keyed BLAKE2b is
/// a PRF, so without the topic the beacons of two epochs look like independent random
/// strings: a listener cannot tell that they belong to the same task, nor compute the next
/// one. 16 bytes keep a lookup for many topics inside one datagram while leaving accidental
/// collisions (2^-64 for a billion beacons) out of reach.
public struct Beacon: Hashable, Sendable, CustomStringConvertible {
    /// PROTOCOL.md §5.2: beacon length in bytes.
    public static let length = 16
    /// PROTOCOL.md §5.2: the domain tag hashed before the epoch.
    static let domainTag: [UInt8] = Array("bookswarm/beacon/v1".utf8)

    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Beacon.length else { return nil }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// The beacon of `topic` for one epoch.
    public init(topic: Topic, epoch: BeaconEpoch) {
        var hasher = BLAKE2b(outputLength: Beacon.length, key: topic.bytes)
        hasher.update(Beacon.domainTag)
        hasher.update(uint64: epoch.index)
        bytes = hasher.finalize()
    }

    /// The beacons a receiver at `epoch` recognises as `topic`: previous, current and next
    /// epoch, for clock skew.
    public static func acceptable(topic: Topic, at epoch: BeaconEpoch) -> [Beacon] {
        epoch.acceptable.map { Beacon(topic: topic, epoch: $0) }
    }

    /// Hex of the first 4 bytes, for logs (a beacon is public anyway).
    public var description: String { "beacon(\(Array(bytes.prefix(4)).hexString))" }
}
