/// The actor's side of the session layer: inputs into the `SessionManager`, its output out
/// to the transport and to connections, capabilities, and reconnection.
extension Swarm {
    // MARK: Inputs

    func receive(_ batch: [Datagram]) {
        guard lifecycle == .running else { return }
        let now = clock.now()
        for datagram in batch { manager.receive(datagram, now: now) }
        pump()
    }

    func sighted(_ sighting: PeerSighting) {
        guard lifecycle == .running, sighting.peer != localPeer, let flags = topics[sighting.topic], flags.lookup,
              transport.canSend(to: sighting.endpoint), !userFirewall(sighting.peer) else { return }
        var c = candidates[sighting.peer] ?? Candidate()
        let moved = c.saw(sighting.endpoint)
        c.topics.insert(sighting.topic)
        let now = clock.now()
        // A sighting is fresh evidence the peer is up: dial now, unless we are backing off
        // from failures at the same endpoint.
        let due = moved || c.nextAttempt.map { now >= $0 } ?? true
        candidates[sighting.peer] = c
        if due && !manager.isKnown(sighting.peer), let endpoint = c.endpoint {
            candidates[sighting.peer]?.nextAttempt = nil
            manager.connect(to: sighting.peer, at: endpoint, alternative: c.alternative, now: now)
            pump()
        } else if !moved, let alternative = c.alternative {
            // Seen on another path while we dial it: the dial tries that path too.
            manager.learnAlternative(alternative, for: sighting.peer)
        }
    }

    func fireTimers() {
        guard lifecycle == .running else { return }
        let now = clock.now()
        manager.tick(now: now)
        for (peer, c) in candidates {
            guard let t = c.nextAttempt, now >= t else { continue }
            candidates[peer]?.nextAttempt = nil
            if let endpoint = c.endpoint, !manager.isKnown(peer) {
                manager.connect(to: peer, at: endpoint, alternative: c.alternative, now: now)
            }
        }
        pump()
    }

    /// Sends what the manager produced and acts on its events, until it has nothing more.
    func pump() {
        while manager.hasOutput {
            let datagrams = manager.takeDatagrams()
            if !datagrams.isEmpty { transport.send(datagrams) }
            for event in manager.takeEvents() { handle(event) }
        }
        if !staged.isEmpty {
            for (channel, messages) in staged.values { channel.deliver(messages) }
            staged.removeAll(keepingCapacity: true)
        }
        // Whatever was just done may have set a timer earlier than the timer loop's wake-up.
        // (A loop about to wake anyway, within its 1 ms floor, is left alone: a timer that
        // stays due must not cost a wake-up per batch of datagrams.)
        if let sleep = timerSleep, let next = nextTimer(), next < sleep.until,
           clock.now() + .milliseconds(1) < sleep.until {
            sleep.sleeper.cancel()
        }
    }

    // MARK: Session events

    private func handle(_ event: SessionEvent) {
        let now = clock.now()
        switch event {
        case let .established(peer, id, endpoint, hash, initiator):
            let role: Capability.Role = initiator ? .initiator : .responder
            let connection = PeerConnection(swarm: self, peer: peer, sessionID: id, handshakeHash: hash,
                                            localRole: role, endpoint: endpoint)
            sessions[peer] = SessionBinding(connection: connection, handshakeHash: hash, localRole: role)
            candidates[peer]?.failures = 0
            candidates[peer]?.nextAttempt = nil
            candidates[peer]?.promote(endpoint)
            emit(everConnected.contains(peer) ? .sessionRestored(peer, id) : .sessionEstablished(peer, id))
            everConnected.insert(peer)
            for topic in topics.keys { sendCapability(for: topic, to: peer, now: now) }
            if candidates[peer]?.explicit == true { surface(peer) }
        case .rekeyed:
            break
        case let .lost(peer, id, reason):
            closeBinding(peer, reason: reason)
            emit(.sessionLost(peer, id, reason))
            scheduleReconnect(peer, after: reason, now: now)
        case let .handshakeFailed(peer, endpoint):
            emit(.handshakeFailed(peer, endpoint))
            if let peer, var c = candidates[peer] {
                c.nextAttempt = retryTime(for: c, now: now)
                c.failures += 1
                // A dial that failed where it started moves on; a failed rekey of a session
                // that still runs does not.
                if c.endpoint == endpoint && sessions[peer] == nil { c.failOver() }
                candidates[peer] = c
            }
        case let .endpointChanged(peer, endpoint):
            sessions[peer]?.connection.setEndpoint(endpoint)
            candidates[peer]?.promote(endpoint)
            emit(.endpointChanged(peer, endpoint))
        case let .capability(peer, capability, _):
            receiveCapability(capability, from: peer)
        case let .channelOpened(peer, id, label):
            guard let binding = sessions[peer] else { return }
            let channel = SessionChannel(swarm: self, peer: peer, id: id, label: label, buffer: configuration.channelBuffer)
            sessions[peer]?.channels[id] = channel
            binding.connection.deliverIncoming(channel)
        case let .channelAccepted(peer, id):
            guard let pending = sessions[peer]?.pendingOpens.removeValue(forKey: id) else { return }
            let channel = SessionChannel(swarm: self, peer: peer, id: id, label: pending.label, buffer: configuration.channelBuffer)
            sessions[peer]?.channels[id] = channel
            pending.continuation.resume(returning: channel)
        case let .channelOpenFailed(peer, id):
            sessions[peer]?.pendingOpens.removeValue(forKey: id)?.continuation
                .resume(throwing: SwarmError(.channelOpenFailed, "peer \(peer.short) never accepted channel \(id)"))
        case let .channelMessage(peer, id, message):
            guard let channel = sessions[peer]?.channels[id] else { return }
            staged[ObjectIdentifier(channel), default: (channel, [])].messages.append(message)
        case let .channelClosed(peer, id):
            guard let channel = sessions[peer]?.channels.removeValue(forKey: id) else { return }
            deliverStaged(channel)
            channel.finish()
        }
    }

    private func emit(_ event: SwarmEvent) { eventsContinuation.yield(event) }

    /// Hands the connection to the application, once.
    func surface(_ peer: PeerID) {
        guard let binding = sessions[peer], !binding.surfaced else { return }
        binding.surfaced = true
        connectionsContinuation.yield(binding.connection)
    }

    /// Hands over what was gathered for a channel before it finishes.
    private func deliverStaged(_ channel: SessionChannel) {
        if let entry = staged.removeValue(forKey: ObjectIdentifier(channel)) { channel.deliver(entry.messages) }
    }

    private func closeBinding(_ peer: PeerID, reason: CloseReason) {
        guard let binding = sessions.removeValue(forKey: peer) else { return }
        for channel in binding.channels.values {
            deliverStaged(channel)
            channel.finish()
        }
        for pending in binding.pendingOpens.values {
            pending.continuation.resume(throwing: SwarmError(.sessionClosed, "session with \(peer.short) ended: \(reason)"))
        }
        binding.connection.markClosed(reason)
    }

    /// After a loss: redial peers we still want, unless they said goodbye or we did.
    private func scheduleReconnect(_ peer: PeerID, after reason: CloseReason, now: Timestamp) {
        guard var c = candidates[peer] else { return }
        switch reason {
        case .timeout, .replaced, .handshakeFailed:
            c.nextAttempt = retryTime(for: c, now: now)
            c.failures += 1
            if reason != .replaced { c.failOver() }
        case .closedByRemote:
            // The peer left cleanly: wait for discovery to see it again, unless we asked
            // for it explicitly.
            c.nextAttempt = c.explicit ? retryTime(for: c, now: now) : nil
            c.failures += 1
        case .shutdown, .refused:
            c.nextAttempt = nil
        }
        candidates[peer] = c
    }

    /// When to redial a candidate after its latest failure. Peers given to `joinPeer` are
    /// redialled for as long as the swarm runs; peers only seen by discovery are given up
    /// after one round of the policy's delays, until discovery sees them again.
    private func retryTime(for c: Candidate, now: Timestamp) -> Timestamp? {
        guard c.explicit || c.failures < configuration.retry.delays.count else { return nil }
        return now + configuration.retry.delay(afterFailures: c.failures, using: &rng)
    }

    // MARK: Capabilities (PROTOCOL.md §5.3, §8.3)

    func sendCapability(for topic: Topic, to peer: PeerID, now: Timestamp) {
        guard let binding = sessions[peer] else { return }
        let capability = Capability.make(topic: topic, handshakeHash: binding.handshakeHash, sender: binding.localRole)
        manager.sendCapability(capability, to: peer, now: now)
    }

    private func receiveCapability(_ capability: [UInt8], from peer: PeerID) {
        guard let binding = sessions[peer] else { return }
        let senderRole = binding.localRole.peer
        for topic in topics.keys
        where Capability.verify(capability, topic: topic, handshakeHash: binding.handshakeHash, sender: senderRole) {
            prove(topic, for: peer)
            return
        }
        // Bounded: a peer cannot make us keep more than a few unknown capabilities.
        if binding.unverified.count < 64 && !binding.unverified.contains(capability) {
            binding.unverified.append(capability)
        }
    }

    func recheckUnverified(_ peer: PeerID, topic: Topic) {
        guard let binding = sessions[peer] else { return }
        let senderRole = binding.localRole.peer
        let matched = binding.unverified.filter {
            Capability.verify($0, topic: topic, handshakeHash: binding.handshakeHash, sender: senderRole)
        }
        guard !matched.isEmpty else { return }
        binding.unverified.removeAll { matched.contains($0) }
        prove(topic, for: peer)
    }

    private func prove(_ topic: Topic, for peer: PeerID) {
        guard let binding = sessions[peer], binding.connection.addTopic(topic) else { return }
        // A proven member is worth redialling if we lose it.
        var c = candidates[peer] ?? Candidate(endpoint: binding.connection.endpoint)
        c.topics.insert(topic)
        candidates[peer] = c
        emit(.topicProven(peer, topic))
        surface(peer)
    }

    // MARK: Channels

    func openChannel(on connection: PeerConnection, label: [UInt8]) async throws -> SessionChannel {
        let peer = connection.remotePeer
        guard label.count <= ChannelLimits.maxMessage else {
            throw SwarmError(.messageTooLarge, "channel label of \(label.count) bytes")
        }
        guard let binding = sessions[peer], binding.connection === connection else {
            throw SwarmError(.sessionClosed, "no session with \(peer.short)")
        }
        guard let id = manager.openChannel(to: peer, label: label, now: clock.now()) else {
            throw SwarmError(.channelOpenFailed, "no free channel id with \(peer.short)")
        }
        pump()
        return try await withCheckedThrowingContinuation { continuation in
            sessions[peer]?.pendingOpens[id] = (label, continuation)
        }
    }

    func send(_ messages: [[UInt8]], on channel: SessionChannel) throws {
        let peer = channel.remotePeer
        guard let binding = sessions[peer], binding.channels[channel.id] === channel else {
            throw SwarmError(.channelClosed, "channel \(channel.id) with \(peer.short) is closed")
        }
        if let big = messages.first(where: { $0.count > ChannelLimits.maxMessage }) {
            throw SwarmError(.messageTooLarge, "message of \(big.count) bytes (none of the batch was sent)")
        }
        manager.send(messages, on: channel.id, to: peer, now: clock.now())
        pump()
    }

    func closeChannel(_ channel: SessionChannel) {
        let peer = channel.remotePeer
        guard sessions[peer]?.channels[channel.id] === channel else { return }
        sessions[peer]?.channels[channel.id] = nil
        deliverStaged(channel)
        channel.finish()
        manager.closeChannel(channel.id, with: peer, now: clock.now())
        pump()
    }

    func closeConnection(_ connection: PeerConnection) {
        let peer = connection.remotePeer
        guard sessions[peer]?.connection === connection else { return }
        manager.close(peer, now: clock.now())
        pump()
    }
}
