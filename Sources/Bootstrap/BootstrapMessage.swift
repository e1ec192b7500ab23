import Swarm

/// The bootstrap protocol's datagrams (PROTOCOL.md §11), as one enum with a paired
/// `encoded()` / `init?(decoding:)`.
///
/// Every datagram opens with the marker byte 0xB5 and a type byte. Session packets (§7) open
/// with their version byte 1, so one socket carries both and the first byte tells them apart.
/// Integers are little-endian, as in §7. Decoding is total: short, long or malformed input
/// yields nil and is counted by the caller, never thrown.
public enum BootstrapMessage: Equatable, Sendable {
    // Peer → node.
    /// Put `peer` on the node under `beacons` at the sender's observed endpoint for `ttl`
    /// seconds. `signature` is the peer's Ed25519 signature over `signedBytes(observed:)`.
    case register(Register)
    /// Which peers are registered under these beacons?
    case lookup(cookie: [UInt8], beacons: [Beacon])
    /// Introduce me to `target`: tell both of us the other's addresses, so we punch.
    case connect(cookie: [UInt8], target: PeerID)
    /// Forward `payload` to the registered peer `target` (a pair the node introduced).
    case relay(target: PeerID, payload: [UInt8])

    // Node → peer.
    /// The node's answer to an unproven request: the sender's observed endpoint and a
    /// cookie to put in the next request.
    case cookie(observed: Endpoint, cookie: [UInt8])
    case registered(observed: Endpoint, ttl: UInt16, beacons: UInt8)
    case lookupReply(observed: Endpoint, groups: [LookupGroup])
    /// The other side of an introduction: where `peer` is, and the token both punch with.
    case introduction(observed: Endpoint, record: PeerRecord, token: [UInt8])
    case relayed(source: PeerID, payload: [UInt8])
    case refused(observed: Endpoint, reason: RefusalReason, request: UInt8, subject: PeerID?)

    // Peer ↔ peer.
    /// A hole-punching probe (ack false) or its answer (ack true), authenticated by the
    /// introduction token only the two peers and the node know.
    case punch(token: [UInt8], sender: PeerID, ack: Bool)

    public struct Register: Equatable, Sendable {
        public var cookie: [UInt8]
        public var peer: PeerID
        public var ttl: UInt16
        public var beacons: [Beacon]
        /// The peer's own socket addresses, for peers behind the same NAT (§11.5).
        public var locals: [Endpoint]
        public var signature: [UInt8]

        public init(cookie: [UInt8], peer: PeerID, ttl: UInt16, beacons: [Beacon], locals: [Endpoint], signature: [UInt8]) {
            self.cookie = cookie
            self.peer = peer
            self.ttl = ttl
            self.beacons = beacons
            self.locals = locals
            self.signature = signature
        }

        /// §11.3: what the signature covers. The observed endpoint is inside, so a recorded
        /// registration replayed from any other address fails.
        public func signedBytes(observed: Endpoint) -> [UInt8] {
            var w = Writer()
            w.bytes(BootstrapWire.registerDomain)
            w.endpoint(observed)
            w.bytes(peer.bytes)
            w.u16(ttl)
            w.u8(UInt8(beacons.count))
            for b in beacons { w.bytes(b.bytes) }
            w.u8(UInt8(locals.count))
            for l in locals { w.endpoint(l) }
            return w.out
        }
    }

    /// A registered peer as lookups and introductions report it.
    public struct PeerRecord: Equatable, Sendable {
        public var peer: PeerID
        public var endpoint: Endpoint
        public var locals: [Endpoint]
        public init(peer: PeerID, endpoint: Endpoint, locals: [Endpoint]) {
            self.peer = peer
            self.endpoint = endpoint
            self.locals = locals
        }
    }

    public struct LookupGroup: Equatable, Sendable {
        public var beacon: Beacon
        public var records: [PeerRecord]
        public init(beacon: Beacon, records: [PeerRecord]) {
            self.beacon = beacon
            self.records = records
        }
    }
}

/// §11.6: why a node refused a request.
public enum RefusalReason: UInt8, Sendable, CaseIterable {
    /// The signature does not verify over the registration and the endpoint the node
    /// observes (a replay from elsewhere, or a peer whose NAT mapping changed).
    case badSignature = 1
    /// The node holds as many registrations as it will (globally or for this address).
    case registrationsFull = 2
    case rateLimited = 3
    /// The sender is not registered at this endpoint (register first).
    case notRegistered = 4
    /// The target of a connect or relay is not registered.
    case unknownPeer = 5
    /// Relay between two peers the node did not introduce (connect first).
    case notIntroduced = 6
    /// The sender's relayed bandwidth is used up for now.
    case relayLimit = 7
}

/// §11.1–11.2 constants.
public enum BootstrapWire {
    /// §11.1: first byte of every bootstrap datagram ("B5": bootstrap, version 1).
    public static let marker: UInt8 = 0xB5
    public static let cookieLength = 16
    public static let tokenLength = 16
    public static let signatureLength = 64
    /// §11.3: most beacons in one registration or lookup, and most local endpoints.
    public static let maxBeacons = 32
    public static let maxLookupBeacons = 8
    public static let maxLocals = 4
    /// §11.4: no node answer exceeds this.
    public static let maxAnswer = 1200
    /// §11.7: a relayed payload is at most a session datagram (§7.1).
    public static let maxRelayPayload = PacketFormat.maxDatagram
    static let registerDomain = Array("bookswarm/bootstrap/register/v1".utf8)
    static let cookieDomain = Array("bookswarm/bootstrap/cookie/v1".utf8)

    /// §11.2 type bytes.
    enum Kind: UInt8 {
        case register = 0x01, lookup = 0x02, connect = 0x03, relay = 0x04
        case cookie = 0x81, registered = 0x82, lookupReply = 0x83, introduction = 0x84, relayed = 0x85, refused = 0x86
        case punch = 0xC1
    }

    /// Whether a datagram belongs to this protocol (cheap: first byte only).
    public static func isBootstrap(_ payload: [UInt8]) -> Bool { payload.first == marker }

    /// The length of `relay`'s header before the payload; the node rewrites only this part.
    public static let relayHeaderLength = 2 + 32
}

extension BootstrapMessage {
    var kind: BootstrapWire.Kind {
        switch self {
        case .register: .register
        case .lookup: .lookup
        case .connect: .connect
        case .relay: .relay
        case .cookie: .cookie
        case .registered: .registered
        case .lookupReply: .lookupReply
        case .introduction: .introduction
        case .relayed: .relayed
        case .refused: .refused
        case .punch: .punch
        }
    }

    public func encoded() -> [UInt8] {
        var w = Writer()
        w.u8(BootstrapWire.marker)
        w.u8(kind.rawValue)
        switch self {
        case let .register(r):
            w.bytes(r.cookie)
            w.bytes(r.peer.bytes)
            w.u16(r.ttl)
            w.u8(UInt8(r.beacons.count))
            for b in r.beacons { w.bytes(b.bytes) }
            w.u8(UInt8(r.locals.count))
            for l in r.locals { w.endpoint(l) }
            w.bytes(r.signature)
        case let .lookup(cookie, beacons):
            w.bytes(cookie)
            w.u8(UInt8(beacons.count))
            for b in beacons { w.bytes(b.bytes) }
        case let .connect(cookie, target):
            w.bytes(cookie)
            w.bytes(target.bytes)
        case let .relay(target, payload):
            w.bytes(target.bytes)
            w.bytes(payload)
        case let .cookie(observed, cookie):
            w.endpoint(observed)
            w.bytes(cookie)
        case let .registered(observed, ttl, beacons):
            w.endpoint(observed)
            w.u16(ttl)
            w.u8(beacons)
        case let .lookupReply(observed, groups):
            w.endpoint(observed)
            w.u8(UInt8(groups.count))
            for g in groups {
                w.bytes(g.beacon.bytes)
                w.u8(UInt8(g.records.count))
                for r in g.records { w.record(r) }
            }
        case let .introduction(observed, record, token):
            w.endpoint(observed)
            w.record(record)
            w.bytes(token)
        case let .relayed(source, payload):
            w.bytes(source.bytes)
            w.bytes(payload)
        case let .refused(observed, reason, request, subject):
            w.endpoint(observed)
            w.u8(reason.rawValue)
            w.u8(request)
            w.bytes(subject?.bytes ?? [UInt8](repeating: 0, count: 32))
        case let .punch(token, sender, ack):
            w.bytes(token)
            w.bytes(sender.bytes)
            w.u8(ack ? 1 : 0)
        }
        return w.out
    }

    public init?(decoding bytes: [UInt8]) {
        var r = Reader(bytes)
        guard r.u8() == BootstrapWire.marker, let raw = r.u8(), let kind = BootstrapWire.Kind(rawValue: raw) else { return nil }
        switch kind {
        case .register:
            guard let cookie = r.bytes(BootstrapWire.cookieLength), let peer = r.peer(), let ttl = r.u16(),
                  let beacons = r.beacons(max: BootstrapWire.maxBeacons), let locals = r.endpoints(max: BootstrapWire.maxLocals),
                  let signature = r.bytes(BootstrapWire.signatureLength) else { return nil }
            self = .register(Register(cookie: cookie, peer: peer, ttl: ttl, beacons: beacons, locals: locals, signature: signature))
        case .lookup:
            guard let cookie = r.bytes(BootstrapWire.cookieLength), let beacons = r.beacons(max: BootstrapWire.maxLookupBeacons),
                  !beacons.isEmpty else { return nil }
            self = .lookup(cookie: cookie, beacons: beacons)
        case .connect:
            guard let cookie = r.bytes(BootstrapWire.cookieLength), let target = r.peer() else { return nil }
            self = .connect(cookie: cookie, target: target)
        case .relay:
            guard let target = r.peer() else { return nil }
            let payload = r.rest()
            guard !payload.isEmpty, payload.count <= BootstrapWire.maxRelayPayload else { return nil }
            self = .relay(target: target, payload: payload)
            return
        case .cookie:
            guard let observed = r.endpoint(), let cookie = r.bytes(BootstrapWire.cookieLength) else { return nil }
            self = .cookie(observed: observed, cookie: cookie)
        case .registered:
            guard let observed = r.endpoint(), let ttl = r.u16(), let n = r.u8() else { return nil }
            self = .registered(observed: observed, ttl: ttl, beacons: n)
        case .lookupReply:
            guard let observed = r.endpoint(), let n = r.u8(), n <= BootstrapWire.maxLookupBeacons else { return nil }
            var groups: [LookupGroup] = []
            for _ in 0..<n {
                guard let beacon = r.bytes(Beacon.length).flatMap(Beacon.init(bytes:)), let count = r.u8() else { return nil }
                var records: [PeerRecord] = []
                for _ in 0..<count {
                    guard let record = r.record() else { return nil }
                    records.append(record)
                }
                groups.append(LookupGroup(beacon: beacon, records: records))
            }
            self = .lookupReply(observed: observed, groups: groups)
        case .introduction:
            guard let observed = r.endpoint(), let record = r.record(), let token = r.bytes(BootstrapWire.tokenLength) else { return nil }
            self = .introduction(observed: observed, record: record, token: token)
        case .relayed:
            guard let source = r.peer() else { return nil }
            let payload = r.rest()
            guard !payload.isEmpty, payload.count <= BootstrapWire.maxRelayPayload else { return nil }
            self = .relayed(source: source, payload: payload)
            return
        case .refused:
            guard let observed = r.endpoint(), let code = r.u8(), let reason = RefusalReason(rawValue: code),
                  let request = r.u8(), let subject = r.bytes(32) else { return nil }
            let peer = subject.allSatisfy { $0 == 0 } ? nil : try? PeerID(bytes: subject)
            self = .refused(observed: observed, reason: reason, request: request, subject: peer)
        case .punch:
            guard let token = r.bytes(BootstrapWire.tokenLength), let sender = r.peer(), let flag = r.u8(), flag <= 1 else { return nil }
            self = .punch(token: token, sender: sender, ack: flag == 1)
        }
        guard r.isAtEnd else { return nil }
    }
}

// MARK: Wire primitives

struct Writer {
    var out: [UInt8] = []
    init() { out.reserveCapacity(128) }
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u16(_ v: UInt16) { out.append(UInt8(v & 0xff)); out.append(UInt8(v >> 8)) }
    mutating func bytes(_ b: [UInt8]) { out.append(contentsOf: b) }

    /// §11.2: family (4 or 6), address, port.
    mutating func endpoint(_ e: Endpoint) {
        let address = e.addressBytes
        u8(address.count == 4 ? 4 : 6)
        bytes(address)
        u16(e.port)
    }

    mutating func record(_ r: BootstrapMessage.PeerRecord) {
        bytes(r.peer.bytes)
        endpoint(r.endpoint)
        u8(UInt8(r.locals.count))
        for l in r.locals { endpoint(l) }
    }
}

struct Reader {
    let buffer: [UInt8]
    var index = 0
    init(_ b: [UInt8]) { buffer = b }
    var isAtEnd: Bool { index == buffer.count }

    mutating func u8() -> UInt8? {
        guard index < buffer.count else { return nil }
        defer { index += 1 }
        return buffer[index]
    }

    mutating func u16() -> UInt16? {
        guard buffer.count - index >= 2 else { return nil }
        defer { index += 2 }
        return UInt16(buffer[index]) | UInt16(buffer[index + 1]) << 8
    }

    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard buffer.count - index >= n else { return nil }
        defer { index += n }
        return Array(buffer[index..<index + n])
    }

    mutating func rest() -> [UInt8] {
        defer { index = buffer.count }
        return Array(buffer[index...])
    }

    mutating func peer() -> PeerID? { bytes(32).flatMap { try? PeerID(bytes: $0) } }

    mutating func endpoint() -> Endpoint? {
        guard let family = u8() else { return nil }
        let length: Int
        switch family {
        case 4: length = 4
        case 6: length = 16
        default: return nil
        }
        guard let address = bytes(length), let port = u16() else { return nil }
        return Endpoint(addressBytes: address, port: port)
    }

    mutating func beacons(max: Int) -> [Beacon]? {
        guard let n = u8(), Int(n) <= max else { return nil }
        var out: [Beacon] = []
        for _ in 0..<n {
            guard let b = bytes(Beacon.length).flatMap(Beacon.init(bytes:)) else { return nil }
            out.append(b)
        }
        return out
    }

    mutating func endpoints(max: Int) -> [Endpoint]? {
        guard let n = u8(), Int(n) <= max else { return nil }
        var out: [Endpoint] = []
        for _ in 0..<n {
            guard let e = endpoint() else { return nil }
            out.append(e)
        }
        return out
    }

    mutating func record() -> BootstrapMessage.PeerRecord? {
        guard let peer = peer(), let endpoint = endpoint(), let locals = endpoints(max: BootstrapWire.maxLocals) else { return nil }
        return BootstrapMessage.PeerRecord(peer: peer, endpoint: endpoint, locals: locals)
    }
}
