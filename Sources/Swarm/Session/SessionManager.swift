import Sodium

/// The sans-I/O session layer of one node: every session with every remote peer, the index
/// table that routes packets to them, and the rules that keep exactly one session per peer.
///
/// Flow (PROTOCOL.md §7): a node that knows a peer's id dials with Noise IK (initiation →
/// response → the initiator's first transport packet confirms); a node that only knows an
/// endpoint dials with XX (three messages). Either way both sides learn the remote peer id
/// from the handshake payload and check it against the static key. When both dial at once,
/// the initiation of the peer with the lower id wins (see `receiveIKInitiation`).
///
/// Inputs carry `now`; outputs are taken with `takeDatagrams()` and `takeEvents()`; the
/// caller wakes the manager with `tick(now:)` at `nextDeadline`.
public struct SessionManager {
    public let localPeer: PeerID
    public var configuration: SessionConfiguration {
        didSet { timing = SessionTiming(configuration) }
    }
    /// `configuration`'s durations in nanoseconds, for the per-packet paths.
    private(set) var timing: SessionTiming
    /// Return true to refuse a peer (as hyperswarm's firewall does): no session is answered
    /// or completed with it.
    public var firewall: (PeerID) -> Bool = { _ in false }
    public private(set) var drops = DropCounters()

    let staticKey: X25519.KeyPair
    var sessions: [PeerID: PeerSession] = [:]
    /// Each session's earliest timer, kept beside the table so timers are found without
    /// copying sessions out of it. Every write to `sessions` goes through `store`.
    var deadlines: [PeerID: Timestamp] = [:]
    /// Local index → the peer whose handshake or keys own it.
    var indexTable: [UInt32: PeerID] = [:]
    var xxDials: [UInt32: XXDial] = [:]
    var xxResponders: [UInt32: XXResponder] = [:]
    var rng: any RandomNumberGenerator
    let makeEphemeral: () -> X25519.KeyPair
    var outbox: [Datagram] = []
    var events: [SessionEvent] = []

    /// An XX dial to a bare endpoint, before the remote is known.
    struct XXDial {
        var noise: NoiseHandshake
        var endpoint: Endpoint
        var attempts: Int
        var nextRetransmit: Timestamp
        var sentAt: Timestamp
        /// Set once the response arrived; the dial then only waits for confirmation.
        var completedWith: PeerID?
    }

    /// An XX handshake we answered, waiting for the third message.
    struct XXResponder {
        var noise: NoiseHandshake
        var remoteIndex: UInt32
        var endpoint: Endpoint
        var createdAt: Timestamp
    }

    /// - Parameters:
    ///   - random: indices and retransmission jitter; tests pass a seeded generator.
    ///   - ephemeralKeys: Noise ephemeral keys; tests may inject fixed ones.
    public init(identity: Ed25519.KeyPair, configuration: SessionConfiguration = SessionConfiguration(),
                random: some RandomNumberGenerator = SodiumRandomNumberGenerator(),
                ephemeralKeys: @escaping () -> X25519.KeyPair = X25519.KeyPair.generate) throws {
        localPeer = PeerID(identity.publicKey)
        staticKey = try identity.x25519()
        self.configuration = configuration
        timing = SessionTiming(configuration)
        rng = random
        makeEphemeral = ephemeralKeys
    }

    // MARK: Outputs

    /// Datagrams to send, in order.
    public mutating func takeDatagrams() -> [Datagram] {
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    public mutating func takeEvents() -> [SessionEvent] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    public var hasOutput: Bool { !outbox.isEmpty || !events.isEmpty }

    // MARK: Queries

    public func isEstablished(with peer: PeerID) -> Bool { sessions[peer]?.isEstablished ?? false }

    /// Whether a session exists or is being set up with `peer`.
    public func isKnown(_ peer: PeerID) -> Bool { sessions[peer] != nil }

    public func sessionID(with peer: PeerID) -> SessionID? { sessions[peer]?.sessionID }

    public func stats(for peer: PeerID) -> SessionStats? { sessions[peer]?.stats() }

    public var allStats: [SessionStats] { sessions.values.map { $0.stats() } }

    public var establishedPeers: [PeerID] { sessions.values.filter(\.isEstablished).map(\.peer) }

    // MARK: Dialling

    /// Dials `peer` at `endpoint` with IK, unless a session with it exists or is being set up
    /// (then only a not yet established one learns the endpoint). With an `alternative`,
    /// initiations alternate between the two; whichever answers becomes the session's endpoint.
    public mutating func connect(to peer: PeerID, at endpoint: Endpoint, alternative: Endpoint? = nil, now: Timestamp) {
        guard peer != localPeer, !firewall(peer) else { return }
        if var s = sessions.removeValue(forKey: peer) {
            s.dialledAt = endpoint
            s.alternative = alternative
            if !s.isEstablished { s.endpoint = endpoint }
            if !s.isEstablished && s.handshake == nil && s.next == nil { startInitiation(&s, attempts: 1, now: now) }
            // We answered this peer before dialling it: now we want it there, so our answer
            // is worth sending again until it is confirmed.
            if s.next?.response?.remote == endpoint && s.next?.resending == false {
                s.next!.resending = true
                s.next!.nextResponse = now + retransmitInterval(attempt: s.next!.responsesSent)
            }
            store(s)
            return
        }
        var s = PeerSession(peer: peer, endpoint: endpoint, localIsLower: localPeer < peer, now: now)
        s.dialledAt = endpoint
        s.alternative = alternative
        startInitiation(&s, attempts: 1, now: now)
        if s.handshake != nil { store(s) }
    }

    /// A dial in progress learns another path to `peer` to alternate with (see `connect`).
    public mutating func learnAlternative(_ alternative: Endpoint, for peer: PeerID) {
        guard let s = sessions[peer], !s.isEstablished, s.handshake != nil, s.endpoint != alternative else { return }
        sessions[peer]!.alternative = alternative
    }

    /// Dials a bare endpoint with XX; the remote's id is learned from the handshake.
    public mutating func connect(to endpoint: Endpoint, now: Timestamp) {
        guard !xxDials.values.contains(where: { $0.endpoint == endpoint }) else { return }
        startXXDial(to: endpoint, attempts: 1, now: now)
    }

    // MARK: Sending

    /// Opens a channel to an established peer; returns its id, or nil without a session or
    /// with an oversized label. The open is retransmitted until the remote accepts.
    public mutating func openChannel(to peer: PeerID, label: [UInt8], now: Timestamp) -> UInt16? {
        guard label.count <= ChannelLimits.maxMessage, var s = sessions.removeValue(forKey: peer) else { return nil }
        defer { store(s) }
        guard s.isEstablished,
              let id = s.channels.allocate(label: label, now: now, retransmit: configuration.channelOpenRetransmit) else { return nil }
        send(.channelOpen(id, label: label), in: &s, now: now)
        return id
    }

    /// Sends one message on an open channel. Returns false when there is no such channel or
    /// session, or the message exceeds `ChannelLimits.maxMessage`.
    @discardableResult
    public mutating func send(_ message: [UInt8], on channel: UInt16, to peer: PeerID, now: Timestamp) -> Bool {
        guard message.count <= ChannelLimits.maxMessage, channel != ChannelLimits.controlChannel,
              var s = sessions.removeValue(forKey: peer) else { return false }
        defer { store(s) }
        guard s.channels.open.contains(channel) else { return false }
        send(.channelData(channel, message), in: &s, now: now)
        return true
    }

    /// Sends several messages on an open channel with one lookup of the session. Returns
    /// how many were sent: all, or none when there is no such channel or session; oversized
    /// messages are skipped.
    @discardableResult
    public mutating func send(_ messages: [[UInt8]], on channel: UInt16, to peer: PeerID, now: Timestamp) -> Int {
        guard channel != ChannelLimits.controlChannel, var s = sessions.removeValue(forKey: peer) else { return 0 }
        defer { store(s) }
        guard s.channels.open.contains(channel) else { return 0 }
        var sent = 0
        for message in messages where message.count <= ChannelLimits.maxMessage {
            send(.channelData(channel, message), in: &s, now: now)
            sent += 1
        }
        return sent
    }

    /// Sends a capability on the control channel (§8.3), retransmitted until acknowledged.
    public mutating func sendCapability(_ capability: [UInt8], to peer: PeerID, now: Timestamp) {
        precondition(capability.count == ControlMessage.capabilityLength, "capabilities are 32 bytes")
        guard var s = sessions.removeValue(forKey: peer) else { return }
        s.unackedCapabilities[capability] = (now + configuration.channelOpenRetransmit, 1)
        send(.channelData(ChannelLimits.controlChannel, ControlMessage.capability(capability).encoded()), in: &s, now: now)
        store(s)
    }

    /// Sends any frame to an established peer, as the session's own sends do; false without
    /// a session. Not for the application: the fuzz target (Sources/FuzzSwarm) plays a
    /// remote whose frames break the rules (a channel id of the wrong parity, a control
    /// message that does not parse), which the public sends never produce.
    @discardableResult
    package mutating func sendFrame(_ frame: SessionFrame, to peer: PeerID, now: Timestamp) -> Bool {
        guard frame.encodedLength <= PacketFormat.maxTransportPlaintext, var s = sessions.removeValue(forKey: peer) else {
            return false
        }
        defer { store(s) }
        guard s.isEstablished else { return false }
        send(frame, in: &s, now: now)
        return true
    }

    public mutating func closeChannel(_ channel: UInt16, with peer: PeerID, now: Timestamp) {
        guard var s = sessions.removeValue(forKey: peer) else { return }
        if s.channels.close(channel) { send(.channelClose(channel), in: &s, now: now) }
        store(s)
    }

    /// Ends the session with `peer`, telling it so; reports `lost(.shutdown)`.
    public mutating func close(_ peer: PeerID, now: Timestamp) {
        guard var s = sessions.removeValue(forKey: peer) else { return }
        if s.isEstablished, s.current?.canSend(now: now, configuration: configuration, timing: timing) == true {
            send(.close(.shutdown), in: &s, now: now)
        }
        discard(s, reason: .shutdown)
    }

    /// Closes every session (a clean shutdown).
    public mutating func closeAll(now: Timestamp) {
        for peer in Array(sessions.keys) { close(peer, now: now) }
        for index in Array(xxDials.keys) { xxDials[index] = nil }
        xxResponders.removeAll()
    }

    /// Seals `frame` with the current keys, or queues it until keys are usable (and starts
    /// a handshake if none is under way).
    mutating func send(_ frame: SessionFrame, in s: inout PeerSession, now: Timestamp) {
        guard s.current?.canSend(now: now, configuration: configuration, timing: timing) == true else {
            if s.queued.count < configuration.maxQueuedMessages { s.queued.append(frame) }
            if s.handshake == nil && s.next == nil { startInitiation(&s, attempts: 1, now: now) }
            return
        }
        let packet = s.current!.seal(frame)
        outbox.append(Datagram(remote: s.endpoint, payload: packet))
        s.lastSent = now
        s.packetsSent += 1
        // The keys' fields are read through `s.current?`: binding the keys would copy them
        // (a retain and release of each buffer) on every packet.
        if s.handshake == nil, let counter = s.current?.sendCounter, let isInitiator = s.current?.isInitiator,
           let created = s.current?.createdAt,
           counter >= configuration.rekeyAfterMessages || (isInitiator && now.nanoseconds(since: created) >= timing.rekeyAfterTime) {
            startInitiation(&s, attempts: 1, now: now)
        }
    }

    /// Sends what waited for keys.
    mutating func flushQueued(_ s: inout PeerSession, now: Timestamp) {
        guard !s.queued.isEmpty else { return }
        let frames = s.queued
        s.queued.removeAll()
        for frame in frames { send(frame, in: &s, now: now) }
    }

    // MARK: Handshake initiation

    /// Sends a fresh IK initiation (new ephemeral and index). A dial in flight keeps its
    /// last few initiations answerable (`OutgoingHandshake.answerable`): a late response to
    /// one of them completes the dial as well as a response to the newest.
    /// Sends a fresh initiation. `alternate`: a retransmission of a dial, which goes to the
    /// peer's alternative address every second attempt.
    mutating func startInitiation(_ s: inout PeerSession, attempts: Int, alternate: Bool = false, now: Timestamp) {
        guard let remoteStatic = try? s.peer.publicKey.x25519(),
              var noise = try? NoiseHandshake(.ik, initiator: true, localStatic: staticKey,
                                              ephemeral: makeEphemeral(), remoteStatic: remoteStatic),
              case let resumes = s.isEstablished ? s.sessionID : nil,
              let message = try? noise.write(payload: localPeer.bytes + (resumes?.bytes ?? SessionID.none))
        else { return abandonHandshake(&s) }
        let index = newIndex()
        let packet = HandshakePacket(type: .ikInitiation, senderIndex: index, receiverIndex: 0, noise: message)
        // A dial (not a rekey) with another path known sends every second initiation there.
        let other = alternate && !s.isEstablished && attempts % 2 == 0 ? s.alternative : nil
        outbox.append(Datagram(remote: other ?? s.endpoint, payload: packet.encoded()))
        // A dial grows by one initiation at a time, so at most the oldest falls out.
        var initiations = s.handshake?.initiations ?? []
        initiations.append(.init(noise: noise, localIndex: index, sentAt: now, resumes: resumes))
        if initiations.count > PeerSession.OutgoingHandshake.answerable {
            indexTable[initiations.removeFirst().localIndex] = nil
        }
        s.handshake = PeerSession.OutgoingHandshake(initiations: initiations, attempts: attempts,
                                                    nextRetransmit: now + retransmitInterval(attempt: attempts))
        indexTable[index] = s.peer
    }

    /// Ends our dial: none of its initiations is answerable any more.
    mutating func abandonHandshake(_ s: inout PeerSession) {
        guard let own = s.handshake else { return }
        for index in own.localIndices { indexTable[index] = nil }
        s.handshake = nil
    }

    mutating func startXXDial(to endpoint: Endpoint, attempts: Int, now: Timestamp) {
        guard var noise = try? NoiseHandshake(.xx, initiator: true, localStatic: staticKey,
                                              ephemeral: makeEphemeral(), remoteStatic: nil),
              let message = try? noise.write(payload: [UInt8](repeating: 0, count: PacketFormat.xxMessage1 - PacketFormat.keyLength))
        else { return }
        let index = newIndex()
        let packet = HandshakePacket(type: .xxInitiation, senderIndex: index, receiverIndex: 0, noise: message)
        outbox.append(Datagram(remote: endpoint, payload: packet.encoded()))
        xxDials[index] = XXDial(noise: noise, endpoint: endpoint, attempts: attempts,
                                nextRetransmit: now + retransmitInterval(attempt: attempts), sentAt: now)
    }

    /// Exponential backoff with jitter: base · 2^(attempt−1), capped, plus a random fraction.
    mutating func retransmitInterval(attempt: Int) -> Duration {
        let base = configuration.handshakeRetransmitBase.seconds
        let capped = min(base * Double(1 << min(attempt - 1, 20)), configuration.handshakeRetransmitMax.seconds)
        let jitter = configuration.handshakeJitter > 0 ? Double.random(in: 0..<configuration.handshakeJitter, using: &rng) : 0
        return .nanoseconds(Int64(capped * (1 + jitter) * 1e9))
    }

    /// A random local index not in use (WireGuard: indices are random so they reveal nothing).
    mutating func newIndex() -> UInt32 {
        while true {
            let candidate = UInt32.random(in: 1...UInt32.max, using: &rng)
            if indexTable[candidate] == nil && xxDials[candidate] == nil && xxResponders[candidate] == nil {
                return candidate
            }
        }
    }

    /// Puts a session (back) into the table, with its next timer.
    mutating func store(_ s: consuming PeerSession) {
        let peer = s.peer
        deadlines[peer] = deadline(of: s)
        // The last use: moved into the table, not copied.
        sessions[peer] = s
    }

    /// Forgets a session and its indices, reporting the loss if it was established.
    mutating func discard(_ s: PeerSession, reason: CloseReason) {
        deadlines[s.peer] = nil
        for index in s.localIndices { indexTable[index] = nil }
        if let id = s.sessionID { events.append(.lost(s.peer, id, reason)) }
    }

    mutating func drop(_ reason: DropReason) { drops.record(reason) }
}
