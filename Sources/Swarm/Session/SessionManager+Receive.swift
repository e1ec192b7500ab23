import Sodium

/// Incoming datagrams (PROTOCOL.md §7). Anything that does not parse, authenticate or fit
/// is dropped and counted; nothing here throws past the edge.
extension SessionManager {
    public mutating func receive(_ datagram: Datagram, now: Timestamp) {
        switch PacketHeader(datagram.payload) {
        case let .dropped(reason):
            drop(reason)
        case let .packet(type):
            switch type {
            case .transport:
                receiveTransport(datagram.payload, from: datagram.remote, now: now)
            case .ikInitiation:
                receiveIKInitiation(HandshakePacket(validated: datagram.payload, type: type), from: datagram.remote, now: now)
            case .ikResponse:
                receiveIKResponse(HandshakePacket(validated: datagram.payload, type: type), from: datagram.remote, now: now)
            case .xxInitiation:
                receiveXXInitiation(HandshakePacket(validated: datagram.payload, type: type), from: datagram.remote, now: now)
            case .xxResponse:
                receiveXXResponse(HandshakePacket(validated: datagram.payload, type: type), from: datagram.remote, now: now)
            case .xxFinish:
                receiveXXFinish(HandshakePacket(validated: datagram.payload, type: type), from: datagram.remote, now: now)
            }
        }
    }

    /// The peer id in a handshake payload, if it is the owner of `remoteStatic` (§7.3).
    private func authenticatedPeer(_ payload: [UInt8], remoteStatic: X25519.PublicKey?) -> PeerID? {
        guard payload.count == PacketFormat.handshakePayloadLength,
              let peer = try? PeerID(bytes: Array(payload[0..<32])),
              let remoteStatic, let converted = try? peer.publicKey.x25519(), converted == remoteStatic
        else { return nil }
        return peer
    }

    // MARK: IK

    mutating func receiveIKInitiation(_ packet: HandshakePacket, from endpoint: Endpoint, now: Timestamp) {
        guard var noise = try? NoiseHandshake(.ik, initiator: false, localStatic: staticKey,
                                              ephemeral: makeEphemeral(), remoteStatic: nil),
              let payload = try? noise.read(packet.noise),
              let remote = authenticatedPeer(payload, remoteStatic: noise.remoteStatic)
        else { return drop(.authFailure) }
        guard remote != localPeer, !firewall(remote) else { return drop(.refused) }
        guard sessions[remote] != nil || sessions.count < configuration.maxSessions else { return drop(.refused) }

        var s = sessions.removeValue(forKey: remote)
            ?? PeerSession(peer: remote, endpoint: endpoint, localIsLower: localPeer < remote, now: now)
        defer { store(s) }
        let ephemeral = Array(packet.noise[0..<PacketFormat.keyLength])
        guard ephemeral != s.lastAnsweredEphemeral else { return drop(.replay) }

        // Our response is sent again until confirmed only where we would send anyway: where
        // we dial this peer (now or, `connect`, later), or of the session it rekeys.
        // Elsewhere (a first contact, perhaps a replay from a forged source) one response
        // answers one initiation and is smaller than it.
        let resend = endpoint == s.dialledAt || (endpoint == s.endpoint && (s.handshake != nil || s.isEstablished))

        // Simultaneous dial: the initiation of the lower peer id wins. The lower side ignores
        // the other's initiation and waits for the answer to its own; the higher side drops
        // its own and answers. Both end with the one handshake the lower side started.
        if let own = s.handshake {
            if localPeer < remote {
                // The other's initiation is news that the path works now and that ours, or
                // its answer, may be lost: the higher side will only answer, so send a fresh
                // initiation at once, where this one came from, rather than wait out our
                // backoff. The earlier ones stay answerable. At most one per
                // `simultaneousDialResend`, so replays (from forged sources too) can make us
                // send no more than that, and no larger than what they are.
                if now.nanoseconds(since: own.newest.sentAt) >= timing.simultaneousDialResend {
                    if !s.isEstablished { s.endpoint = endpoint }
                    startInitiation(&s, attempts: own.attempts, now: now)
                }
                return drop(.simultaneousDial)
            }
            abandonHandshake(&s)
        }

        let requested = SessionID(wire: Array(payload[32...]))
        let resumes = requested != nil && requested == s.sessionID && s.isEstablished
        let index = newIndex()
        guard let message = try? noise.write(payload: localPeer.bytes + (resumes ? s.sessionID!.bytes : SessionID.none)),
              let keys = try? noise.split()
        else { return drop(.authFailure) }
        let response = Datagram(remote: endpoint, payload: HandshakePacket(
            type: .ikResponse, senderIndex: index, receiverIndex: packet.senderIndex, noise: message).encoded())
        holdUnconfirmed(PeerSession.Unconfirmed(
            keys: TransportKeypair(send: keys.send, receive: keys.receive, localIndex: index, remoteIndex: packet.senderIndex,
                                   isInitiator: false, createdAt: now, handshakeHash: noise.handshakeHash),
            resumes: resumes, response: response, resending: resend,
            nextResponse: resend ? now + retransmitInterval(attempt: 1) : .zero), in: &s)
        s.lastAnsweredEphemeral = ephemeral
        if !s.isEstablished { s.endpoint = endpoint }
        outbox.append(response)
    }

    mutating func receiveIKResponse(_ packet: HandshakePacket, from endpoint: Endpoint, now: Timestamp) {
        guard let peer = indexTable[packet.receiverIndex], var s = sessions.removeValue(forKey: peer) else {
            return drop(.unknownIndex)
        }
        defer { store(s) }
        guard let initiation = s.handshake?.initiations.first(where: { $0.localIndex == packet.receiverIndex }) else {
            return drop(.unknownIndex)
        }
        var noise = initiation.noise
        guard let payload = try? noise.read(packet.noise),
              authenticatedPeer(payload, remoteStatic: noise.remoteStatic) == peer,
              let keys = try? noise.split()
        else { return drop(.authFailure) }
        let echoed = SessionID(wire: Array(payload[32...]))
        // The answered initiation's index becomes the keys'; the dial's others are forgotten.
        abandonHandshake(&s)
        indexTable[initiation.localIndex] = peer
        let keypair = TransportKeypair(send: keys.send, receive: keys.receive, localIndex: initiation.localIndex,
                                       remoteIndex: packet.senderIndex, isInitiator: true, createdAt: now,
                                       handshakeHash: noise.handshakeHash)
        s.recordRTT(now - initiation.sentAt)
        s.endpoint = endpoint
        install(keypair, resuming: echoed != nil && echoed == initiation.resumes, in: &s, now: now)
        // Our first transport packet confirms the handshake to the responder (WireGuard
        // §5.4.7); a ping doubles as an RTT sample.
        send(.ping(echo: now.nanoseconds), in: &s, now: now)
        flushQueued(&s, now: now)
    }

    // MARK: XX

    mutating func receiveXXInitiation(_ packet: HandshakePacket, from endpoint: Endpoint, now: Timestamp) {
        guard xxResponders.count < configuration.maxPendingResponders else { return drop(.refused) }
        guard var noise = try? NoiseHandshake(.xx, initiator: false, localStatic: staticKey,
                                              ephemeral: makeEphemeral(), remoteStatic: nil),
              (try? noise.read(packet.noise)) != nil,
              let message = try? noise.write(payload: localPeer.bytes + SessionID.none)
        else { return drop(.malformed) }
        let index = newIndex()
        xxResponders[index] = XXResponder(noise: noise, remoteIndex: packet.senderIndex, endpoint: endpoint, createdAt: now)
        let response = HandshakePacket(type: .xxResponse, senderIndex: index, receiverIndex: packet.senderIndex, noise: message)
        outbox.append(Datagram(remote: endpoint, payload: response.encoded()))
    }

    mutating func receiveXXResponse(_ packet: HandshakePacket, from endpoint: Endpoint, now: Timestamp) {
        guard let dial = xxDials[packet.receiverIndex] else { return drop(.unknownIndex) }
        guard dial.completedWith == nil else { return drop(.replay) }
        var noise = dial.noise
        guard let payload = try? noise.read(packet.noise),
              let remote = authenticatedPeer(payload, remoteStatic: noise.remoteStatic)
        else { return drop(.authFailure) }
        guard remote != localPeer, !firewall(remote) else {
            xxDials[packet.receiverIndex] = nil
            return drop(.refused)
        }
        // An XX handshake always starts a new session (§7.3): the responder could not say
        // in its message whether it would resume, so neither side tries.
        guard let message = try? noise.write(payload: localPeer.bytes + SessionID.none),
              let keys = try? noise.split()
        else { return drop(.authFailure) }
        // The dial stays until the responder confirms, so a lost third message is retried.
        xxDials[packet.receiverIndex]?.completedWith = remote
        var s = sessions.removeValue(forKey: remote)
            ?? PeerSession(peer: remote, endpoint: endpoint, localIsLower: localPeer < remote, now: now)
        abandonHandshake(&s)
        let finish = HandshakePacket(type: .xxFinish, senderIndex: packet.receiverIndex,
                                     receiverIndex: packet.senderIndex, noise: message)
        outbox.append(Datagram(remote: endpoint, payload: finish.encoded()))
        // The responder may still refuse us when it learns who we are from the third
        // message, so these keys wait for its first transport packet (§7.3).
        holdUnconfirmed(PeerSession.Unconfirmed(
            keys: TransportKeypair(send: keys.send, receive: keys.receive, localIndex: packet.receiverIndex,
                                   remoteIndex: packet.senderIndex, isInitiator: true, createdAt: now,
                                   handshakeHash: noise.handshakeHash),
            resumes: false), in: &s)
        s.recordRTT(now - dial.sentAt)
        if !s.isEstablished { s.endpoint = endpoint }
        store(s)
    }

    mutating func receiveXXFinish(_ packet: HandshakePacket, from endpoint: Endpoint, now: Timestamp) {
        guard let responder = xxResponders[packet.receiverIndex] else { return drop(.unknownIndex) }
        guard responder.remoteIndex == packet.senderIndex else { return drop(.malformed) }
        var noise = responder.noise
        guard let payload = try? noise.read(packet.noise),
              let remote = authenticatedPeer(payload, remoteStatic: noise.remoteStatic),
              let keys = try? noise.split()
        else { return drop(.authFailure) }
        xxResponders[packet.receiverIndex] = nil
        guard remote != localPeer, !firewall(remote) else { return drop(.refused) }
        guard sessions[remote] != nil || sessions.count < configuration.maxSessions else { return drop(.refused) }
        var s = sessions.removeValue(forKey: remote)
            ?? PeerSession(peer: remote, endpoint: endpoint, localIsLower: localPeer < remote, now: now)
        abandonHandshake(&s)
        indexTable[packet.receiverIndex] = remote
        let keypair = TransportKeypair(send: keys.send, receive: keys.receive, localIndex: packet.receiverIndex,
                                       remoteIndex: packet.senderIndex, isInitiator: false, createdAt: now,
                                       handshakeHash: noise.handshakeHash)
        s.endpoint = endpoint
        install(keypair, resuming: false, in: &s, now: now)
        // Our first transport packet tells the initiator we accepted it.
        send(.ping(echo: now.nanoseconds), in: &s, now: now)
        flushQueued(&s, now: now)
        store(s)
    }

    // MARK: Keys

    /// Makes `keys` the current keys: a rekey of the same session when both sides agreed to
    /// resume it, else a new session that replaces any old one (reported as lost, then
    /// established, so the application sees the peer's restart).
    mutating func install(_ keys: TransportKeypair, resuming: Bool, in s: inout PeerSession, now: Timestamp) {
        s.lastReceived = now
        if resuming, let id = s.sessionID, s.current != nil {
            if let old = s.previous { indexTable[old.localIndex] = nil }
            s.previous = s.current
            s.current = keys
            s.rekeys += 1
            events.append(.rekeyed(s.peer, id, handshakeHash: keys.handshakeHash))
            return
        }
        if let old = s.sessionID {
            events.append(.lost(s.peer, old, .replaced))
            s.queued.removeAll()
        }
        for index in [s.current?.localIndex, s.previous?.localIndex] .compactMap({ $0 }) where index != keys.localIndex {
            indexTable[index] = nil
        }
        let id = SessionID(handshakeHash: keys.handshakeHash)
        s.sessionID = id
        s.sessionHandshakeHash = keys.handshakeHash
        s.current = keys
        s.previous = nil
        s.establishedAt = now
        s.rekeys = 0
        s.channels = ChannelTable(localIsLower: localPeer < s.peer)
        s.unackedCapabilities = [:]
        events.append(.established(s.peer, id, endpoint: s.endpoint, handshakeHash: keys.handshakeHash,
                                   initiator: keys.isInitiator))
    }

    // MARK: Transport

    mutating func receiveTransport(_ bytes: [UInt8], from endpoint: Endpoint, now: Timestamp) {
        let header = TransportHeader(validated: bytes)
        // The session is taken out of the table and every path puts it back with `take()`,
        // a move: this path runs per packet, and a copy would retain and release every
        // buffer in the session.
        guard let peer = indexTable[header.receiverIndex] else { return drop(.unknownIndex) }
        var taken = sessions.removeValue(forKey: peer)
        guard taken != nil else { return drop(.unknownIndex) }
        defer { if let s = taken.take() { store(s) } }
        guard let plaintext = authenticate(bytes, header: header, in: &taken!, now: now) else { return }
        taken!.lastReceived = now
        taken!.packetsReceived += 1
        if endpoint != taken!.endpoint {
            // Roaming: only an authenticated, fresh packet may move the endpoint.
            taken!.endpoint = endpoint
            events.append(.endpointChanged(peer, endpoint))
        }
        guard let frame = SessionFrame(plaintext: plaintext) else { return drop(.malformed) }
        // A session the frame ended is not put back.
        if !handle(frame, in: &taken!, now: now) { taken = nil }
    }

    /// Finds the keys for the index, decrypts and checks the replay window; confirms unconfirmed
    /// keys on their first packet.
    private mutating func authenticate(_ bytes: [UInt8], header: TransportHeader, in s: inout PeerSession,
                                       now: Timestamp) -> [UInt8]? {
        let index = header.receiverIndex
        let counter = header.counter
        if s.current?.localIndex == index {
            return open(bytes, counter: counter, keys: &s.current!, now: now)
        }
        if s.previous?.localIndex == index {
            return open(bytes, counter: counter, keys: &s.previous!, now: now)
        }
        if s.next?.keys.localIndex == index {
            guard let plaintext = open(bytes, counter: counter, keys: &s.next!.keys, now: now) else { return nil }
            confirm(s.next!, in: &s, now: now)
            return plaintext
        }
        if let i = s.superseded.firstIndex(where: { $0.keys.localIndex == index }) {
            guard let plaintext = open(bytes, counter: counter, keys: &s.superseded[i].keys, now: now) else { return nil }
            confirm(s.superseded[i], in: &s, now: now)
            return plaintext
        }
        drop(.unknownIndex)
        return nil
    }

    /// Unconfirmed keys whose first packet authenticated: they become current, and the
    /// other unconfirmed ones of this peer are forgotten.
    private mutating func confirm(_ confirmed: PeerSession.Unconfirmed, in s: inout PeerSession, now: Timestamp) {
        forgetUnconfirmed(&s, keeping: confirmed.keys.localIndex)
        install(confirmed.keys, resuming: confirmed.resumes, in: &s, now: now)
        flushQueued(&s, now: now)
    }

    /// Forgets `next` and the keys it superseded, and their indices but `keeping`'s.
    mutating func forgetUnconfirmed(_ s: inout PeerSession, keeping: UInt32? = nil) {
        for index in [s.next?.keys.localIndex].compactMap({ $0 }) + s.superseded.map(\.keys.localIndex) where index != keeping {
            indexTable[index] = nil
        }
        s.next = nil
        s.superseded = []
    }

    /// Holds keys we answered (or, XX, completed first) until the other side confirms them.
    /// Keys they replace stay confirmable (`PeerSession.superseded`), a bounded few.
    mutating func holdUnconfirmed(_ keys: PeerSession.Unconfirmed, in s: inout PeerSession) {
        if var old = s.next {
            old.response = nil
            old.resending = false
            s.superseded.append(old)
            if s.superseded.count >= PeerSession.OutgoingHandshake.answerable {
                indexTable[s.superseded.removeFirst().keys.localIndex] = nil
            }
        }
        s.next = keys
        indexTable[keys.keys.localIndex] = s.peer
    }

    private mutating func open(_ bytes: [UInt8], counter: UInt64, keys: inout TransportKeypair, now: Timestamp) -> [UInt8]? {
        guard now.nanoseconds(since: keys.createdAt) < timing.rejectAfterTime, counter < configuration.rejectAfterMessages else {
            drop(.unknownIndex)
            return nil
        }
        // Cheap check first, so a flood of replays costs no decryption; the window itself
        // only moves once the packet authenticated.
        guard keys.replay.wouldAccept(counter) else {
            drop(.replay)
            return nil
        }
        guard let plaintext = keys.open(bytes, counter: counter) else {
            drop(.authFailure)
            return nil
        }
        guard keys.replay.accept(counter) else {
            drop(.replay)
            return nil
        }
        keys.heardFrom = true
        return plaintext
    }

    /// Acts on one frame; returns false when the session ended.
    private mutating func handle(_ frame: SessionFrame, in s: inout PeerSession, now: Timestamp) -> Bool {
        let peer = s.peer
        switch frame {
        case let .ping(echo):
            send(.pong(echo: echo), in: &s, now: now)
        case let .pong(echo):
            if echo <= now.nanoseconds { s.recordRTT(now - Timestamp(nanoseconds: echo)) }
        case .close:
            discard(s, reason: .closedByRemote)
            return false
        case let .channelOpen(id, label):
            guard s.channels.isRemoteID(id) else {
                drop(.malformed)
                return true
            }
            if s.channels.remoteOpened(id) { events.append(.channelOpened(peer, channel: id, label: label)) }
            send(.channelAccept(id), in: &s, now: now)
        case let .channelAccept(id):
            if s.channels.accepted(id) { events.append(.channelAccepted(peer, channel: id)) }
        case let .channelData(id, message):
            if id == ChannelLimits.controlChannel {
                guard let control = ControlMessage(message) else {
                    drop(.malformed)
                    return true
                }
                switch control {
                case let .capability(capability):
                    send(.channelData(ChannelLimits.controlChannel, ControlMessage.capabilityAck(capability).encoded()),
                         in: &s, now: now)
                    events.append(.capability(peer, capability: capability, handshakeHash: s.sessionHandshakeHash))
                case let .capabilityAck(capability):
                    s.unackedCapabilities[capability] = nil
                }
            } else if s.channels.open.contains(id) {
                // Data on a channel we opened means the remote has it: as good as an accept.
                if s.channels.accepted(id) { events.append(.channelAccepted(peer, channel: id)) }
                events.append(.channelMessage(peer, channel: id, message: message))
            } else {
                drop(.unknownChannel)
            }
        case let .channelClose(id):
            if s.channels.close(id) { events.append(.channelClosed(peer, channel: id)) }
        }
        return true
    }
}
