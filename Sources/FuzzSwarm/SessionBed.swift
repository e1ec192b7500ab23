import FuzzSupport
import Noise
import Sodium
import Swarm

/// Noise ephemeral keys for every manager of the beds, numbered from a counter that each
/// input starts afresh: managers copied from the poised ones share it, and an input then
/// replays exactly.
final class EphemeralKeys: @unchecked Sendable {
    static let shared = EphemeralKeys()
    private var counter: UInt64 = 0

    func reset(to value: UInt64) { counter = value }

    func next() -> X25519.KeyPair {
        counter += 1
        var secret = [UInt8](repeating: 0x5A, count: 32)
        withUnsafeBytes(of: counter.littleEndian) { for (i, byte) in $0.enumerated() { secret[i] = byte } }
        return try! X25519.KeyPair(secretKey: SecretBytes(copying: secret))
    }
}

/// A `SessionManager` (node A) poised with fixed keys, with a session established with B
/// (channels open both ways, a capability sent) and one handshake of every kind in flight:
/// an IK dial to C, an XX dial to D's endpoint, an XX handshake from E it answered. A script
/// (`FuzzInput`) then drives a copy of A, and of B as the remote, one operation at a time:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | source, bytes | a raw datagram to A |
/// | 1 | bytes | B seals the frame these bytes parse to (any frame, rules broken or not) and A receives it |
/// | 2 | u16 ms | time passes; both run their timers |
/// | 3 | | what A and B sent each other is delivered |
/// | 4 | call, operands | B's application calls (open, send, close a channel; a capability; close) |
/// | 5 | call, operands | A's application calls (the same, and dials) |
/// | 6 | bytes, u16 bit | B seals the frame, one bit of the packet is flipped, A receives it |
/// | 7 | | A receives again the last datagram B sent it (a replay) |
/// | 8 | who, 48 bytes | an IK initiation to A, by B or by F with its own keys, whose payload (§7.3) is these bytes |
/// | 9 | 48 bytes | C's IK response to A's dial, made with C's keys, whose payload is these bytes |
///
/// Invariants: a datagram A drops is counted once and changes nothing (no output, no event,
/// no session's figures, no timer); no datagram A sends exceeds §7.1's 1200 bytes; the timer
/// cache stays in step with the session table.
struct SessionBed {
    static let a = endpoint(1), b = endpoint(2), c = endpoint(3), d = endpoint(4), e = endpoint(5), f = endpoint(6)
    static let roamedB = endpoint(22)
    /// Where raw datagrams come from: the peers', a stranger's (IPv4, link-local IPv6).
    static let sources: [Endpoint] = [b, c, d, e, f, roamedB, endpoint(9),
                                      Endpoint(address: .v6(linkLocal(9)), port: 4000, scopeID: 2)]
    static let label = Array("bsrepl/1".utf8) + [UInt8](repeating: 0xB0, count: 32)
    static let capability = [UInt8](repeating: 0xCA, count: Capability.length)

    static func endpoint(_ host: UInt8) -> Endpoint { .v4(10, 0, 0, host, port: 4000) }

    /// `fe80::host`.
    static func linkLocal(_ host: UInt8) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes[0] = 0xFE
        bytes[1] = 0x80
        bytes[15] = host
        return bytes
    }

    static func identity(_ n: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: n, count: 32)))
    }

    static func manager(_ n: UInt8) -> SessionManager {
        try! SessionManager(identity: identity(n), random: SeededRandom(seed: UInt64(n) &* 7919),
                            ephemeralKeys: { EphemeralKeys.shared.next() })
    }

    struct Genuine {
        var name: String
        var from: Endpoint
        var bytes: [UInt8]
    }

    struct Poised {
        var a: SessionManager
        var b: SessionManager
        var now: Timestamp
        /// Datagrams the handshakes produced, some delivered to A during the set-up (replays
        /// now), some held back (each completes or advances a handshake of A).
        var captured: [Genuine]
        /// A's IK initiation to C, which a hostile C answers (op 9).
        var initiationToC: [UInt8]
    }

    // The fuzzer runs one input at a time on one thread.
    nonisolated(unsafe) static let poised = build()

    private static func build() -> Poised {
        EphemeralKeys.shared.reset(to: 0)
        let now = Timestamp.seconds(1)
        var a = manager(1), b = manager(2)
        var captured: [Genuine] = []
        func exchange() {
            var moved = true
            while moved {
                moved = false
                for datagram in b.takeDatagrams() where datagram.remote == SessionBed.a {
                    captured.append(Genuine(name: "from-b-\(captured.count)", from: SessionBed.b, bytes: datagram.payload))
                    a.receive(Datagram(remote: SessionBed.b, payload: datagram.payload), now: now)
                    moved = true
                }
                for datagram in a.takeDatagrams() where datagram.remote == SessionBed.b {
                    b.receive(Datagram(remote: SessionBed.a, payload: datagram.payload), now: now)
                    moved = true
                }
            }
        }
        b.connect(to: a.localPeer, at: SessionBed.a, now: now)
        exchange()
        precondition(a.isEstablished(with: b.localPeer) && b.isEstablished(with: a.localPeer), "the bed's session is up")
        let channel = b.openChannel(to: a.localPeer, label: label, now: now)!
        _ = a.openChannel(to: b.localPeer, label: label, now: now)
        b.sendCapability(capability, to: a.localPeer, now: now)
        exchange()
        b.send(Array("hello".utf8), on: channel, to: a.localPeer, now: now)
        exchange()

        // A's IK dial to C: C answers, the answer is held back.
        var c = manager(3)
        a.connect(to: c.localPeer, at: SessionBed.c, now: now)
        let initiationToC = a.takeDatagrams()
        for datagram in initiationToC { c.receive(Datagram(remote: SessionBed.a, payload: datagram.payload), now: now) }
        for datagram in c.takeDatagrams() { captured.append(Genuine(name: "ik-response-c", from: SessionBed.c, bytes: datagram.payload)) }
        // A's XX dial to D's endpoint: D answers, the answer is held back.
        var d = manager(4)
        a.connect(to: SessionBed.d, now: now)
        for datagram in a.takeDatagrams() { d.receive(Datagram(remote: SessionBed.a, payload: datagram.payload), now: now) }
        for datagram in d.takeDatagrams() { captured.append(Genuine(name: "xx-response-d", from: SessionBed.d, bytes: datagram.payload)) }
        // E's XX dial to A: A answers, E's third message is held back.
        var e = manager(5)
        e.connect(to: SessionBed.a, now: now)
        for datagram in e.takeDatagrams() {
            captured.append(Genuine(name: "xx-initiation-e", from: SessionBed.e, bytes: datagram.payload))
            a.receive(Datagram(remote: SessionBed.e, payload: datagram.payload), now: now)
        }
        for datagram in a.takeDatagrams() { e.receive(Datagram(remote: SessionBed.a, payload: datagram.payload), now: now) }
        for datagram in e.takeDatagrams() { captured.append(Genuine(name: "xx-finish-e", from: SessionBed.e, bytes: datagram.payload)) }
        // F's IK initiation, held back: a peer A has not heard of.
        var f = manager(6)
        f.connect(to: a.localPeer, at: SessionBed.a, now: now)
        for datagram in f.takeDatagrams() { captured.append(Genuine(name: "ik-initiation-f", from: SessionBed.f, bytes: datagram.payload)) }
        // A transport packet of B that A has not seen yet.
        b.send(Array("fresh".utf8), on: channel, to: a.localPeer, now: now)
        for datagram in b.takeDatagrams() { captured.append(Genuine(name: "transport-b-fresh", from: SessionBed.b, bytes: datagram.payload)) }
        _ = a.takeEvents()
        _ = b.takeEvents()
        precondition(!a.hasOutput && !b.hasOutput, "the bed starts quiet")
        return Poised(a: a, b: b, now: now, captured: captured, initiationToC: initiationToC[0].payload)
    }

    static var genuineDatagrams: [(name: String, bytes: [UInt8])] { poised.captured.map { ($0.name, $0.bytes) } }

    /// One frame of every kind, as B could send them; some break A's rules (an open of A's
    /// parity, data on a channel that is not open).
    static var genuineFrames: [(name: String, bytes: [UInt8])] {
        let frames: [(String, SessionFrame)] = [
            ("ping", .ping(echo: 1_000_000_000)), ("pong", .pong(echo: 999_000_000)), ("close", .close(.replaced)),
            ("open", .channelOpen(4, label: label)), ("open-wrong-parity", .channelOpen(3, label: label)),
            ("accept", .channelAccept(1)), ("data", .channelData(2, Array("data".utf8))),
            ("capability", .channelData(0, ControlMessage.capability(capability).encoded())),
            ("capability-ack", .channelData(0, ControlMessage.capabilityAck(capability).encoded())),
            ("channel-close", .channelClose(2)),
        ]
        return frames.map { name, frame in
            var out: [UInt8] = []
            frame.write(into: &out)
            return (name, out)
        }
    }

    static var seedScripts: [(name: String, bytes: [UInt8])] {
        var scripts: [(String, [UInt8])] = []
        for genuine in poised.captured {
            var s = FuzzScript()
            s.byte(0); s.byte(UInt8(sources.firstIndex(of: genuine.from)!)); s.chunk(genuine.bytes)
            s.byte(3); s.byte(2); s.u16(500); s.byte(3)
            scripts.append(("raw-\(genuine.name)", s.bytes))
        }
        for (name, frame) in genuineFrames {
            var s = FuzzScript()
            s.byte(1); s.chunk(frame); s.byte(3)
            scripts.append(("frame-\(name)", s.bytes))
            var t = FuzzScript()
            t.byte(6); t.chunk(frame); t.u16(200)
            scripts.append(("tampered-\(name)", t.bytes))
        }
        for (name, who) in [("f", UInt8(0)), ("b", UInt8(1))] {
            var s = FuzzScript()
            s.byte(8); s.byte(who); s.chunk(poisedPeer(who == 0 ? 6 : 2).bytes + [UInt8](repeating: 0, count: SessionID.length))
            s.byte(3)
            scripts.append(("initiation-payload-\(name)", s.bytes))
        }
        var response = FuzzScript()
        response.byte(9); response.chunk(poisedPeer(3).bytes + [UInt8](repeating: 0, count: SessionID.length)); response.byte(3)
        scripts.append(("response-payload-c", response.bytes))
        var timers = FuzzScript()
        for _ in 0..<8 { timers.byte(2); timers.u16(3000); timers.byte(3) }
        scripts.append(("timers", timers.bytes))
        var app = FuzzScript()
        app.byte(4); app.byte(0); app.chunk(label)
        app.byte(3)
        app.byte(5); app.byte(1); app.u16(2); app.chunk(Array("to b".utf8))
        app.byte(5); app.byte(3); app.byte(2); app.byte(1)
        app.byte(3); app.byte(7); app.byte(4); app.byte(4); app.byte(3)
        scripts.append(("application", app.bytes))
        return scripts
    }

    // MARK: - Running a script

    /// What a drop must leave as it was.
    struct Observation: Equatable {
        var stats: [SessionStats]
        var deadline: Timestamp?
        var hasOutput: Bool

        init(_ m: SessionManager) {
            stats = m.allStats.sorted { $0.peer < $1.peer }
            deadline = m.nextDeadline
            hasOutput = m.hasOutput
        }
    }

    var a: SessionManager
    var b: SessionManager
    var now: Timestamp
    var toA: [Datagram] = []
    var toB: [Datagram] = []
    var lastFromB: [UInt8]?
    var bChannels: [UInt16] = []

    static func run(_ script: FuzzInput) {
        var script = script
        EphemeralKeys.shared.reset(to: 1000)
        var bed = SessionBed(a: poised.a, b: poised.b, now: poised.now)
        var steps = 0
        while !script.isAtEnd, steps < 100 {
            steps += 1
            bed.step(&script)
            bed.collect()
        }
    }

    mutating func step(_ script: inout FuzzInput) {
        let peerA = a.localPeer, peerB = b.localPeer
        switch script.byte() % 10 {
        case 0:
            let source = SessionBed.sources[Int(script.byte()) % SessionBed.sources.count]
            receiveChecked(Datagram(remote: source, payload: script.chunk()))
        case 1:
            guard let frame = SessionFrame(plaintext: script.chunk()), b.sendFrame(frame, to: peerA, now: now) else { return }
            deliverFromB()
        case 2:
            now = now + .milliseconds(Int64(script.u16()))
            a.tick(now: now)
            b.tick(now: now)
        case 3:
            collect()
            let forB = toB, forA = toA
            toB = []
            toA = []
            for datagram in forB { b.receive(Datagram(remote: SessionBed.a, payload: datagram.payload), now: now) }
            for datagram in forA {
                lastFromB = datagram.payload
                a.receive(Datagram(remote: SessionBed.b, payload: datagram.payload), now: now)
            }
        case 4:
            switch script.byte() % 5 {
            case 0:
                if let id = b.openChannel(to: peerA, label: script.chunk(), now: now) { bChannels.append(id) }
            case 1:
                let channel = script.u16()
                b.send(script.chunk(), on: channel, to: peerA, now: now)
            case 2: b.closeChannel(script.u16(), with: peerA, now: now)
            case 3:
                var capability = script.chunk()
                capability = Array((capability + SessionBed.capability).prefix(Capability.length))
                b.sendCapability(capability, to: peerA, now: now)
            default: b.close(peerA, now: now)
            }
        case 5:
            switch script.byte() % 6 {
            case 0: _ = a.openChannel(to: peerB, label: script.chunk(), now: now)
            case 1:
                let channel = script.u16()
                a.send(script.chunk(), on: channel, to: peerB, now: now)
            case 2: a.closeChannel(script.u16(), with: peerB, now: now)
            case 3:
                let peers = [peerB, SessionBed.poisedPeer(3), SessionBed.poisedPeer(6)]
                let peer = peers[Int(script.byte()) % peers.count]
                let at = SessionBed.sources[Int(script.byte()) % SessionBed.sources.count]
                a.connect(to: peer, at: at, alternative: script.byte() & 1 == 0 ? nil : SessionBed.sources.last, now: now)
            case 4: a.close(peerB, now: now)
            default: a.connect(to: SessionBed.sources[Int(script.byte()) % SessionBed.sources.count], now: now)
            }
        case 6:
            guard let frame = SessionFrame(plaintext: script.chunk()), b.sendFrame(frame, to: peerA, now: now) else { return }
            let bit = Int(script.u16())
            for datagram in b.takeDatagrams() {
                var bytes = datagram.payload
                bytes[(bit / 8) % bytes.count] ^= 1 << UInt8(bit % 8)
                receiveChecked(Datagram(remote: SessionBed.b, payload: bytes))
            }
        case 7:
            guard let replay = lastFromB else { return }
            receiveChecked(Datagram(remote: SessionBed.b, payload: replay))
        case 8:
            let (who, from) = script.byte() & 1 == 0 ? (UInt8(6), SessionBed.f) : (UInt8(2), SessionBed.b)
            guard let packet = SessionBed.initiation(by: who, payload: SessionBed.payload(script.chunk())) else { return }
            receiveChecked(Datagram(remote: from, payload: packet))
        default:
            guard let packet = SessionBed.responseOfC(to: SessionBed.poised.initiationToC, payload: SessionBed.payload(script.chunk())) else { return }
            receiveChecked(Datagram(remote: SessionBed.c, payload: packet))
        }
    }

    // MARK: - Handshakes of a hostile peer

    /// §7.3: the bytes as a handshake payload (48 bytes: a peer id, a session id).
    static func payload(_ bytes: [UInt8]) -> [UInt8] {
        Array((bytes + [UInt8](repeating: 0, count: PacketFormat.handshakePayloadLength)).prefix(PacketFormat.handshakePayloadLength))
    }

    /// §7.3's prologue, which binds every handshake to the protocol version.
    static let prologue = Array("bookswarm/session/v1".utf8)

    /// An IK initiation (§7.2) to A by peer `n`, made with its own keys and `payload`.
    static func initiation(by n: UInt8, payload: [UInt8]) -> [UInt8]? {
        guard let local = try? identity(n).x25519(), let remote = try? identity(1).publicKey.x25519(),
              var noise = try? HandshakeState(pattern: .IK, initiator: true, prologue: prologue, localStatic: local,
                                              localEphemeral: EphemeralKeys.shared.next(), remoteStatic: remote),
              let message = try? noise.writeMessage(payload: payload) else { return nil }
        return [PacketFormat.version, 1, 0, 0] + [0x11, 0x22, 0x33, n] + message
    }

    /// C's IK response (§7.2) to A's initiation, made with C's keys and `payload`.
    static func responseOfC(to initiation: [UInt8], payload: [UInt8]) -> [UInt8]? {
        guard let local = try? identity(3).x25519(),
              var noise = try? HandshakeState(pattern: .IK, initiator: false, prologue: prologue, localStatic: local,
                                              localEphemeral: EphemeralKeys.shared.next()),
              (try? noise.readMessage(Array(initiation[(PacketFormat.headerLength + PacketFormat.indexLength)...]))) != nil,
              let message = try? noise.writeMessage(payload: payload) else { return nil }
        let senderIndex = Array(initiation[PacketFormat.headerLength..<(PacketFormat.headerLength + PacketFormat.indexLength)])
        return [PacketFormat.version, 2, 0, 0] + [0x33, 0x33, 0x33, 0x33] + senderIndex + message
    }

    static func poisedPeer(_ n: UInt8) -> PeerID { PeerID(identity(n).publicKey) }

    /// B's datagrams to A, delivered now.
    mutating func deliverFromB() {
        for datagram in b.takeDatagrams() {
            if datagram.remote == SessionBed.a {
                lastFromB = datagram.payload
                a.receive(Datagram(remote: SessionBed.b, payload: datagram.payload), now: now)
            }
        }
    }

    /// A receives `datagram`; if A drops it (and nothing authenticated), nothing changed.
    mutating func receiveChecked(_ datagram: Datagram) {
        collect()
        let before = Observation(a)
        let drops = a.drops
        a.receive(datagram, now: now)
        precondition(a.drops.total <= drops.total + 1, "one datagram is dropped at most once")
        guard a.drops.total > drops.total, a.drops[.simultaneousDial] == drops[.simultaneousDial] else { return }
        let after = Observation(a)
        let authenticated = zip(before.stats, after.stats).contains { $0.packetsReceived != $1.packetsReceived }
        guard !authenticated else { return }
        let reason = DropReason.allCases.first { a.drops[$0] > drops[$0] }!
        precondition(after == before, "a datagram dropped as \(reason) changed the session layer")
    }

    /// Takes both nodes' output, checks it, and queues what goes between them.
    mutating func collect() {
        for datagram in a.takeDatagrams() {
            precondition(datagram.payload.count <= PacketFormat.maxDatagram, "A sent a datagram over 1200 bytes")
            if datagram.remote == SessionBed.b || datagram.remote == SessionBed.roamedB { toB.append(datagram) }
        }
        for event in a.takeEvents() {
            if case let .established(peer, _, _, _, _) = event {
                precondition(peer != a.localPeer, "a session with ourselves")
            }
        }
        for datagram in b.takeDatagrams() where datagram.remote == SessionBed.a { toA.append(datagram) }
        _ = b.takeEvents()
        // Bounded like a socket buffer: an input that only piles up output stays small.
        if toA.count > 256 { toA.removeFirst(toA.count - 256) }
        if toB.count > 256 { toB.removeFirst(toB.count - 256) }
        precondition(a.timersAreConsistent && b.timersAreConsistent, "a timer cache out of step with its sessions")
    }
}
