/// Frames inside an authenticated transport packet (PROTOCOL.md §8): one frame per packet,
/// a one-byte kind, then fields. Channels multiplex replication and control over the one
/// session two peers share; each message is datagram-sized and unreliable — reliability is
/// the user's (idempotent state or requests with retry, DESIGN decision 5).
public enum ChannelLimits {
    /// §8.2: the largest channel message. The transport packet could carry 1168 − 3 bytes;
    /// 64 are kept back for a relay header (a relayed path wraps the datagram).
    public static let maxMessage = 1100
    /// §8.2: channel 0 is the control channel, open from the start.
    public static let controlChannel: UInt16 = 0
}

/// §8.1 frame kinds.
enum FrameKind: UInt8 {
    case ping = 0x01
    case pong = 0x02
    case close = 0x03
    case channelOpen = 0x10
    case channelAccept = 0x11
    case channelData = 0x12
    case channelClose = 0x13
}

/// Why a session ended, as carried by a close frame (§8.1) and reported in events.
public enum CloseReason: UInt8, Sendable {
    /// The application or a shutdown closed it.
    case shutdown = 0
    /// A newer session with the same peer replaced it.
    case replaced = 1
    /// Nothing arrived within the dead-peer timeout (never on the wire).
    case timeout = 2
    /// The handshake never completed (never on the wire).
    case handshakeFailed = 3
    /// The remote peer sent a close frame (never on the wire).
    case closedByRemote = 4
    /// The firewall refused the peer (never on the wire).
    case refused = 5
}

/// One frame (§8.1). `package`, as `ControlMessage`: the fuzz target (Sources/FuzzSwarm)
/// reads both and seals frames of every kind through `SessionManager.sendFrame`.
package enum SessionFrame: Equatable {
    case ping(echo: UInt64)
    case pong(echo: UInt64)
    case close(CloseReason)
    case channelOpen(UInt16, label: [UInt8])
    case channelAccept(UInt16)
    case channelData(UInt16, [UInt8])
    case channelClose(UInt16)

    /// Encoded length, for the size check before sealing.
    package var encodedLength: Int {
        switch self {
        case .ping, .pong: 9
        case .close: 2
        case let .channelOpen(_, label): 3 + label.count
        case .channelAccept, .channelClose: 3
        case let .channelData(_, message): 3 + message.count
        }
    }

    package func write(into out: inout [UInt8]) {
        switch self {
        case let .ping(echo): out.append(FrameKind.ping.rawValue); out.appendUInt64(echo)
        case let .pong(echo): out.append(FrameKind.pong.rawValue); out.appendUInt64(echo)
        case let .close(reason): out.append(FrameKind.close.rawValue); out.append(reason.rawValue)
        case let .channelOpen(id, label):
            out.append(FrameKind.channelOpen.rawValue); out.appendUInt16(id); out.append(contentsOf: label)
        case let .channelAccept(id): out.append(FrameKind.channelAccept.rawValue); out.appendUInt16(id)
        case let .channelData(id, message):
            out.append(FrameKind.channelData.rawValue); out.appendUInt16(id); out.append(contentsOf: message)
        case let .channelClose(id): out.append(FrameKind.channelClose.rawValue); out.appendUInt16(id)
        }
    }

    /// Parses a decrypted plaintext; nil when malformed. Takes ownership so channel data can
    /// be handed on without another copy.
    package init?(plaintext: consuming [UInt8]) {
        guard let first = plaintext.first, let kind = FrameKind(rawValue: first) else { return nil }
        let count = plaintext.count
        switch kind {
        case .ping, .pong:
            guard count == 9 else { return nil }
            let echo = plaintext.readUInt64(at: 1)
            self = kind == .ping ? .ping(echo: echo) : .pong(echo: echo)
        case .close:
            // §8.1: only these two reasons go on the wire.
            guard count == 2, plaintext[1] <= CloseReason.replaced.rawValue,
                  let reason = CloseReason(rawValue: plaintext[1]) else { return nil }
            self = .close(reason)
        case .channelOpen, .channelData:
            guard count >= 3, count - 3 <= ChannelLimits.maxMessage else { return nil }
            let id = plaintext.readUInt16(at: 1)
            plaintext.removeFirst(3)
            self = kind == .channelOpen ? .channelOpen(id, label: plaintext) : .channelData(id, plaintext)
        case .channelAccept, .channelClose:
            guard count == 3 else { return nil }
            let id = plaintext.readUInt16(at: 1)
            self = kind == .channelAccept ? .channelAccept(id) : .channelClose(id)
        }
    }
}

/// §8.3: messages on the control channel: a topic capability, and its acknowledgement
/// (capabilities are retransmitted until acknowledged, since a lost one would leave the peer
/// out of a topic for the whole session).
package enum ControlMessage: Equatable {
    /// A keyed hash of a topic and the session's handshake hash.
    case capability([UInt8])
    /// "Received" (not "verified": the answer must not tell a non-member anything).
    case capabilityAck([UInt8])

    static let capabilityType: UInt8 = 1
    static let capabilityAckType: UInt8 = 2
    static let capabilityLength = 32

    package func encoded() -> [UInt8] {
        switch self {
        case let .capability(bytes): return [ControlMessage.capabilityType] + bytes
        case let .capabilityAck(bytes): return [ControlMessage.capabilityAckType] + bytes
        }
    }

    package init?(_ bytes: [UInt8]) {
        guard bytes.count == 1 + ControlMessage.capabilityLength else { return nil }
        switch bytes[0] {
        case ControlMessage.capabilityType: self = .capability(Array(bytes[1...]))
        case ControlMessage.capabilityAckType: self = .capabilityAck(Array(bytes[1...]))
        default: return nil
        }
    }
}
