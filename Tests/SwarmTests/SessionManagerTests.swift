import Sodium
import Testing
@testable import Swarm

@Suite("SessionManager")
struct SessionManagerTests {
    /// Two nodes with an established IK session (node 0 dialled node 1).
    static func pair(_ configuration: SessionConfiguration = SessionTestNetwork.fastConfiguration) -> SessionTestNetwork {
        var net = SessionTestNetwork()
        net.addNode(seed: 1, configuration: configuration)
        net.addNode(seed: 2, configuration: configuration)
        net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
        net.settle()
        return net
    }

    @Test func ikHandshakeEstablishesOneSessionOnBothSides() {
        let net = Self.pair()
        #expect(net.established(0) == [net.peer(1)])
        #expect(net.established(1) == [net.peer(0)])
        let a = net.nodes[0].manager.sessionID(with: net.peer(1))
        #expect(a != nil)
        #expect(a == net.nodes[1].manager.sessionID(with: net.peer(0)))
        #expect(net.nodes[0].manager.drops.total == 0)
        #expect(net.nodes[1].manager.drops.total == 0)
        let stats = net.nodes[0].manager.stats(for: net.peer(1))
        #expect(stats?.endpoint == net.nodes[1].endpoint)
        #expect(stats?.roundTripTime != nil)
    }

    @Test func aDialWithAnAlternativeReachesThePeerOnTheOtherPathAfterOneRetransmit() {
        // The peer was seen first at an address that does not work (its IPv4 filtered, say)
        // and also on IPv6 link-local: the second initiation goes there, and the session
        // runs at the address that answered.
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        let linkLocal = Endpoint(address: .v6([0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [2]), port: 4000, scopeID: 2)
        net.addNode(seed: 2, endpoint: linkLocal)
        let dead = Endpoint.v4(10, 0, 0, 2, port: 4000)
        net.nodes[0].manager.connect(to: net.peer(1), at: dead, alternative: linkLocal, now: net.now)
        net.settle()
        #expect(net.established(0).isEmpty)
        // One retransmit interval (100 ms base, plus up to its jitter) later.
        net.advance(.milliseconds(250))
        #expect(net.established(0) == [net.peer(1)])
        #expect(net.nodes[0].manager.stats(for: net.peer(1))?.endpoint == linkLocal)
        // Without the alternative the dial would still be knocking at the dead address.
        var alone = SessionTestNetwork()
        alone.addNode(seed: 1)
        alone.addNode(seed: 2, endpoint: linkLocal)
        alone.nodes[0].manager.connect(to: alone.peer(1), at: dead, now: alone.now)
        alone.advance(.milliseconds(250))
        #expect(alone.established(0).isEmpty)
    }

    @Test func theSimultaneousDialResendGoesWhereThePeerSpokeFromNotToTheAlternative() {
        // The lower peer dials with an alternative; the higher one's initiation arrives from
        // the primary address: the fresh initiation that answers it goes there, whatever
        // the attempt number.
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        let (low, high) = net.peer(0) < net.peer(1) ? (0, 1) : (1, 0)
        let dead = Endpoint.v4(10, 9, 9, 9, port: 4000)
        net.filter = { _, _ in false }   // nothing arrives until the test says so
        net.nodes[low].manager.connect(to: net.peer(high), at: net.nodes[high].endpoint, alternative: dead, now: net.now)
        net.settle()
        net.advance(.milliseconds(150))   // the second attempt went to the alternative
        net.filter = { _, _ in true }
        net.now = net.now + .milliseconds(300)
        _ = net.nodes[low].manager.takeDatagrams()
        net.nodes[high].manager.connect(to: net.peer(low), at: net.nodes[low].endpoint, now: net.now)
        let initiation = net.nodes[high].manager.takeDatagrams()
        #expect(initiation.count == 1)
        net.nodes[low].manager.receive(Datagram(remote: net.nodes[high].endpoint, payload: initiation[0].payload), now: net.now)
        let resent = net.nodes[low].manager.takeDatagrams()
        #expect(resent.map(\.remote) == [net.nodes[high].endpoint], "\(resent.map(\.remote))")
    }

    @Test func xxHandshakeLearnsThePeerIDs() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        net.nodes[0].manager.connect(to: net.nodes[1].endpoint, now: net.now)
        net.settle()
        #expect(net.established(0) == [net.peer(1)])
        #expect(net.established(1) == [net.peer(0)])
        #expect(net.nodes[0].manager.sessionID(with: net.peer(1)) == net.nodes[1].manager.sessionID(with: net.peer(0)))
    }

    @Test func aLostXXFinishIsRetried() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        var lostFinish = false
        net.filter = { _, d in
            if d.payload[1] == PacketType.xxFinish.rawValue && !lostFinish { lostFinish = true; return false }
            return true
        }
        net.nodes[0].manager.connect(to: net.nodes[1].endpoint, now: net.now)
        net.settle()
        #expect(net.established(0).isEmpty)
        net.advance(.seconds(1))
        #expect(lostFinish)
        #expect(net.established(0) == [net.peer(1)])
        #expect(net.established(1) == [net.peer(0)])
    }

    @Test func xxInitiationIsNoSmallerThanItsAnswer() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        net.nodes[0].manager.connect(to: net.nodes[1].endpoint, now: net.now)
        let initiation = net.nodes[0].manager.takeDatagrams()[0].payload
        net.nodes[1].manager.receive(Datagram(remote: net.nodes[0].endpoint, payload: initiation), now: net.now)
        let answer = net.nodes[1].manager.takeDatagrams()[0].payload
        #expect(answer.count <= initiation.count)
    }

    @Test func channelsCarryMessagesBothWays() {
        var net = Self.pair()
        let (a, b) = (net.peer(0), net.peer(1))
        let id = net.nodes[0].manager.openChannel(to: b, label: Array("book-1".utf8), now: net.now)!
        net.settle()
        #expect(net.nodes[1].events.contains(.channelOpened(a, channel: id, label: Array("book-1".utf8))))
        #expect(net.nodes[0].events.contains(.channelAccepted(b, channel: id)))
        #expect(true == net.nodes[0].manager.send([1, 2, 3], on: id, to: b, now: net.now))
        #expect(true == net.nodes[1].manager.send([4, 5], on: id, to: a, now: net.now))
        net.settle()
        #expect(net.messages(1) == [[1, 2, 3]])
        #expect(net.messages(0) == [[4, 5]])
        #expect(net.nodes[0].manager.send([[6], [7], [UInt8](repeating: 0, count: ChannelLimits.maxMessage + 1)],
                                          on: id, to: b, now: net.now) == 2)
        net.settle()
        #expect(net.messages(1).suffix(2) == [[6], [7]])
        // The other side allocates from the other half of the id space.
        let other = net.nodes[1].manager.openChannel(to: a, label: [], now: net.now)!
        #expect(other % 2 != id % 2)
        net.settle()
        #expect(net.nodes[0].events.contains(.channelOpened(b, channel: other, label: [])))
        // Oversized messages and unknown channels are refused locally.
        #expect(false == net.nodes[0].manager.send([UInt8](repeating: 0, count: ChannelLimits.maxMessage + 1), on: id, to: b, now: net.now))
        #expect(false == net.nodes[0].manager.send([1], on: 999, to: b, now: net.now))
        net.nodes[0].manager.closeChannel(id, with: b, now: net.now)
        net.settle()
        #expect(net.nodes[1].events.contains(.channelClosed(a, channel: id)))
        #expect(false == net.nodes[1].manager.send([1], on: id, to: a, now: net.now))
    }

    @Test func lostChannelOpenIsRetransmitted() {
        var net = Self.pair()
        var lostOne = false
        net.filter = { sender, _ in
            if sender == 0 && !lostOne { lostOne = true; return false }
            return true
        }
        let id = net.nodes[0].manager.openChannel(to: net.peer(1), label: [7], now: net.now)!
        net.advance(.seconds(1))
        #expect(lostOne)
        #expect(net.nodes[1].events.contains(.channelOpened(net.peer(0), channel: id, label: [7])))
        #expect(net.nodes[0].events.contains(.channelAccepted(net.peer(1), channel: id)))
    }

    @Test func capabilitiesArriveWithTheSharedHandshakeHash() {
        var net = Self.pair()
        let cap = [UInt8](repeating: 0x5A, count: 32)
        net.nodes[0].manager.sendCapability(cap, to: net.peer(1), now: net.now)
        net.settle()
        let hashes = net.nodes[0].events.compactMap { if case let .established(_, _, _, h, _) = $0 { h } else { nil } }
        #expect(net.nodes[1].events.contains(.capability(net.peer(0), capability: cap, handshakeHash: hashes[0])))
    }

    @Test func aLostCapabilityIsRetransmittedUntilAcknowledged() {
        var net = Self.pair()
        var lostOne = false
        net.filter = { sender, _ in
            if sender == 0 && !lostOne { lostOne = true; return false }
            return true
        }
        let cap = [UInt8](repeating: 0x11, count: 32)
        net.nodes[0].manager.sendCapability(cap, to: net.peer(1), now: net.now)
        net.advance(.seconds(2))
        let received = net.nodes[1].events.filter { if case .capability = $0 { true } else { false } }
        #expect(lostOne && received.count == 1)
    }

    @Test func garbageIsDroppedAndCountedAndTheSessionGoesOn() {
        var net = Self.pair()
        let (a, b) = (net.peer(0), net.peer(1))
        let id = net.nodes[0].manager.openChannel(to: b, label: [], now: net.now)!
        net.settle()
        net.nodes[0].manager.send([9, 9, 9], on: id, to: b, now: net.now)
        net.settle()
        let transport = net.delivered.last { $0.to == 1 && $0.bytes[1] == 6 }!.bytes
        let from = net.nodes[0].endpoint
        func drops(_ r: DropReason) -> UInt64 { net.nodes[1].manager.drops[r] }

        net.inject(transport, to: 1, from: from)
        #expect(drops(.replay) == 1)
        net.inject(Array(transport.prefix(20)), to: 1, from: from)
        #expect(drops(.malformed) == 1)
        var flipped = transport
        flipped[transport.count - 5] ^= 0x10
        flipped[8] &+= 1   // a fresh counter, so the tag check is what fails
        net.inject(flipped, to: 1, from: from)
        #expect(drops(.authFailure) == 1)
        net.inject([UInt8](repeating: 1, count: 1500), to: 1, from: from)
        #expect(drops(.tooBig) == 1)
        var rng = SeededRandom(seed: 42)
        for _ in 0..<200 {
            let bytes = (0..<Int(rng.next() % 1300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            net.inject(bytes, to: 1, from: .v4(10, 9, 9, 9, port: 1))
        }
        var unknown = transport
        unknown[4] ^= 0xFF
        net.inject(unknown, to: 1, from: from)
        #expect(drops(.unknownIndex) >= 1)
        // Random handshake-shaped packets cost a decryption attempt and are dropped too.
        for type: UInt8 in 1...5 {
            let length = PacketType(rawValue: type)!.fixedLength!
            net.inject([1, type, 0, 0] + (4..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, to: 1,
                       from: .v4(10, 9, 9, 9, port: 2))
        }
        #expect(net.nodes[1].manager.drops.total >= 205)
        #expect(net.lost(1).isEmpty)
        // The session goes on, at its old endpoint.
        #expect(net.nodes[1].manager.stats(for: a)?.endpoint == from)
        net.nodes[0].manager.send([1], on: id, to: b, now: net.now)
        net.settle()
        #expect(net.messages(1).last == [1])
    }

    @Test func anAuthenticatedPacketFromANewEndpointMovesTheSession() {
        var net = Self.pair()
        let (a, b) = (net.peer(0), net.peer(1))
        let moved = Endpoint.v4(10, 0, 7, 7, port: 5555)
        net.nodes[1].endpoint = moved
        let id = net.nodes[1].manager.openChannel(to: a, label: [], now: net.now)!
        net.settle()
        #expect(net.nodes[0].events.contains(.endpointChanged(b, moved)))
        #expect(net.nodes[0].manager.stats(for: b)?.endpoint == moved)
        net.nodes[0].manager.send([3], on: id, to: b, now: net.now)
        net.settle()
        #expect(net.messages(1) == [[3]])
        // A forged packet from elsewhere does not move it.
        net.inject([1, 6, 0, 0] + [UInt8](repeating: 0, count: 40), to: 0, from: .v4(6, 6, 6, 6, port: 6))
        #expect(net.nodes[0].manager.stats(for: b)?.endpoint == moved)
    }

    @Test func rekeyByAgeKeepsTheSessionAndItsChannels() {
        var c = SessionTestNetwork.fastConfiguration
        c.rekeyAfterTime = .seconds(2)
        c.rejectAfterTime = .seconds(3)
        c.previousKeysLinger = .milliseconds(500)
        var net = Self.pair(c)
        let (a, b) = (net.peer(0), net.peer(1))
        let session = net.nodes[0].manager.sessionID(with: b)
        let id = net.nodes[0].manager.openChannel(to: b, label: [], now: net.now)!
        net.advance(.seconds(5))
        let rekeys = net.nodes[0].events.filter { if case .rekeyed = $0 { true } else { false } }
        #expect(rekeys.count >= 2)
        #expect(net.nodes[0].manager.sessionID(with: b) == session)
        #expect(net.nodes[1].manager.sessionID(with: a) == session)
        #expect(net.lost(0).isEmpty && net.lost(1).isEmpty)
        #expect(true == net.nodes[0].manager.send([8], on: id, to: b, now: net.now))
        net.settle()
        #expect(net.messages(1) == [[8]])
    }

    @Test func rekeyByMessageCount() {
        var c = SessionTestNetwork.fastConfiguration
        c.rekeyAfterMessages = 20
        var net = Self.pair(c)
        let b = net.peer(1)
        let id = net.nodes[0].manager.openChannel(to: b, label: [], now: net.now)!
        net.settle()
        for i in 0..<40 {
            net.nodes[0].manager.send([UInt8(i)], on: id, to: b, now: net.now)
            net.settle()
        }
        #expect(net.nodes[0].events.contains { if case .rekeyed = $0 { true } else { false } })
        #expect(net.messages(1).count == 40)
    }

    @Test func packetsInFlightDuringARekeyStillDecrypt() {
        var c = SessionTestNetwork.fastConfiguration
        c.rekeyAfterMessages = 6
        var net = Self.pair(c)
        let b = net.peer(1)
        let id = net.nodes[0].manager.openChannel(to: b, label: [], now: net.now)!
        net.settle()
        // Hold back a packet sealed with the old keys, rekey, then deliver it.
        for i in 0..<4 { net.nodes[0].manager.send([UInt8(i)], on: id, to: b, now: net.now) }
        let out = net.nodes[0].manager.takeDatagrams()
        let held = out.filter { $0.payload[1] == 6 }
        for d in out where d.payload[1] != 6 { net.inject(d.payload, to: 1, from: net.nodes[0].endpoint) }
        for i in 4..<8 {
            net.nodes[0].manager.send([UInt8(i)], on: id, to: b, now: net.now)
            net.settle()
        }
        #expect(net.nodes[0].events.contains { if case .rekeyed = $0 { true } else { false } })
        for d in held { net.inject(d.payload, to: 1, from: net.nodes[0].endpoint) }
        #expect(Set(net.messages(1)) == Set((0..<8).map { [UInt8($0)] }))
    }

    @Test func aDeadPeerIsReportedWithinTheTimeout() {
        var net = Self.pair()
        let b = net.peer(1)
        net.advance(.seconds(2))
        #expect(net.lost(0).isEmpty)
        net.nodes[1].isUp = false
        let down = net.now
        net.advance(.seconds(4))
        let lost = net.lost(0)
        #expect(lost.count == 1 && lost[0].0 == b && lost[0].1 == .timeout)
        #expect(!net.nodes[0].manager.isKnown(b))
        _ = down
    }

    @Test func aRestartedPeerReplacesItsOldSession() {
        var net = Self.pair()
        let (a, b) = (net.peer(0), net.peer(1))
        let old = net.nodes[0].manager.sessionID(with: b)
        net.restart(1, seed: 2)
        net.nodes[1].manager.connect(to: a, at: net.nodes[0].endpoint, now: net.now)
        net.settle()
        #expect(net.lost(0).map(\.1) == [.replaced])
        let new = net.nodes[0].manager.sessionID(with: b)
        #expect(new != nil && new != old)
        #expect(new == net.nodes[1].manager.sessionID(with: a))
    }

    @Test func handshakeRetransmitsWithGrowingBackoffThenGivesUp() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        net.nodes[1].isUp = false
        var sendTimes: [Timestamp] = []
        net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
        sendTimes.append(net.now)
        net.settle()
        for _ in 0..<1000 {
            net.now = net.now + .milliseconds(10)
            net.nodes[0].manager.tick(now: net.now)
            if !net.nodes[0].manager.takeDatagrams().isEmpty { sendTimes.append(net.now) }
            net.nodes[0].events += net.nodes[0].manager.takeEvents()
        }
        let c = SessionTestNetwork.fastConfiguration
        #expect(sendTimes.count == c.handshakeAttempts)
        let gaps = zip(sendTimes.dropFirst(), sendTimes).map { ($0 - $1).seconds }
        #expect(gaps[0] >= 0.1 && gaps[0] < 0.14)
        #expect(gaps[1] >= 0.2 && gaps[1] < 0.27)
        #expect(gaps.last! >= 0.8 && gaps.last! < 1.02)
        #expect(net.nodes[0].events.contains(.handshakeFailed(net.peer(1), net.nodes[1].endpoint)))
        #expect(!net.nodes[0].manager.isKnown(net.peer(1)))
    }

    /// Node 0 dials node 1 and none of its initiations arrives for `duration`: the network
    /// (now delivering again) and the initiations it held, for a test to deliver late.
    static func dialWithInitiationsHeld(for duration: Duration) -> (SessionTestNetwork, [[UInt8]]) {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        var initiations: [[UInt8]] = []
        net.filter = { from, d in
            guard from == 0, d.payload[1] == PacketType.ikInitiation.rawValue else { return true }
            initiations.append(d.payload)
            return false
        }
        net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
        net.advance(duration)
        net.filter = { _, _ in true }
        return (net, initiations)
    }

    /// The first initiation waits (as for a neighbour's link-layer address) while the dial
    /// retransmits; its response, arriving after the retransmissions, still completes it.
    @Test func aLateResponseToAnEarlierInitiationCompletesTheDial() {
        var (net, initiations) = Self.dialWithInitiationsHeld(for: .milliseconds(350))
        #expect(initiations.count == 3)
        net.inject(initiations[0], to: 1, from: net.nodes[0].endpoint)
        #expect(net.established(0) == [net.peer(1)])
        #expect(net.established(1) == [net.peer(0)])
        #expect(net.nodes[0].manager.drops.total == 0)
        // The dial is over: a response to another of its initiations finds nothing.
        net.inject(initiations[1], to: 1, from: net.nodes[0].endpoint)
        #expect(net.nodes[0].manager.drops[.unknownIndex] == 1)
        #expect(net.nodes[0].manager.sessionID(with: net.peer(1)) == net.nodes[1].manager.sessionID(with: net.peer(0)))
    }

    /// Only the last `answerable` initiations of a dial accept a response, so a dial holds a
    /// bounded number of handshake states and indices.
    @Test func onlyTheLastFewInitiationsStayAnswerable() {
        var (net, initiations) = Self.dialWithInitiationsHeld(for: .seconds(3))
        let answerable = PeerSession.OutgoingHandshake.answerable
        #expect(initiations.count > answerable + 1)
        #expect(net.nodes[0].manager.indexTable.count == answerable)
        // One too old, then one still answerable.
        net.inject(initiations[initiations.count - answerable - 1], to: 1, from: net.nodes[0].endpoint)
        #expect(net.established(0).isEmpty)
        #expect(net.nodes[0].manager.drops[.unknownIndex] == 1)
        net.nodes[1].manager = try! SessionManager(identity: SessionTestNetwork.identity(2),
                                                   configuration: SessionTestNetwork.fastConfiguration)
        net.inject(initiations[initiations.count - answerable], to: 1, from: net.nodes[0].endpoint)
        #expect(net.established(0) == [net.peer(1)])
        #expect(net.nodes[0].manager.indexTable.count == 1)
    }

    /// Both dial; every initiation of the lower peer is lost. Each initiation of the higher
    /// peer that reaches the lower one makes it send a fresh initiation at once (not after
    /// its backoff), unless its last one is under a quarter of the first retransmission old;
    /// once one gets through, both hold the lower peer's session.
    @Test func theLowerSideOfASimultaneousDialAnswersTheOthersInitiationsWithItsOwn() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        let (lower, higher) = net.peer(0) < net.peer(1) ? (0, 1) : (1, 0)
        var sent: [(from: Int, at: Timestamp)] = []
        var blockLower = true
        // The filter cannot read `net.now` (`net` is busy delivering): the test keeps time.
        var clock = net.now
        net.filter = { from, d in
            guard d.payload[1] == PacketType.ikInitiation.rawValue else { return true }
            sent.append((from, clock))
            return !(blockLower && from == lower)
        }
        net.nodes[lower].manager.connect(to: net.peer(higher), at: net.nodes[higher].endpoint, now: net.now)
        net.settle()
        net.now = net.now + .milliseconds(10)
        clock = net.now
        net.nodes[higher].manager.connect(to: net.peer(lower), at: net.nodes[lower].endpoint, now: net.now)
        net.settle()
        for _ in 0..<2000 {
            net.now = net.now + .milliseconds(1)
            clock = net.now
            for i in 0..<2 { net.nodes[i].manager.tick(now: net.now) }
            net.settle()
        }
        let gap = SessionTestNetwork.fastConfiguration.handshakeRetransmitBase / 4
        let byHigher = sent.filter { $0.from == higher }.map(\.at)
        let byLower = sent.filter { $0.from == lower }.map(\.at)
        #expect(byHigher.count >= 4)
        #expect(net.nodes[lower].manager.drops[.simultaneousDial] == byHigher.count)
        for t in byHigher {
            let before = byLower.last { $0 < t }!
            #expect(byLower.contains(t) == (t - before >= gap), "higher's initiation at \(t)")
        }
        // The first one (10 ms after the lower's own) was too soon; later ones brought some.
        #expect(!byLower.contains(byHigher[0]))
        #expect(byHigher.dropFirst().filter { byLower.contains($0) }.count >= 2)
        blockLower = false
        net.advance(.seconds(2))
        #expect(net.established(0).count == 1 && net.established(1).count == 1)
        #expect(net.nodes[0].manager.sessionID(with: net.peer(1)) == net.nodes[1].manager.sessionID(with: net.peer(0)))
    }

    /// A responder sends its answer again until confirmed only where it dials the peer
    /// itself: an initiation from anywhere else (here a recorded one replayed from a forged
    /// source) gets exactly one response, smaller than itself — no reflection amplified.
    @Test func answersAreResentOnlyToWhereWeDialThePeer() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        var initiation: [UInt8] = []
        net.filter = { _, d in
            if d.payload[1] == PacketType.ikInitiation.rawValue && initiation.isEmpty { initiation = d.payload }
            return false
        }
        net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
        net.settle()
        let victim = Endpoint.v4(10, 9, 9, 9, port: 53)
        net.nodes[1].manager.receive(Datagram(remote: victim, payload: initiation), now: net.now)
        let answer = net.nodes[1].manager.takeDatagrams()
        #expect(answer.count == 1 && answer[0].remote == victim && answer[0].payload.count < initiation.count)
        var reflected: [Datagram] = []
        for _ in 0..<1000 {
            net.now = net.now + .milliseconds(10)
            net.nodes[1].manager.tick(now: net.now)
            reflected += net.nodes[1].manager.takeDatagrams()
        }
        #expect(reflected.isEmpty)

        // The same, arriving at a responder that dials the initiator there: resent until
        // confirmed, on the handshake schedule, at most `handshakeAttempts` in all.
        var net2 = SessionTestNetwork()
        net2.addNode(seed: 1)
        net2.addNode(seed: 2)
        net2.filter = { _, _ in false }
        net2.nodes[0].manager.connect(to: net2.peer(1), at: net2.nodes[1].endpoint, now: net2.now)
        let first = net2.nodes[0].manager.takeDatagrams()[0]
        net2.nodes[1].manager.receive(Datagram(remote: net2.nodes[0].endpoint, payload: first.payload), now: net2.now)
        #expect(net2.nodes[1].manager.takeDatagrams().count == 1)
        net2.nodes[1].manager.connect(to: net2.peer(0), at: net2.nodes[0].endpoint, now: net2.now)
        var resent = 0
        for _ in 0..<1000 {
            net2.now = net2.now + .milliseconds(10)
            net2.nodes[1].manager.tick(now: net2.now)
            resent += net2.nodes[1].manager.takeDatagrams().filter { $0.payload[1] == PacketType.ikResponse.rawValue }.count
        }
        #expect(resent == SessionTestNetwork.fastConfiguration.handshakeAttempts - 1)
    }

    /// Both peers dial each other at about the same moment (default timers) over a link that
    /// loses 20 % of datagrams each way, 400 times: the time until both hold the session.
    /// Before a dial kept its earlier initiations answerable, the lower side answered the
    /// other's initiations with its own, responses were sent again until confirmed and the
    /// initiator confirmed again until it heard back, the slowest pairs took seconds.
    @Test func simultaneousDialsUnderTwentyPercentLossConnectSoon() {
        var rng = SeededRandom(seed: 20)
        var times: [Double] = []
        for round in 0..<400 {
            var net = SessionTestNetwork()
            net.addNode(seed: UInt8(round % 250 + 1), configuration: SessionConfiguration())
            net.addNode(seed: UInt8((round + 100) % 250 + 1), configuration: SessionConfiguration())
            net.filter = { _, _ in rng.next() % 100 >= 20 }
            let start = net.now
            let offset = Duration.milliseconds(Int64(rng.next() % 50))
            net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
            net.advance(offset, step: .milliseconds(5))
            net.nodes[1].manager.connect(to: net.peer(0), at: net.nodes[0].endpoint, now: net.now)
            while !(net.nodes[0].manager.isEstablished(with: net.peer(1)) && net.nodes[1].manager.isEstablished(with: net.peer(0))),
                  net.now - start < .seconds(20) {
                net.advance(.milliseconds(5), step: .milliseconds(5))
            }
            times.append((net.now - start).seconds)
        }
        times.sort()
        let p50 = times[times.count / 2], p99 = times[times.count * 99 / 100], worst = times.last!
        print("simultaneous dial, 20 % loss each way, 400 pairs: median \(p50) s, p99 \(p99) s, worst \(worst) s; over 1 s: \(times.filter { $0 > 1 }.count), over 2 s: \(times.filter { $0 > 2 }.count)")
        // Seeded: the same losses every run, but any change in how the managers draw random
        // numbers (jitter) reshuffles the pairs, hence the margin. Before the fixes: p99
        // 7.2 s, worst 8.8 s; after: p99 1.8–2.1 s, worst 2.6–3.2 s.
        #expect(p99 < 3 && worst < 5, "median \(p50) s, p99 \(p99) s, worst \(worst) s")
    }

    @Test func aLossyLinkStillConnects() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        var rng = SeededRandom(seed: 7)
        net.filter = { _, _ in rng.next() % 100 >= 40 }
        net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
        net.advance(.seconds(3))
        #expect(net.nodes[0].manager.isEstablished(with: net.peer(1)))
        #expect(net.nodes[1].manager.isEstablished(with: net.peer(0)))
    }

    @Test func theFirewallRefusesAPeer() {
        var net = SessionTestNetwork()
        net.addNode(seed: 1)
        net.addNode(seed: 2)
        let a = net.peer(0)
        net.nodes[1].manager.firewall = { $0 == a }
        net.nodes[0].manager.connect(to: net.peer(1), at: net.nodes[1].endpoint, now: net.now)
        net.settle()
        #expect(net.established(0).isEmpty && net.established(1).isEmpty)
        #expect(net.nodes[1].manager.drops[.refused] == 1)
        // Nor over XX.
        net.nodes[0].manager.connect(to: net.nodes[1].endpoint, now: net.now)
        net.settle()
        #expect(net.established(0).isEmpty && net.established(1).isEmpty)
        #expect(net.nodes[1].manager.drops[.refused] == 2)
    }

    @Test func theSessionTableIsBounded() {
        var c = SessionTestNetwork.fastConfiguration
        c.maxSessions = 2
        var net = SessionTestNetwork()
        net.addNode(seed: 1, configuration: c)
        for seed: UInt8 in 2...4 { net.addNode(seed: seed) }
        for i in 1...3 { net.nodes[i].manager.connect(to: net.peer(0), at: net.nodes[0].endpoint, now: net.now) }
        net.settle()
        #expect(net.established(0).count == 2)
        #expect(net.nodes[0].manager.drops[.refused] == 1)
    }

    @Test func closeIsExplicitOnBothSides() {
        var net = Self.pair()
        let (a, b) = (net.peer(0), net.peer(1))
        net.nodes[0].manager.close(b, now: net.now)
        net.settle()
        #expect(net.lost(0).map(\.1) == [.shutdown])
        #expect(net.lost(1).map(\.1) == [.closedByRemote])
        #expect(!net.nodes[1].manager.isKnown(a))
    }

    @Test func keepalivesHoldAnIdleSessionOpen() {
        var net = Self.pair()
        net.advance(.seconds(10))
        #expect(net.lost(0).isEmpty && net.lost(1).isEmpty)
        #expect(net.nodes[0].manager.isEstablished(with: net.peer(1)))
        let deadline = net.nodes[0].manager.nextDeadline
        #expect(deadline != nil && deadline! <= net.now + SessionTestNetwork.fastConfiguration.keepaliveInterval)
    }

    /// Both peers dial each other at the same instant, 50 times with different keys and
    /// delivery orders: exactly one session survives and both name the same one.
    @Test func simultaneousDialKeepsOneSession() {
        var rng = SeededRandom(seed: 2024)
        for round in 0..<50 {
            var net = SessionTestNetwork()
            net.addNode(seed: UInt8(2 * round + 1))
            net.addNode(seed: UInt8(2 * round + 2))
            let (a, b) = (net.peer(0), net.peer(1))
            // Vary who is "first" on the wire and drop a few early packets.
            let first = Int(rng.next() % 2)
            net.nodes[first].manager.connect(to: net.peer(1 - first), at: net.nodes[1 - first].endpoint, now: net.now)
            net.nodes[1 - first].manager.connect(to: net.peer(first), at: net.nodes[first].endpoint, now: net.now)
            var early = Int(rng.next() % 3)
            net.filter = { _, _ in
                if early > 0 && rng.next() % 2 == 0 { early -= 1; return false }
                return true
            }
            net.advance(.seconds(3))
            let sa = net.nodes[0].manager.sessionID(with: b)
            let sb = net.nodes[1].manager.sessionID(with: a)
            #expect(sa != nil, "round \(round)")
            #expect(sa == sb, "round \(round)")
            #expect(net.established(0).count == 1, "round \(round)")
            #expect(net.established(1).count == 1, "round \(round)")
            #expect(net.lost(0).isEmpty && net.lost(1).isEmpty, "round \(round)")
        }
    }
}
