/// Session packets on the wire (PROTOCOL.md §7). Every packet starts with a 4-byte header:
/// version, type, two reserved zero bytes. Integers are little-endian. Each handshake type
/// has one fixed length, so a length check alone rejects most garbage before any crypto.
/// The readers and writers below are `package`: the fuzz target (Sources/FuzzSwarm) checks
/// that what they read re-encodes to the same bytes.
public enum PacketFormat {
    /// §7.1: the only version this code speaks.
    public static let version: UInt8 = 1
    /// §7.1: no datagram, of any kind, exceeds this (IPv6 minimum MTU 1280 minus headers).
    public static let maxDatagram = 1200
    public static let headerLength = 4
    public static let indexLength = 4
    public static let counterLength = 8
    public static let tagLength = 16
    public static let keyLength = 32

    /// §7.3: what every peer puts in its first encrypted handshake payload: its Ed25519 peer
    /// id and the first 16 bytes of the session it rekeys (zeros for a new session).
    public static let handshakePayloadLength = 32 + SessionID.length
    static let encryptedPayload = handshakePayloadLength + tagLength        // 64

    // §7.2: Noise message lengths of our two patterns with that payload.
    static let ikMessage1 = keyLength + (keyLength + tagLength) + encryptedPayload   // e, es, s, ss
    static let ikMessage2 = keyLength + encryptedPayload                           // e, ee, se
    static let xxMessage2 = keyLength + (keyLength + tagLength) + encryptedPayload   // e, ee, s, es
    static let xxMessage3 = (keyLength + tagLength) + encryptedPayload             // s, se

    /// §7.2: fixed packet lengths.
    public static let ikInitiationLength = headerLength + indexLength + ikMessage1                 // 152
    public static let ikResponseLength = headerLength + 2 * indexLength + ikMessage2               // 108
    public static let xxResponseLength = headerLength + 2 * indexLength + xxMessage2               // 156
    /// The XX initiation is padded to the length of its response so that an answer is
    /// never larger than the packet that caused it (no amplification).
    public static let xxInitiationLength = xxResponseLength                                         // 156
    static let xxMessage1 = xxInitiationLength - headerLength - indexLength                        // e + padding
    public static let xxFinishLength = headerLength + 2 * indexLength + xxMessage3                 // 124
    public static let transportHeaderLength = headerLength + indexLength + counterLength            // 16
    public static let minTransportLength = transportHeaderLength + tagLength                         // 32
    /// Plaintext room in one transport packet.
    public static let maxTransportPlaintext = maxDatagram - minTransportLength                       // 1168
}

/// §7.1 packet types.
package enum PacketType: UInt8 {
    case ikInitiation = 1
    case ikResponse = 2
    case xxInitiation = 3
    case xxResponse = 4
    case xxFinish = 5
    case transport = 6

    package var fixedLength: Int? {
        switch self {
        case .ikInitiation: PacketFormat.ikInitiationLength
        case .ikResponse: PacketFormat.ikResponseLength
        case .xxInitiation: PacketFormat.xxInitiationLength
        case .xxResponse: PacketFormat.xxResponseLength
        case .xxFinish: PacketFormat.xxFinishLength
        case .transport: nil
        }
    }
}

/// A handshake packet: sender index, receiver index (absent in initiations), Noise message.
package struct HandshakePacket: Equatable {
    var type: PacketType
    var senderIndex: UInt32
    var receiverIndex: UInt32
    var noise: [UInt8]

    var hasReceiverIndex: Bool { type != .ikInitiation && type != .xxInitiation }
}

/// What the first four bytes say, or why the datagram is garbage.
package enum PacketHeader {
    case packet(PacketType)
    case dropped(DropReason)

    package init(_ bytes: [UInt8]) {
        guard bytes.count <= PacketFormat.maxDatagram else { self = .dropped(.tooBig); return }
        guard bytes.count >= PacketFormat.headerLength, bytes[0] == PacketFormat.version,
              bytes[2] == 0, bytes[3] == 0, let type = PacketType(rawValue: bytes[1]) else {
            self = .dropped(.malformed); return
        }
        if let fixed = type.fixedLength {
            guard bytes.count == fixed else { self = .dropped(.malformed); return }
        } else {
            guard bytes.count >= PacketFormat.minTransportLength else { self = .dropped(.malformed); return }
        }
        self = .packet(type)
    }
}

extension HandshakePacket {
    /// Reads a packet whose header and length `PacketHeader` already checked.
    package init(validated bytes: [UInt8], type: PacketType) {
        self.type = type
        var offset = PacketFormat.headerLength
        senderIndex = bytes.readUInt32(at: offset)
        offset += 4
        if type == .ikInitiation || type == .xxInitiation {
            receiverIndex = 0
        } else {
            receiverIndex = bytes.readUInt32(at: offset)
            offset += 4
        }
        noise = Array(bytes[offset...])
    }

    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(PacketFormat.headerLength + 8 + noise.count)
        out.append(contentsOf: [PacketFormat.version, type.rawValue, 0, 0])
        out.appendUInt32(senderIndex)
        if hasReceiverIndex { out.appendUInt32(receiverIndex) }
        out.append(contentsOf: noise)
        precondition(out.count == type.fixedLength, "we build handshake packets of their fixed length")
        return out
    }
}

/// The cleartext part of a transport packet: receiver index and counter (the AEAD nonce).
/// The 16 header bytes are also the AEAD's associated data.
package struct TransportHeader: Equatable {
    var receiverIndex: UInt32
    var counter: UInt64

    init(receiverIndex: UInt32, counter: UInt64) {
        self.receiverIndex = receiverIndex
        self.counter = counter
    }

    package init(validated bytes: [UInt8]) {
        receiverIndex = bytes.readUInt32(at: 4)
        counter = bytes.readUInt64(at: 8)
    }

    package func write(into out: inout [UInt8]) {
        out.append(contentsOf: [PacketFormat.version, PacketType.transport.rawValue, 0, 0])
        out.appendUInt32(receiverIndex)
        out.appendUInt64(counter)
    }
}

extension [UInt8] {
    func readUInt16(at i: Int) -> UInt16 { UInt16(self[i]) | UInt16(self[i + 1]) << 8 }

    func readUInt32(at i: Int) -> UInt32 {
        UInt32(self[i]) | UInt32(self[i + 1]) << 8 | UInt32(self[i + 2]) << 16 | UInt32(self[i + 3]) << 24
    }

    func readUInt64(at i: Int) -> UInt64 {
        UInt64(readUInt32(at: i)) | UInt64(readUInt32(at: i + 4)) << 32
    }

    mutating func appendUInt16(_ v: UInt16) { append(UInt8(truncatingIfNeeded: v)); append(UInt8(truncatingIfNeeded: v >> 8)) }

    mutating func appendUInt32(_ v: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    mutating func appendUInt64(_ v: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }
}
