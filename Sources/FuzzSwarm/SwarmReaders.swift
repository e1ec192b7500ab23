import FuzzSupport
import Swarm

/// Every reader of bytes from another machine in the Swarm module, behind a selector byte:
///
/// 0. session packets (§7): `PacketHeader`, then the handshake or transport header;
/// 1. frames inside a session and control-channel messages (§8): `SessionFrame`, `ControlMessage`;
/// 2. LAN discovery datagrams (§6): `DiscoveryMessage`;
/// 3. a `SessionManager` poised with fixed keys (`SessionBed`), driven by a script of
///    datagrams, a remote's frames, timers and application calls;
/// 4. a `LANDiscoveryMachine` poised on three topics (`DiscoveryBed`), driven the same way;
/// 5. endpoints as people type them (`--bootstrap HOST:PORT`): `Endpoint(_:)`.
///
/// Beyond "no crash": what decodes re-encodes to the same bytes, and the machines keep the
/// invariants their beds check (a dropped datagram changes nothing, answers are never
/// larger than their queries, …).
enum SwarmReaders: FuzzTarget {
    static let name = "swarm"

    static func fuzzOne(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let rest = Array(input.dropFirst())
        switch selector % 6 {
        case 0: packet(rest)
        case 1: frame(rest)
        case 2: discoveryMessage(rest)
        case 3: SessionBed.run(FuzzInput(rest))
        case 4: DiscoveryBed.run(FuzzInput(rest))
        default: endpoint(rest)
        }
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        SessionBed.genuineDatagrams.map { ("packet-\($0.name)", [0] + $0.bytes) }
            + SessionBed.genuineFrames.map { ("frame-\($0.name)", [1] + $0.bytes) }
            + DiscoveryBed.genuineMessages.map { ("discovery-\($0.name)", [2] + $0.bytes) }
            + SessionBed.seedScripts.map { ("session-\($0.name)", [3] + $0.bytes) }
            + DiscoveryBed.seedScripts.map { ("lan-\($0.name)", [4] + $0.bytes) }
            + ["203.0.113.7:49737", "[2001:db8::7]:49737", "[fe80::1%2]:9", "[::ffff:1.2.3.4]:1"].enumerated()
                .map { ("endpoint-\($0)", [5] + Array($1.utf8)) }
    }

    /// §7.1–7.2: a handshake packet that passes the header check re-encodes to itself; a
    /// transport header to its 16 bytes.
    static func packet(_ bytes: [UInt8]) {
        guard case let .packet(type) = PacketHeader(bytes) else { return }
        if type.fixedLength != nil {
            let packet = HandshakePacket(validated: bytes, type: type)
            precondition(packet.encoded() == bytes, "a handshake packet re-encodes to its bytes")
        } else {
            var out: [UInt8] = []
            TransportHeader(validated: bytes).write(into: &out)
            precondition(out == Array(bytes.prefix(PacketFormat.transportHeaderLength)), "a transport header re-encodes to its bytes")
        }
    }

    /// §8.1, §8.3: a frame or control message that parses re-encodes to itself.
    static func frame(_ bytes: [UInt8]) {
        if let frame = SessionFrame(plaintext: bytes) {
            var out: [UInt8] = []
            frame.write(into: &out)
            precondition(out == bytes && frame.encodedLength == bytes.count, "a session frame re-encodes to its bytes")
        }
        if let control = ControlMessage(bytes) {
            precondition(control.encoded() == bytes, "a control message re-encodes to its bytes")
        }
    }

    /// An endpoint that parses is parsed again, the same, from the text it prints (RFC 5952
    /// for IPv6, the zone as an interface index).
    static func endpoint(_ bytes: [UInt8]) {
        guard let endpoint = Endpoint(String(decoding: bytes, as: UTF8.self)) else { return }
        precondition(Endpoint(endpoint.description) == endpoint, "an endpoint parses from its own text: \(endpoint)")
    }

    /// §6.2: a discovery datagram that decodes re-encodes to itself.
    static func discoveryMessage(_ bytes: [UInt8]) {
        guard case let .success(message) = DiscoveryMessage.decode(bytes) else { return }
        precondition(message.encoded() == bytes, "a discovery datagram re-encodes to its bytes")
        precondition(DiscoveryMessage.decode(message.encoded()) == .success(message), "decode(encode(x)) == x")
    }
}
