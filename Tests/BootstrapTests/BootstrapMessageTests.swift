import Bootstrap
import Sodium
import Swarm
import Testing

@Suite("Bootstrap wire codec (PROTOCOL.md §11.2)")
struct BootstrapMessageTests {
    static let peer = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 7, count: 32))).publicKey)
    static let beacon = Beacon(bytes: [UInt8](repeating: 0xAB, count: 16))!
    static let v4 = Endpoint.v4(198, 51, 100, 7, port: 40_000)
    static let v6 = Endpoint(address: .v6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]), port: 9)
    static let record = BootstrapMessage.PeerRecord(peer: peer, endpoint: v4, locals: [v6, .v4(10, 0, 0, 2, port: 5)])

    static var all: [BootstrapMessage] {
        let cookie = [UInt8](repeating: 3, count: 16)
        return [
            .register(.init(cookie: cookie, peer: peer, ttl: 60, beacons: [beacon, beacon], locals: [v4], signature: [UInt8](repeating: 9, count: 64))),
            .lookup(cookie: cookie, beacons: [beacon]),
            .connect(cookie: cookie, target: peer),
            .relay(target: peer, payload: [1, 2, 3]),
            .cookie(observed: v6, cookie: cookie),
            .registered(observed: v4, ttl: 60, beacons: 3),
            .lookupReply(observed: v4, groups: [.init(beacon: beacon, records: [record, record]), .init(beacon: beacon, records: [])]),
            .introduction(observed: v4, record: record, token: cookie),
            .relayed(source: peer, payload: [UInt8](repeating: 1, count: 1200)),
            .refused(observed: v4, reason: .notIntroduced, request: 4, subject: peer),
            .refused(observed: v4, reason: .rateLimited, request: 2, subject: nil),
            .punch(token: cookie, sender: peer, ack: true),
        ]
    }

    @Test func everyMessageRoundTrips() {
        for message in Self.all {
            let bytes = message.encoded()
            #expect(bytes[0] == BootstrapWire.marker)
            #expect(BootstrapMessage(decoding: bytes) == message, "\(message)")
        }
    }

    @Test func truncatedOrExtendedMessagesAreRejected() {
        for message in Self.all {
            let bytes = message.encoded()
            switch message {
            case .relay, .relayed:
                // The payload runs to the end: only the header can be cut short.
                #expect(BootstrapMessage(decoding: Array(bytes.prefix(BootstrapWire.relayHeaderLength))) == nil)
            default:
                for cut in 0..<bytes.count { #expect(BootstrapMessage(decoding: Array(bytes.prefix(cut))) == nil) }
                #expect(BootstrapMessage(decoding: bytes + [0]) == nil)
            }
        }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if bytes.count > 1 && Bool.random(using: &rng) { bytes[0] = BootstrapWire.marker }
            _ = BootstrapMessage(decoding: bytes)
        }
    }

    @Test func sessionPacketsAreNotBootstrapDatagrams() {
        // Session packets open with their version byte (§7.1), never the marker.
        #expect(!BootstrapWire.isBootstrap([PacketFormat.version, 6, 0, 0]))
        #expect(BootstrapWire.isBootstrap(BootstrapMessage.punch(token: [UInt8](repeating: 0, count: 16), sender: Self.peer, ack: false).encoded()))
    }

    @Test func virtualEndpointsAreInTheDiscardBlock() {
        let v = Endpoint(address: .v6([0x01, 0x00] + [UInt8](repeating: 0, count: 13) + [5]), port: 9)
        #expect(VirtualEndpoint.contains(v))
        #expect(!VirtualEndpoint.contains(Self.v4))
        #expect(!VirtualEndpoint.contains(Self.v6))
    }
}
