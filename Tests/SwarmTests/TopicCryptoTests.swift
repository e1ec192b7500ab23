import Sodium
import Testing
@testable import Swarm

@Suite("Topic crypto: beacons and capabilities")
struct TopicCryptoTests {
    let topic = Topic(bytes: [UInt8](repeating: 0x42, count: 32))!
    let other = Topic(bytes: [UInt8](repeating: 0x43, count: 32))!
    let hash = [UInt8](repeating: 0xA5, count: 64)

    @Test func epochIsFiveMinutesOfUnixTime() {
        #expect(BeaconEpoch(unixSeconds: 0).index == 0)
        #expect(BeaconEpoch(unixSeconds: 299).index == 0)
        #expect(BeaconEpoch(unixSeconds: 300).index == 1)
        #expect(BeaconEpoch(unixSeconds: 1_764_000_000).acceptable.map(\.index) == [5_879_999, 5_880_000, 5_880_001])
    }

    @Test func beaconIsDeterministicAndSixteenBytes() {
        let e = BeaconEpoch(index: 7)
        #expect(Beacon(topic: topic, epoch: e) == Beacon(topic: topic, epoch: e))
        #expect(Beacon(topic: topic, epoch: e).bytes.count == 16)
        #expect(Beacon(bytes: [1, 2, 3]) == nil)
    }

    @Test func beaconMatchesItsDefinition() {
        // PROTOCOL.md §5.2, recomputed with the one-shot hash.
        let e = BeaconEpoch(index: 0x0102_0304_0506_0708)
        let expected = BLAKE2b.hash(Array("bookswarm/beacon/v1".utf8) + [8, 7, 6, 5, 4, 3, 2, 1], outputLength: 16, key: topic.bytes)
        #expect(Beacon(topic: topic, epoch: e).bytes == expected)
    }

    @Test func knownAnswersFromAnIndependentBLAKE2b() {
        // Computed with Python's hashlib.blake2b from PROTOCOL.md §5 alone:
        // topic = 00 01 … 1f, handshake hash = 40 41 … 7f, epoch 5880000.
        let t = Topic(bytes: Array(0..<32))!
        let h: [UInt8] = Array(64..<128)
        #expect(Beacon(topic: t, epoch: BeaconEpoch(index: 5_880_000)).bytes.hexString == "f80ee9dd8681029941e525f397d6142b")
        #expect(Capability.make(topic: t, handshakeHash: h, sender: .initiator).hexString
            == "9986cd28bbe6c9a34f305438a44d8ebee0f2687171763619e070d119ea4db38f")
        #expect(Capability.make(topic: t, handshakeHash: h, sender: .responder).hexString
            == "b1d9713141181039d6c7ef4ca62c4e09f06c9b19b537577297d908380781beec")
    }

    @Test func epochRotationIsUnlinkable() {
        // Consecutive epochs share no visible structure: about half the bits differ, and no
        // two of 1000 epochs collide; different topics in the same epoch differ the same way.
        var seen = Set<Beacon>()
        var totalDistance = 0
        var previous = Beacon(topic: topic, epoch: BeaconEpoch(index: 0))
        seen.insert(previous)
        for i in 1..<1000 {
            let b = Beacon(topic: topic, epoch: BeaconEpoch(index: UInt64(i)))
            #expect(seen.insert(b).inserted)
            totalDistance += zip(previous.bytes, b.bytes).map { ($0 ^ $1).nonzeroBitCount }.reduce(0, +)
            previous = b
        }
        let mean = Double(totalDistance) / 999
        #expect(abs(mean - 64) < 3, "mean Hamming distance \(mean) of 128 bits")
        #expect(Beacon(topic: topic, epoch: BeaconEpoch(index: 5)) != Beacon(topic: other, epoch: BeaconEpoch(index: 5)))
    }

    @Test func acceptableCoversOneEpochOfSkewEitherWay() {
        let now = BeaconEpoch(index: 100)
        let accepted = Beacon.acceptable(topic: topic, at: now)
        #expect(accepted.contains(Beacon(topic: topic, epoch: BeaconEpoch(index: 99))))
        #expect(accepted.contains(Beacon(topic: topic, epoch: BeaconEpoch(index: 101))))
        #expect(!accepted.contains(Beacon(topic: topic, epoch: BeaconEpoch(index: 102))))
        #expect(!accepted.contains(Beacon(topic: topic, epoch: BeaconEpoch(index: 98))))
    }

    @Test func capabilityVerifiesForTheSameSessionTopicAndRole() {
        let cap = Capability.make(topic: topic, handshakeHash: hash, sender: .initiator)
        #expect(cap.count == 32)
        #expect(Capability.verify(cap, topic: topic, handshakeHash: hash, sender: .initiator))
    }

    @Test func capabilityIsBoundToTheHandshakeHash() {
        let cap = Capability.make(topic: topic, handshakeHash: hash, sender: .initiator)
        var otherHash = hash
        otherHash[63] ^= 1
        #expect(!Capability.verify(cap, topic: topic, handshakeHash: otherHash, sender: .initiator))
    }

    @Test func capabilityIsBoundToTheTopic() {
        let cap = Capability.make(topic: topic, handshakeHash: hash, sender: .initiator)
        #expect(!Capability.verify(cap, topic: other, handshakeHash: hash, sender: .initiator))
    }

    @Test func reflectedCapabilityFails() {
        // The responder, lacking the topic, sends back what the initiator sent.
        let cap = Capability.make(topic: topic, handshakeHash: hash, sender: .initiator)
        #expect(!Capability.verify(cap, topic: topic, handshakeHash: hash, sender: .responder))
        #expect(Capability.Role.initiator.peer == .responder)
    }

    @Test func truncatedOrFlippedCapabilityFails() {
        let cap = Capability.make(topic: topic, handshakeHash: hash, sender: .responder)
        #expect(!Capability.verify(Array(cap.prefix(31)), topic: topic, handshakeHash: hash, sender: .responder))
        #expect(!Capability.verify(cap + [0], topic: topic, handshakeHash: hash, sender: .responder))
        #expect(!Capability.verify([], topic: topic, handshakeHash: hash, sender: .responder))
        for i in [0, 15, 31] {
            var bad = cap
            bad[i] ^= 0x80
            #expect(!Capability.verify(bad, topic: topic, handshakeHash: hash, sender: .responder))
        }
    }

    @Test func recordedBeaconDoesNotForgeACapability() {
        // An eavesdropper holds every beacon it heard (all acceptable epochs). The natural
        // forgeries — using a beacon as the key, or a topic guessed from it — fail.
        let beacons = Beacon.acceptable(topic: topic, at: BeaconEpoch(index: 9))
        for b in beacons {
            let padded = Topic(bytes: b.bytes + b.bytes)!
            let forged = Capability.make(topic: padded, handshakeHash: hash, sender: .initiator)
            #expect(!Capability.verify(forged, topic: topic, handshakeHash: hash, sender: .initiator))
            let keyedWithBeacon = BLAKE2b.hash(Array("bookswarm/capability/v1".utf8) + [1] + hash, outputLength: 32, key: b.bytes)
            #expect(!Capability.verify(keyedWithBeacon, topic: topic, handshakeHash: hash, sender: .initiator))
        }
    }
}
