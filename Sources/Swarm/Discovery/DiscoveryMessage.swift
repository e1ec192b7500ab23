/// The three LAN discovery datagrams and their exact bytes (PROTOCOL.md §6.2).
///
/// ```
/// offset  size  field
///  0       4    magic "BSLD" (0x42 0x53 0x4C 0x44)
///  4       1    version = 1
///  5       1    kind: 1 query, 2 announcement, 3 answer
///  6      32    sender's peer id (Ed25519 public key)
/// 38       2    port, u16 little-endian: a query's reply port, otherwise the session port
/// 40       1    n, the number of beacons, 1...64
/// 41    16·n    beacons
/// ```
/// A datagram is exactly `41 + 16·n` bytes; anything else is malformed. The fixed layout
/// makes an answer, which repeats the header and a subset of the query's beacons, never
/// larger than the query that caused it.
public struct DiscoveryMessage: Hashable, Sendable {
    public enum Kind: UInt8, Sendable {
        /// Multicast on join: "who announces these beacons? answer to my reply port".
        case query = 1
        /// Multicast periodically: "I announce these beacons; my session port is …".
        case announcement = 2
        /// Unicast to a querier's reply port: the announced subset of its query's beacons.
        case answer = 3
    }

    /// PROTOCOL.md §6.2.
    public static let magic: [UInt8] = [0x42, 0x53, 0x4C, 0x44]
    public static let version: UInt8 = 1
    public static let headerLength = 41
    /// 64 beacons keep the largest datagram at 1065 bytes, inside the project's 1200-byte
    /// budget (DESIGN decision 5); more topics are split over several datagrams.
    public static let maxBeacons = 64
    public static let maxLength = headerLength + maxBeacons * Beacon.length

    public var kind: Kind
    public var sender: PeerID
    public var port: UInt16
    public var beacons: [Beacon]

    public init(kind: Kind, sender: PeerID, port: UInt16, beacons: [Beacon]) {
        precondition((1...DiscoveryMessage.maxBeacons).contains(beacons.count), "1...64 beacons per discovery datagram")
        self.kind = kind
        self.sender = sender
        self.port = port
        self.beacons = beacons
    }

    /// Why a datagram was not a discovery message; each reason is counted separately.
    public enum DecodeFailure: Error, Hashable, Sendable {
        case badMagic
        case unsupportedVersion
        case malformed
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(DiscoveryMessage.headerLength + beacons.count * Beacon.length)
        out += DiscoveryMessage.magic
        out.append(DiscoveryMessage.version)
        out.append(kind.rawValue)
        out += sender.bytes
        out.append(UInt8(port & 0xff))
        out.append(UInt8(port >> 8))
        out.append(UInt8(beacons.count))
        for beacon in beacons { out += beacon.bytes }
        return out
    }

    /// Parses and validates one datagram. Never traps on any input.
    public static func decode(_ bytes: [UInt8]) -> Result<DiscoveryMessage, DecodeFailure> {
        guard bytes.count >= 6, bytes[0..<4].elementsEqual(magic) else { return .failure(.badMagic) }
        guard bytes[4] == version else { return .failure(.unsupportedVersion) }
        guard bytes.count >= headerLength, let kind = Kind(rawValue: bytes[5]) else { return .failure(.malformed) }
        let count = Int(bytes[40])
        guard (1...maxBeacons).contains(count), bytes.count == headerLength + count * Beacon.length else {
            return .failure(.malformed)
        }
        let port = UInt16(bytes[38]) | UInt16(bytes[39]) << 8
        guard port != 0, let sender = try? PeerID(bytes: Array(bytes[6..<38])) else { return .failure(.malformed) }
        var beacons: [Beacon] = []
        beacons.reserveCapacity(count)
        for i in 0..<count {
            let start = headerLength + i * Beacon.length
            beacons.append(Beacon(unchecked: Array(bytes[start..<start + Beacon.length])))
        }
        return .success(DiscoveryMessage(kind: kind, sender: sender, port: port, beacons: beacons))
    }
}
