import Testing
@testable import Swarm

@Suite("PacketFormat")
struct PacketFormatTests {
    @Test func fixedLengthsMatchTheProtocolDocument() {
        #expect(PacketFormat.ikInitiationLength == 152)
        #expect(PacketFormat.ikResponseLength == 108)
        #expect(PacketFormat.xxInitiationLength == 156)
        #expect(PacketFormat.xxResponseLength == 156)
        #expect(PacketFormat.xxFinishLength == 124)
        #expect(PacketFormat.transportHeaderLength == 16)
        #expect(PacketFormat.maxTransportPlaintext == 1168)
        #expect(ChannelLimits.maxMessage + 3 <= PacketFormat.maxTransportPlaintext)
    }

    @Test func handshakePacketsRoundTrip() {
        for type in [PacketType.ikInitiation, .ikResponse, .xxInitiation, .xxResponse, .xxFinish] {
            let indices = type == .ikInitiation || type == .xxInitiation ? 4 : 8
            let noiseLength = type.fixedLength! - 4 - indices
            let packet = HandshakePacket(type: type, senderIndex: 0xA1B2_C3D4,
                                         receiverIndex: indices == 8 ? 0x0102_0304 : 0,
                                         noise: (0..<noiseLength).map { UInt8(truncatingIfNeeded: $0) })
            let bytes = packet.encoded()
            #expect(bytes.count == type.fixedLength)
            #expect(Array(bytes[0..<8]) == [1, type.rawValue, 0, 0, 0xD4, 0xC3, 0xB2, 0xA1])
            guard case let .packet(parsed) = PacketHeader(bytes) else {
                Issue.record("valid packet rejected")
                continue
            }
            #expect(HandshakePacket(validated: bytes, type: parsed) == packet)
        }
    }

    @Test func transportHeaderLayout() {
        var out: [UInt8] = []
        TransportHeader(receiverIndex: 7, counter: 0x0102_0304_0506_0708).write(into: &out)
        #expect(out == [1, 6, 0, 0, 7, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
        #expect(TransportHeader(validated: out + [UInt8](repeating: 0, count: 16)).counter == 0x0102_0304_0506_0708)
    }

    @Test func headerRejectsGarbage() {
        func reason(_ bytes: [UInt8]) -> DropReason? {
            if case let .dropped(r) = PacketHeader(bytes) { return r }
            return nil
        }
        #expect(reason([]) == .malformed)
        #expect(reason([1, 6, 0]) == .malformed)
        #expect(reason([2, 6, 0, 0] + [UInt8](repeating: 0, count: 40)) == .malformed)   // version
        #expect(reason([1, 9, 0, 0] + [UInt8](repeating: 0, count: 40)) == .malformed)   // type
        #expect(reason([1, 6, 1, 0] + [UInt8](repeating: 0, count: 40)) == .malformed)   // reserved
        #expect(reason([1, 6, 0, 0] + [UInt8](repeating: 0, count: 27)) == .malformed)   // short transport
        #expect(reason([1, 1, 0, 0] + [UInt8](repeating: 0, count: 100)) == .malformed)  // wrong IK length
        #expect(reason([UInt8](repeating: 1, count: 1201)) == .tooBig)
        #expect(reason([1, 6, 0, 0] + [UInt8](repeating: 0, count: 1196)) == nil)
    }

    @Test func framesRoundTrip() {
        let frames: [SessionFrame] = [
            .ping(echo: 42), .pong(echo: .max), .close(.shutdown), .close(.replaced),
            .channelOpen(3, label: Array("book".utf8)), .channelAccept(3),
            .channelData(3, [1, 2, 3]), .channelData(5, []), .channelClose(65535),
            .channelData(0, [UInt8](repeating: 9, count: ChannelLimits.maxMessage)),
        ]
        for frame in frames {
            var out: [UInt8] = []
            frame.write(into: &out)
            #expect(out.count == frame.encodedLength)
            #expect(SessionFrame(plaintext: out) == frame)
        }
    }

    @Test func malformedFramesAreRejected() {
        #expect(SessionFrame(plaintext: []) == nil)
        #expect(SessionFrame(plaintext: [0x7F]) == nil)
        #expect(SessionFrame(plaintext: [0x01, 1, 2]) == nil)
        #expect(SessionFrame(plaintext: [0x03, 99]) == nil)
        #expect(SessionFrame(plaintext: [0x12, 1]) == nil)
        #expect(SessionFrame(plaintext: [0x11, 1, 0, 0]) == nil)
        #expect(SessionFrame(plaintext: [0x12, 1, 0] + [UInt8](repeating: 0, count: ChannelLimits.maxMessage + 1)) == nil)
    }

    @Test func controlMessages() {
        let cap = [UInt8](repeating: 0xAB, count: 32)
        #expect(ControlMessage(ControlMessage.capability(cap).encoded()) == .capability(cap))
        #expect(ControlMessage([1] + cap.dropLast()) == nil)
        #expect(ControlMessage([2] + cap) == .capabilityAck(cap))
        #expect(ControlMessage([3] + cap) == nil)
    }
}
