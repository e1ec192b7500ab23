import NIOCore

/// LAN discovery as a sans-I/O state machine (DESIGN decision 6, PROTOCOL.md §6).
///
/// The flow:
/// 1. `join` with `lookup` multicasts a **query** carrying the beacons of the topic, our peer
///    id and our *reply port*; it is repeated a few times early on (`queryOffsets`) because
///    UDP loses datagrams, and `flushed` is emitted shortly after the third one.
///    `join` with `announce` multicasts an **announcement** at once.
/// 2. A node that announces one of the queried beacons **answers** by unicast to the
///    querier's source address and reply port, echoing the matching beacons: never more than
///    the query had, so the answer is never larger than the query.
/// 3. Every `announceInterval` (± `announceJitter`) each node multicasts an announcement of
///    all the topics it announces, so a node that missed the answers still finds its peers.
/// 4. Announcements and answers for topics we look up become **sightings**: the sender's peer
///    id, the topic, and its session endpoint — the datagram's source address with the port
///    the message carries.
///
/// Nothing here is authenticated: a sighting is only a hint where to dial. Noise proves the
/// peer id and the capability proves the topic. What this layer must guarantee is that a
/// stranger cannot turn it into an amplifier: per-source and global token buckets, answers no
/// larger than queries, answers only to queries, and sightings only from unsolicited
/// datagrams at a bounded rate.
public struct LANDiscoveryMachine: Sendable {
    /// Which socket a datagram arrived on: the shared multicast port, or our own unicast port.
    public enum Socket: Sendable, Equatable {
        case multicast
        case unicast
    }

    /// What the driver must do.
    public enum Action: Sendable, Equatable {
        /// Send to the discovery group on every configured interface.
        case multicast([UInt8])
        /// Send from the unicast socket to one endpoint.
        case unicast([UInt8], to: Endpoint)
        case sighting(PeerSighting)
        /// The first lookup round for the topic is over.
        case flushed(Topic)
    }

    /// The two clocks the machine needs, both read by the caller: the monotonic one for
    /// deadlines and rate limits, the wall clock (Unix seconds) for beacon epochs only.
    public struct Time: Sendable, Equatable {
        public var monotonic: NIODeadline
        public var unixSeconds: UInt64

        public init(monotonic: NIODeadline, unixSeconds: UInt64) {
            self.monotonic = monotonic
            self.unixSeconds = unixSeconds
        }
    }

    public struct Configuration: Sendable {
        /// Period of announcements. 5 s: a peer that lost every answer (or returns after a
        /// crash without re-querying) is seen again within seconds, for one ~100-byte
        /// datagram per host per period.
        public var announceInterval: TimeAmount = .seconds(5)
        /// Each period is drawn from interval × [1 − j, 1 + j], so hosts that started together
        /// drift apart instead of announcing in lockstep.
        public var announceJitter: Double = 0.2
        /// When the query of a join is sent, relative to the join. With 20 % loss each way a
        /// query-and-answer pair fails 36 % of the time: three tries in the first second
        /// leave 4.7 %, five tries within 3 s leave 0.6 %, before the next announcement.
        public var queryOffsets: [TimeAmount] = [.zero, .milliseconds(150), .milliseconds(600), .milliseconds(1500), .seconds(3)]
        /// `flushed` follows this many queries (the later ones are a safety net for loss and
        /// do not hold up the application's first round).
        public var flushAfterQueries: Int = 3
        /// Random extra delay of each repetition (not of the first query), up to this.
        public var queryJitter: TimeAmount = .milliseconds(50)
        /// How long after the last query of a join `flushed` is reported: answers on a LAN
        /// arrive within a millisecond or two; 200 ms leaves room for a loaded host.
        public var flushDelay: TimeAmount = .milliseconds(200)
        /// Answers are accepted only this long after we sent a query.
        public var answerWindow: TimeAmount = .seconds(3)
        /// Datagrams accepted per source address: 10/s with bursts of 20 covers a host with a
        /// handful of processes that all join at once.
        public var perSourceRate: Double = 10
        public var perSourceBurst: Double = 20
        /// Answers sent in total, whoever asks: the ceiling on what a query flood makes us send.
        public var answerRate: Double = 50
        public var answerBurst: Double = 100
        /// Sources tracked individually; beyond that, new sources share one bucket.
        public var maxTrackedSources: Int = 1024

        public init() {}
    }

    /// Every datagram is counted once under what happened to it, plus what we sent.
    public struct Counters: Sendable, Equatable {
        public var received = 0
        public var badMagic = 0
        public var unsupportedVersion = 0
        public var malformed = 0
        /// A query or announcement on the unicast port, or an answer on the multicast port.
        public var wrongSocket = 0
        public var own = 0
        public var rateLimited = 0
        public var unsolicitedAnswers = 0
        public var queriesAnswered = 0
        public var queriesSent = 0
        public var announcementsSent = 0
        public var answersSent = 0
        public var sightings = 0

        public init() {}
    }

    public let peer: PeerID
    /// Where peers that see us should dial: our session transport's port.
    public let sessionPort: UInt16
    /// Where answers to our queries must go: our discovery unicast socket's port.
    public let replyPort: UInt16
    public let configuration: Configuration
    public private(set) var counters = Counters()

    private var topics: [Topic: TopicState] = [:]
    private var nextAnnouncement: NIODeadline?
    private var lastQuerySent: NIODeadline?
    private var sources: [Endpoint.Address: TokenBucket] = [:]
    private var overflowSource: TokenBucket
    private var answerBudget: TokenBucket
    /// Beacons by topic for the epochs accepted at `indexedEpoch`; rebuilt when the epoch or
    /// the topics change.
    private var indexedEpoch: BeaconEpoch?
    private var lookupIndex: [Beacon: Topic] = [:]
    private var announceIndex: [Beacon: Topic] = [:]

    private struct TopicState: Sendable {
        var announce: Bool
        var lookup: Bool
        /// Remaining query times of the join's burst, earliest first.
        var pendingQueries: [NIODeadline]
        /// Queries sent in the current lookup round.
        var queriesSent: Int
        var flushAt: NIODeadline?
        /// A lookup round whose `flushed` has not been reported yet.
        var roundOpen: Bool
    }

    public init(peer: PeerID, sessionPort: UInt16, replyPort: UInt16, configuration: Configuration = Configuration()) {
        precondition(!configuration.queryOffsets.isEmpty, "at least one query per join")
        self.peer = peer
        self.sessionPort = sessionPort
        self.replyPort = replyPort
        self.configuration = configuration
        overflowSource = TokenBucket(perSecond: configuration.perSourceRate, burst: configuration.perSourceBurst)
        answerBudget = TokenBucket(perSecond: configuration.answerRate, burst: configuration.answerBurst)
    }

    /// The earliest time `tick` has something to do; nil when idle.
    public var nextDeadline: NIODeadline? {
        var earliest = nextAnnouncement
        for state in topics.values {
            for candidate in [state.pendingQueries.first, state.flushAt].compactMap({ $0 }) {
                if earliest == nil || candidate < earliest! { earliest = candidate }
            }
        }
        return earliest
    }

    /// The topics currently joined, with their flags.
    public var joined: [Topic: (announce: Bool, lookup: Bool)] {
        topics.mapValues { ($0.announce, $0.lookup) }
    }

    /// Starts announcing and/or looking up `topic`; joining again changes the flags, and a
    /// lookup newly switched on starts a fresh query burst.
    public mutating func join<R: RandomNumberGenerator>(
        _ topic: Topic, announce: Bool, lookup: Bool, at time: Time, rng: inout R
    ) -> [Action] {
        let now = time.monotonic
        let previous = topics[topic]
        var state = previous ?? TopicState(announce: false, lookup: false, pendingQueries: [], queriesSent: 0, flushAt: nil, roundOpen: false)
        let startsLookup = lookup && !(previous?.lookup ?? false)
        let startsAnnouncing = announce && !(previous?.announce ?? false)
        state.announce = announce
        state.lookup = lookup
        var actions: [Action] = []
        if startsLookup {
            state.pendingQueries = configuration.queryOffsets.enumerated().map { i, offset in
                now + offset + (i == 0 ? .zero : jitter(upTo: configuration.queryJitter, rng: &rng))
            }.sorted()
            state.queriesSent = 0
            state.flushAt = nil
            state.roundOpen = true
        } else if !lookup {
            // A lookup switched off mid-round ends the round: report it so no waiter hangs.
            if state.roundOpen { actions.append(.flushed(topic)) }
            state.pendingQueries = []
            state.flushAt = nil
            state.roundOpen = false
        }
        topics[topic] = state
        indexedEpoch = nil
        if !lookup && previous == nil { actions.append(.flushed(topic)) }
        if startsAnnouncing {
            let beacon = Beacon(topic: topic, epoch: BeaconEpoch(unixSeconds: time.unixSeconds))
            actions.append(.multicast(DiscoveryMessage(kind: .announcement, sender: peer, port: sessionPort, beacons: [beacon]).encoded()))
            counters.announcementsSent += 1
            if nextAnnouncement == nil { nextAnnouncement = now + announcePeriod(rng: &rng) }
        }
        if !topics.values.contains(where: \.announce) { nextAnnouncement = nil }
        return actions + tick(at: time, rng: &rng)
    }

    /// Stops announcing and looking up `topic`. A pending `flushed` is reported now, so no
    /// waiter hangs on a topic that is gone.
    public mutating func leave(_ topic: Topic) -> [Action] {
        guard let state = topics.removeValue(forKey: topic) else { return [] }
        indexedEpoch = nil
        if !topics.values.contains(where: \.announce) { nextAnnouncement = nil }
        return state.roundOpen ? [.flushed(topic)] : []
    }

    /// Runs what is due at `time`: query repetitions, flushes, periodic announcements.
    public mutating func tick<R: RandomNumberGenerator>(at time: Time, rng: inout R) -> [Action] {
        let now = time.monotonic
        var actions: [Action] = []
        var queryBeacons: [Beacon] = []
        let epoch = BeaconEpoch(unixSeconds: time.unixSeconds)
        for topic in topics.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            guard var state = topics[topic] else { continue }
            if let due = state.pendingQueries.first, due <= now {
                state.pendingQueries.removeAll { $0 <= now }
                queryBeacons.append(Beacon(topic: topic, epoch: epoch))
                state.queriesSent += 1
                if state.roundOpen, state.flushAt == nil,
                   state.queriesSent >= configuration.flushAfterQueries || state.pendingQueries.isEmpty {
                    state.flushAt = now + configuration.flushDelay
                }
            }
            if let flushAt = state.flushAt, flushAt <= now {
                state.flushAt = nil
                state.roundOpen = false
                actions.append(.flushed(topic))
            }
            topics[topic] = state
        }
        for chunk in chunks(queryBeacons) {
            actions.append(.multicast(DiscoveryMessage(kind: .query, sender: peer, port: replyPort, beacons: chunk).encoded()))
            counters.queriesSent += 1
            lastQuerySent = now
        }
        if let due = nextAnnouncement, due <= now {
            let beacons = topics.filter { $0.value.announce }.keys
                .sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
                .map { Beacon(topic: $0, epoch: epoch) }
            for chunk in chunks(beacons) {
                actions.append(.multicast(DiscoveryMessage(kind: .announcement, sender: peer, port: sessionPort, beacons: chunk).encoded()))
                counters.announcementsSent += 1
            }
            nextAnnouncement = beacons.isEmpty ? nil : now + announcePeriod(rng: &rng)
        }
        return actions
    }

    /// Everything joined, at once: one query for the topics looked up and one announcement
    /// of those announced, the schedule left as it is. For a socket that opens after the
    /// topics were joined (its interface got its address late): the peers on that link learn
    /// of us, and answer us, now rather than at their next announcement.
    public mutating func restate(at time: Time) -> [Action] {
        let epoch = BeaconEpoch(unixSeconds: time.unixSeconds)
        let sorted = topics.keys.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        var actions: [Action] = []
        for chunk in chunks(sorted.filter { topics[$0]?.lookup == true }.map { Beacon(topic: $0, epoch: epoch) }) {
            actions.append(.multicast(DiscoveryMessage(kind: .query, sender: peer, port: replyPort, beacons: chunk).encoded()))
            counters.queriesSent += 1
            lastQuerySent = time.monotonic
        }
        for chunk in chunks(sorted.filter { topics[$0]?.announce == true }.map { Beacon(topic: $0, epoch: epoch) }) {
            actions.append(.multicast(DiscoveryMessage(kind: .announcement, sender: peer, port: sessionPort, beacons: chunk).encoded()))
            counters.announcementsSent += 1
        }
        return actions
    }

    /// Handles one datagram that arrived on `socket` from `source`.
    public mutating func receive(_ payload: [UInt8], from source: Endpoint, on socket: Socket, at time: Time) -> [Action] {
        counters.received += 1
        let message: DiscoveryMessage
        switch DiscoveryMessage.decode(payload) {
        case let .success(decoded): message = decoded
        case .failure(.badMagic): counters.badMagic += 1; return []
        case .failure(.unsupportedVersion): counters.unsupportedVersion += 1; return []
        case .failure(.malformed): counters.malformed += 1; return []
        }
        guard message.sender != peer else { counters.own += 1; return [] }
        switch (message.kind, socket) {
        case (.query, .multicast), (.announcement, .multicast), (.answer, .unicast): break
        case (.query, .unicast), (.announcement, .unicast), (.answer, .multicast):
            counters.wrongSocket += 1
            return []
        }
        let now = time.monotonic
        if message.kind == .answer {
            guard let sent = lastQuerySent, now - sent <= configuration.answerWindow else {
                counters.unsolicitedAnswers += 1
                return []
            }
        }
        guard takeSourceToken(source.address, at: now) else { counters.rateLimited += 1; return [] }
        reindexIfNeeded(epoch: BeaconEpoch(unixSeconds: time.unixSeconds))

        switch message.kind {
        case .query:
            return answer(message, querySize: payload.count, from: source, at: now)
        case .announcement, .answer:
            var actions: [Action] = []
            var seen = Set<Topic>()
            for beacon in message.beacons {
                guard let topic = lookupIndex[beacon], seen.insert(topic).inserted else { continue }
                // A link-local IPv6 source keeps its interface: without it the address is not
                // one a session could dial.
                let endpoint = Endpoint(address: source.address, port: message.port, scopeID: source.scopeID)
                actions.append(.sighting(PeerSighting(peer: message.sender, topic: topic, endpoint: endpoint)))
                counters.sightings += 1
            }
            return actions
        }
    }

    private mutating func answer(_ query: DiscoveryMessage, querySize: Int, from source: Endpoint, at now: NIODeadline) -> [Action] {
        var matched: [Beacon] = []
        for beacon in query.beacons where announceIndex[beacon] != nil && !matched.contains(beacon) {
            matched.append(beacon)
        }
        guard !matched.isEmpty else { return [] }
        guard answerBudget.take(at: now) else { counters.rateLimited += 1; return [] }
        let bytes = DiscoveryMessage(kind: .answer, sender: peer, port: sessionPort, beacons: matched).encoded()
        // Same header, a subset of the query's beacons: this holds by construction, and is
        // what keeps discovery from amplifying a spoofed query.
        precondition(bytes.count <= querySize, "an answer is never larger than its query")
        counters.queriesAnswered += 1
        counters.answersSent += 1
        return [.unicast(bytes, to: Endpoint(address: source.address, port: query.port, scopeID: source.scopeID))]
    }

    private mutating func takeSourceToken(_ address: Endpoint.Address, at now: NIODeadline) -> Bool {
        if sources[address] == nil, sources.count >= configuration.maxTrackedSources {
            sources = sources.filter { !$0.value.isIdle(at: now) }
        }
        if sources[address] == nil, sources.count >= configuration.maxTrackedSources {
            return overflowSource.take(at: now)
        }
        var bucket = sources[address] ?? TokenBucket(perSecond: configuration.perSourceRate, burst: configuration.perSourceBurst)
        let ok = bucket.take(at: now)
        sources[address] = bucket
        return ok
    }

    private mutating func reindexIfNeeded(epoch: BeaconEpoch) {
        guard indexedEpoch != epoch else { return }
        lookupIndex = [:]
        announceIndex = [:]
        for (topic, state) in topics {
            for beacon in Beacon.acceptable(topic: topic, at: epoch) {
                if state.lookup { lookupIndex[beacon] = topic }
                if state.announce { announceIndex[beacon] = topic }
            }
        }
        indexedEpoch = epoch
    }

    private func chunks(_ beacons: [Beacon]) -> [[Beacon]] {
        stride(from: 0, to: beacons.count, by: DiscoveryMessage.maxBeacons).map {
            Array(beacons[$0..<min($0 + DiscoveryMessage.maxBeacons, beacons.count)])
        }
    }

    private func announcePeriod<R: RandomNumberGenerator>(rng: inout R) -> TimeAmount {
        let base = Double(configuration.announceInterval.nanoseconds)
        let spread = base * configuration.announceJitter
        let offset = spread > 0 ? Double.random(in: -spread...spread, using: &rng) : 0
        return .nanoseconds(Int64(max(1, base + offset)))
    }

    private func jitter<R: RandomNumberGenerator>(upTo limit: TimeAmount, rng: inout R) -> TimeAmount {
        limit.nanoseconds > 0 ? .nanoseconds(Int64.random(in: 0...limit.nanoseconds, using: &rng)) : .zero
    }
}
