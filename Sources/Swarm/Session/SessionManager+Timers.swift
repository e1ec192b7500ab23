/// Timer events, in the manner of wireguard-go's `timers.go`: `tick(now:)` performs every
/// timer that is due; `nextDeadline` says when to call it again.
extension SessionManager {
    public mutating func tick(now: Timestamp) {
        // Only sessions with a timer due are taken out of the table: with thousands of
        // sessions most ticks touch none.
        let due = deadlines.compactMap { peer, deadline in deadline <= now ? peer : nil }
        for peer in due {
            guard var s = sessions.removeValue(forKey: peer) else { deadlines[peer] = nil; continue }
            if tick(&s, now: now) { store(s) }
        }
        for (index, dial) in xxDials where now >= dial.nextRetransmit {
            xxDials[index] = nil
            if let peer = dial.completedWith, sessions[peer]?.isEstablished == true { continue }
            if dial.attempts >= configuration.handshakeAttempts {
                events.append(.handshakeFailed(nil, dial.endpoint))
            } else {
                startXXDial(to: dial.endpoint, attempts: dial.attempts + 1, now: now)
            }
        }
        for (index, responder) in xxResponders where now.nanoseconds(since: responder.createdAt) >= timing.handshakeLifetime {
            xxResponders[index] = nil
        }
    }

    /// Runs the timers of one session; returns false when it ended.
    private mutating func tick(_ s: inout PeerSession, now: Timestamp) -> Bool {
        // Should be called when a handshake retransmission is due: try again with a fresh
        // initiation, or give up after the configured attempts.
        if let own = s.handshake, now >= own.nextRetransmit {
            if own.attempts >= configuration.handshakeAttempts {
                abandonHandshake(&s)
                events.append(.handshakeFailed(s.peer, s.endpoint))
            } else {
                startInitiation(&s, attempts: own.attempts + 1, alternate: true, now: now)
            }
        }
        // Dead peer: nothing authenticated for the timeout.
        if s.sessionID != nil, now.nanoseconds(since: s.lastReceived) >= timing.deadPeerTimeout {
            discard(s, reason: .timeout)
            return false
        }
        // Unconfirmed keys expire with the newest of them (the others are older).
        if let created = s.next?.keys.createdAt, now.nanoseconds(since: created) >= timing.handshakeLifetime {
            forgetUnconfirmed(&s)
        }
        if s.next?.resending == true, let response = s.next?.response, let due = s.next?.nextResponse, now >= due {
            if s.next!.responsesSent >= configuration.handshakeAttempts {
                s.next!.resending = false
            } else {
                outbox.append(response)
                s.next!.responsesSent += 1
                s.next!.nextResponse = now + retransmitInterval(attempt: s.next!.responsesSent)
            }
        }
        // A peer we answered but never heard from again, or dialled in vain: forget it.
        if s.sessionID == nil && s.handshake == nil && s.next == nil {
            discard(s, reason: .handshakeFailed)
            return false
        }
        if let old = s.previous, let created = s.current?.createdAt,
           now.nanoseconds(since: created) >= timing.previousKeysLinger {
            indexTable[old.localIndex] = nil
            s.previous = nil
        }
        // Rekey by age: the initiator of the current keys does it on time; the responder
        // a keepalive later, in case the initiator went quiet (avoids both rekeying at once).
        if s.handshake == nil, s.next == nil, let created = s.current?.createdAt, let isInitiator = s.current?.isInitiator,
           now >= timing.rekeyDue(createdAt: created, isInitiator: isInitiator) {
            startInitiation(&s, attempts: 1, now: now)
        }
        // Keepalive: nothing sent for the interval. Confirmation: keys we initiated and
        // have heard nothing under may be unknown to the responder (our first packet was
        // lost), so ping again after the first handshake retransmission's interval.
        if s.isEstablished, s.current?.canSend(now: now, configuration: configuration, timing: timing) == true {
            let quiet = now.nanoseconds(since: s.lastSent)
            if quiet >= timing.keepaliveInterval || (s.awaitsConfirmation && quiet >= timing.confirmRetransmit) {
                send(.ping(echo: now.nanoseconds), in: &s, now: now)
            }
        }
        for (id, open) in s.channels.pending where now >= open.nextRetransmit {
            if open.attempts >= configuration.channelOpenAttempts {
                _ = s.channels.close(id)
                events.append(.channelOpenFailed(s.peer, channel: id))
            } else {
                s.channels.rescheduleOpen(id, at: now + configuration.channelOpenRetransmit)
                send(.channelOpen(id, label: open.label), in: &s, now: now)
            }
        }
        for (capability, pending) in s.unackedCapabilities where now >= pending.next {
            if pending.attempts >= configuration.channelOpenAttempts {
                s.unackedCapabilities[capability] = nil
            } else {
                s.unackedCapabilities[capability] = (now + configuration.channelOpenRetransmit, pending.attempts + 1)
                send(.channelData(ChannelLimits.controlChannel, ControlMessage.capability(capability).encoded()),
                     in: &s, now: now)
            }
        }
        return true
    }

    /// When `tick(now:)` next has something to do, or nil when nothing is pending.
    public var nextDeadline: Timestamp? {
        var earliest: Timestamp?
        func consider(_ t: Timestamp?) {
            guard let t else { return }
            if earliest == nil || t < earliest! { earliest = t }
        }
        for deadline in deadlines.values { consider(deadline) }
        for dial in xxDials.values { consider(dial.nextRetransmit) }
        for responder in xxResponders.values { consider(responder.createdAt.adding(nanoseconds: timing.handshakeLifetime)) }
        return earliest
    }

    /// The earliest timer of one session.
    func deadline(of s: PeerSession) -> Timestamp? {
        var earliest: Timestamp?
        func consider(_ t: Timestamp?) {
            guard let t else { return }
            if earliest == nil || t < earliest! { earliest = t }
        }
        // Runs for every packet sent or received: integer nanoseconds (`timing`), and the
        // keys' fields read through `s.current?` (binding the keys would copy them: nonces,
        // replay window).
        consider(s.handshake?.nextRetransmit)
        if let created = s.next?.keys.createdAt { consider(created.adding(nanoseconds: timing.handshakeLifetime)) }
        if s.next?.resending == true { consider(s.next?.nextResponse) }
        if s.isEstablished {
            consider(s.lastReceived.adding(nanoseconds: timing.deadPeerTimeout))
            // Keys past their reject limits cannot carry a keepalive; the rekey (or the dead-
            // peer timeout) is what comes next.
            let keepalive = s.lastSent.adding(nanoseconds: s.awaitsConfirmation ? timing.confirmRetransmit : timing.keepaliveInterval)
            if let counter = s.current?.sendCounter, let created = s.current?.createdAt,
               counter < configuration.rejectAfterMessages, keepalive < created.adding(nanoseconds: timing.rejectAfterTime) {
                consider(keepalive)
            }
        }
        if let created = s.current?.createdAt, let isInitiator = s.current?.isInitiator {
            if s.previous != nil { consider(created.adding(nanoseconds: timing.previousKeysLinger)) }
            if s.handshake == nil && s.next == nil { consider(timing.rekeyDue(createdAt: created, isInitiator: isInitiator)) }
        }
        consider(s.channels.nextDeadline)
        for pending in s.unackedCapabilities.values { consider(pending.next) }
        // A session that is neither established nor being set up is forgotten at once.
        if s.sessionID == nil && s.handshake == nil && s.next == nil { consider(.zero) }
        return earliest
    }
}

extension SessionManager {
    /// Whether the timer cache names exactly the sessions that have a timer, each with its
    /// current deadline: what `store` keeps true. For the fuzz target (Sources/FuzzSwarm),
    /// which checks it after every input and cannot see the tables.
    package var timersAreConsistent: Bool {
        let expected = Set(sessions.compactMap { peer, s in deadline(of: s) == nil ? nil : peer })
        guard Set(deadlines.keys) == expected else { return false }
        return deadlines.allSatisfy { peer, t in sessions[peer].flatMap { deadline(of: $0) } == t }
    }
}
