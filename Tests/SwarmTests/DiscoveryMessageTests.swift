import Sodium
import Testing
@testable import Swarm

@Suite("Discovery datagram codec")
struct DiscoveryMessageTests {
    let sender = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 1, count: 32))).publicKey)
    let beacon = Beacon(bytes: Array(0..<16))!

    @Test func encodesTheDocumentedLayout() throws {
        let m = DiscoveryMessage(kind: .announcement, sender: sender, port: 0x1234, beacons: [beacon])
        let bytes = m.encoded()
        #expect(bytes.count == 57)
        #expect(Array(bytes[0..<6]) == [0x42, 0x53, 0x4C, 0x44, 1, 2])
        #expect(Array(bytes[6..<38]) == sender.bytes)
        #expect(Array(bytes[38..<41]) == [0x34, 0x12, 1])
        #expect(Array(bytes[41...]) == Array(0..<16))
        #expect(try DiscoveryMessage.decode(bytes).get() == m)
    }

    @Test func roundTripsEveryKindAndBeaconCount() throws {
        for kind in [DiscoveryMessage.Kind.query, .announcement, .answer] {
            for n in [1, 2, 63, 64] {
                let beacons = (0..<n).map { Beacon(bytes: [UInt8](repeating: UInt8($0), count: 16))! }
                let m = DiscoveryMessage(kind: kind, sender: sender, port: 9, beacons: beacons)
                #expect(m.encoded().count == 41 + 16 * n)
                #expect(try DiscoveryMessage.decode(m.encoded()).get() == m)
            }
        }
        #expect(DiscoveryMessage.maxLength == 1065)
    }

    @Test func rejectsEveryTruncationAndExtension() {
        let bytes = DiscoveryMessage(kind: .query, sender: sender, port: 9, beacons: [beacon, beacon]).encoded()
        for cut in 0..<bytes.count {
            #expect((try? DiscoveryMessage.decode(Array(bytes.prefix(cut))).get()) == nil, "prefix \(cut)")
        }
        #expect((try? DiscoveryMessage.decode(bytes + [0]).get()) == nil)
    }

    @Test func classifiesFailures() {
        var bytes = DiscoveryMessage(kind: .query, sender: sender, port: 9, beacons: [beacon]).encoded()
        #expect(DiscoveryMessage.decode([1, 2, 3]) == .failure(.badMagic))
        var v2 = bytes; v2[4] = 2
        #expect(DiscoveryMessage.decode(v2) == .failure(.unsupportedVersion))
        var kind = bytes; kind[5] = 9
        #expect(DiscoveryMessage.decode(kind) == .failure(.malformed))
        var zeroPort = bytes; zeroPort[38] = 0; zeroPort[39] = 0
        #expect(DiscoveryMessage.decode(zeroPort) == .failure(.malformed))
        var zeroCount = bytes; zeroCount[40] = 0
        #expect(DiscoveryMessage.decode(zeroCount) == .failure(.malformed))
        var tooMany = bytes; tooMany[40] = 65
        #expect(DiscoveryMessage.decode(tooMany) == .failure(.malformed))
        bytes[40] = 2
        #expect(DiscoveryMessage.decode(bytes) == .failure(.malformed))
    }

    @Test func randomBytesNeverTrap() {
        var rng = SeededRandom(seed: 7)
        var decoded = 0
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...1100, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half of them get a valid magic and version, so the deeper checks run too.
            if n >= 5, Bool.random(using: &rng) { bytes.replaceSubrange(0..<5, with: DiscoveryMessage.magic + [1]) }
            if case .success = DiscoveryMessage.decode(bytes) { decoded += 1 }
        }
        #expect(decoded == 0)
    }
}
