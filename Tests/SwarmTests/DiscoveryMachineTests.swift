import NIOCore
import Sodium
import Testing
@testable import Swarm

/// Several `LANDiscoveryMachine`s on one simulated LAN: multicast reaches every other node,
/// unicast reaches the node with that address and reply port; optional loss.
struct SimulatedLAN {
    struct Node {
        var machine: LANDiscoveryMachine
        var address: Endpoint.Address
        var sightings: [PeerSighting] = []
        var flushed: [Topic] = []
        var sent: [[UInt8]] = []
    }

    var nodes: [Node] = []
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var unixSeconds: UInt64 = 1_764_000_000
    var rng = SeededRandom(seed: 1)
    var lossPercent = 0
    var time: LANDiscoveryMachine.Time { .init(monotonic: now, unixSeconds: unixSeconds) }

    @discardableResult
    mutating func add(configuration: LANDiscoveryMachine.Configuration = .init()) -> Int {
        let i = nodes.count
        let peer = PeerID(Ed25519.KeyPair.generate().publicKey)
        let machine = LANDiscoveryMachine(peer: peer, sessionPort: UInt16(40_000 + i), replyPort: UInt16(50_000 + i),
                                          configuration: configuration)
        nodes.append(Node(machine: machine, address: .v4(10, 77, 0, UInt8(1 + i))))
        return i
    }

    mutating func join(_ i: Int, _ topic: Topic, announce: Bool = true, lookup: Bool = true) {
        let actions = nodes[i].machine.join(topic, announce: announce, lookup: lookup, at: time, rng: &rng)
        perform(actions, by: i)
    }

    mutating func perform(_ actions: [LANDiscoveryMachine.Action], by i: Int) {
        var queue: [(Int, LANDiscoveryMachine.Action)] = actions.map { (i, $0) }
        while !queue.isEmpty {
            let (from, action) = queue.removeFirst()
            switch action {
            case let .sighting(s): nodes[from].sightings.append(s)
            case let .flushed(t): nodes[from].flushed.append(t)
            case let .multicast(bytes):
                nodes[from].sent.append(bytes)
                for j in nodes.indices where j != from && !lost() {
                    let source = Endpoint(address: nodes[from].address, port: 24771)
                    queue += nodes[j].machine.receive(bytes, from: source, on: .multicast, at: time).map { (j, $0) }
                }
            case let .unicast(bytes, to):
                nodes[from].sent.append(bytes)
                if lost() { continue }
                for j in nodes.indices where nodes[j].address == to.address && nodes[j].machine.replyPort == to.port {
                    let source = Endpoint(address: nodes[from].address, port: UInt16(50_000 + from))
                    queue += nodes[j].machine.receive(bytes, from: source, on: .unicast, at: time).map { (j, $0) }
                }
            }
        }
    }

    mutating func lost() -> Bool { lossPercent > 0 && Int.random(in: 0..<100, using: &rng) < lossPercent }

    /// Advances to each node's next deadline in turn until `until`.
    mutating func run(for duration: TimeAmount) {
        let end = now + duration
        while true {
            let next = nodes.compactMap(\.machine.nextDeadline).min()
            guard let next, next <= end else { break }
            now = max(now, next)
            for i in nodes.indices {
                if let d = nodes[i].machine.nextDeadline, d <= now {
                    perform(nodes[i].machine.tick(at: time, rng: &rng), by: i)
                }
            }
        }
        now = end
    }

    func saw(_ i: Int, _ j: Int, _ topic: Topic) -> Bool {
        nodes[i].sightings.contains {
            $0.peer == nodes[j].machine.peer && $0.topic == topic
                && $0.endpoint == Endpoint(address: nodes[j].address, port: nodes[j].machine.sessionPort)
        }
    }
}

@Suite("LAN discovery machine (in memory)")
struct DiscoveryMachineTests {
    let topic = Topic(bytes: [UInt8](repeating: 0x11, count: 32))!
    let other = Topic(bytes: [UInt8](repeating: 0x22, count: 32))!

    @Test func queryOnJoinIsAnsweredByUnicastWithTheSessionEndpoint() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic)
        lan.join(1, topic)
        // The second join's first query is answered at once; its announcement reaches node 0.
        #expect(lan.saw(1, 0, topic))
        #expect(lan.saw(0, 1, topic))
        #expect(lan.nodes[0].machine.counters.answersSent == 1)
    }

    /// A socket that opens late (its interface got its address after the joins) restates
    /// everything at once: one query for the topics looked up and one announcement of those
    /// announced, the schedule unchanged; the answer to that query is accepted, and the peer
    /// sees us from the announcement, long before its own next announcement.
    @Test func restateQueriesAndAnnouncesEverythingJoinedAtOnce() throws {
        var lan = SimulatedLAN()
        var slow = LANDiscoveryMachine.Configuration()
        slow.announceInterval = .seconds(60)
        lan.add(); lan.add(configuration: slow)
        lan.join(1, topic)
        lan.run(for: .seconds(4))
        // Node 0 joins while its only socket waits for an address: nothing it sends arrives.
        _ = lan.nodes[0].machine.join(topic, announce: true, lookup: true, at: lan.time, rng: &lan.rng)
        _ = lan.nodes[0].machine.join(other, announce: false, lookup: true, at: lan.time, rng: &lan.rng)
        lan.now = lan.now + .milliseconds(100)
        let deadline = lan.nodes[0].machine.nextDeadline
        let sent = lan.nodes[0].machine.counters
        let actions = lan.nodes[0].machine.restate(at: lan.time)
        #expect(lan.nodes[0].machine.nextDeadline == deadline, "the schedule is left as it is")
        let messages = try actions.map { action -> DiscoveryMessage in
            guard case let .multicast(bytes) = action else { throw DiscoveryMessage.DecodeFailure.malformed }
            return try DiscoveryMessage.decode(bytes).get()
        }
        #expect(messages.map(\.kind) == [.query, .announcement])
        #expect(messages.first?.beacons.count == 2 && messages.last?.beacons.count == 1)
        #expect(lan.nodes[0].machine.counters.queriesSent == sent.queriesSent + 1)
        #expect(lan.nodes[0].machine.counters.announcementsSent == sent.announcementsSent + 1)
        lan.perform(actions, by: 0)
        #expect(lan.saw(0, 1, topic), "node 1's answer to the restated query is taken")
        #expect(lan.saw(1, 0, topic), "node 1 sees node 0 from the restated announcement")
    }

    @Test func lookupOnlyNodeFindsAnnounceOnlyNodeButIsNotSeen() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic, announce: true, lookup: false)
        lan.join(1, topic, announce: false, lookup: true)
        lan.run(for: .seconds(12))
        #expect(lan.saw(1, 0, topic))
        #expect(lan.nodes[0].sightings.isEmpty)
    }

    @Test func threeNodesAllFindEachOther() {
        var lan = SimulatedLAN()
        for _ in 0..<3 { lan.add() }
        for i in 0..<3 { lan.join(i, topic) }
        lan.run(for: .seconds(1))
        for i in 0..<3 { for j in 0..<3 where i != j { #expect(lan.saw(i, j, topic), "\(i) sees \(j)") } }
    }

    @Test func differentTopicsDoNotMeet() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic)
        lan.join(1, other)
        lan.run(for: .seconds(12))
        #expect(lan.nodes[0].sightings.isEmpty && lan.nodes[1].sightings.isEmpty)
        #expect(lan.nodes[0].machine.counters.answersSent == 0)
    }

    @Test func flushedAfterTheQueryBurstAndImmediatelyWithoutLookup() {
        var lan = SimulatedLAN()
        lan.add()
        lan.join(0, other, announce: true, lookup: false)
        #expect(lan.nodes[0].flushed == [other])
        lan.join(0, topic)
        #expect(lan.nodes[0].flushed == [other])
        lan.run(for: .milliseconds(700))
        #expect(lan.nodes[0].flushed == [other])
        lan.run(for: .milliseconds(200))
        #expect(lan.nodes[0].flushed == [other, topic])
        #expect(lan.nodes[0].machine.counters.queriesSent == 3)
    }

    @Test func laterQueriesFollowTheFlushAsASafetyNetForLoss() {
        var lan = SimulatedLAN()
        lan.add()
        lan.join(0, topic, announce: false, lookup: true)
        lan.run(for: .seconds(1))
        #expect(lan.nodes[0].flushed == [topic])
        #expect(lan.nodes[0].machine.counters.queriesSent == 3)
        lan.run(for: .seconds(3))
        #expect(lan.nodes[0].machine.counters.queriesSent == 5)
        #expect(lan.nodes[0].flushed == [topic], "flushed once per round")
        #expect(lan.nodes[0].machine.nextDeadline == nil, "lookup-only: idle after the round")
    }

    @Test func leaveDuringTheBurstReportsFlushedAndStopsTraffic() {
        var lan = SimulatedLAN()
        lan.add()
        lan.join(0, topic)
        let actions = lan.nodes[0].machine.leave(topic)
        #expect(actions == [.flushed(topic)])
        #expect(lan.nodes[0].machine.nextDeadline == nil)
        #expect(lan.nodes[0].machine.leave(topic).isEmpty)
    }

    @Test func announcementsRepeatWithJitterWithinBounds() {
        var lan = SimulatedLAN()
        lan.add()
        lan.join(0, topic, announce: true, lookup: false)
        var times: [NIODeadline] = []
        for _ in 0..<40 {
            let next = lan.nodes[0].machine.nextDeadline!
            times.append(next)
            lan.now = next
            let actions = lan.nodes[0].machine.tick(at: lan.time, rng: &lan.rng)
            #expect(actions.count == 1)
        }
        let gaps = zip(times.dropFirst(), times).map { Double(($0 - $1).nanoseconds) / 1e9 }
        #expect(gaps.allSatisfy { (4.0...6.0).contains($0) }, "gaps \(gaps)")
        #expect(Set(gaps.map { Int($0 * 1000) }).count > 30, "jitter varies the period")
        #expect(lan.nodes[0].machine.counters.announcementsSent == 41)
    }

    @Test func ownDatagramsAreFilteredByPeerID() {
        var lan = SimulatedLAN()
        lan.add()
        let actions = lan.nodes[0].machine.join(topic, announce: true, lookup: true, at: lan.time, rng: &lan.rng)
        for case let .multicast(bytes) in actions {
            // Multicast loops back to the sender on loopback: it must not see itself.
            #expect(lan.nodes[0].machine.receive(bytes, from: .v4(127, 0, 0, 1, port: 24771), on: .multicast, at: lan.time).isEmpty)
        }
        #expect(lan.nodes[0].machine.counters.own == 2)
        #expect(lan.nodes[0].machine.counters.answersSent == 0)
    }

    @Test func queryFloodFromOneSourceIsCutToItsBucket() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic, announce: true, lookup: false)
        let query = DiscoveryMessage(kind: .query, sender: lan.nodes[1].machine.peer, port: 50_001,
                                     beacons: [Beacon(topic: topic, epoch: BeaconEpoch(unixSeconds: lan.unixSeconds))]).encoded()
        var answers = 0
        for _ in 0..<1000 {
            answers += lan.nodes[0].machine.receive(query, from: .v4(10, 77, 0, 2, port: 24771), on: .multicast, at: lan.time).count
        }
        #expect(answers == 20)
        #expect(lan.nodes[0].machine.counters.rateLimited == 980)
        // One second later the bucket has refilled by the per-source rate.
        lan.now = lan.now + .seconds(1)
        for _ in 0..<100 {
            answers += lan.nodes[0].machine.receive(query, from: .v4(10, 77, 0, 2, port: 24771), on: .multicast, at: lan.time).count
        }
        #expect(answers == 30)
    }

    @Test func queryFloodFromManySourcesIsCutToTheGlobalBudget() {
        var lan = SimulatedLAN()
        lan.add()
        lan.join(0, topic, announce: true, lookup: false)
        let beacon = Beacon(topic: topic, epoch: BeaconEpoch(unixSeconds: lan.unixSeconds))
        var answers = 0
        for i in 0..<5000 {
            let sender = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: UInt8(i % 200 + 1), count: 32))).publicKey)
            let query = DiscoveryMessage(kind: .query, sender: sender, port: 9, beacons: [beacon]).encoded()
            let source = Endpoint.v4(10, UInt8(i >> 16), UInt8((i >> 8) & 0xff), UInt8(i & 0xff), port: 24771)
            answers += lan.nodes[0].machine.receive(query, from: source, on: .multicast, at: lan.time).count
        }
        #expect(answers == 100)
        // Ten seconds later the budget allows the answer rate again, not more.
        lan.now = lan.now + .seconds(10)
        let late = DiscoveryMessage(kind: .query, sender: PeerID(Ed25519.KeyPair.generate().publicKey), port: 9, beacons: [beacon]).encoded()
        #expect(lan.nodes[0].machine.receive(late, from: .v4(10, 99, 0, 1, port: 1), on: .multicast, at: lan.time).count == 1)
    }

    @Test func answerIsNeverLargerThanItsQuery() {
        // A node announcing 100 topics meets queries of every shape: its answers only echo
        // what was asked for, so they never outgrow the query.
        var lan = SimulatedLAN()
        lan.add()
        var config = LANDiscoveryMachine.Configuration()
        config.answerRate = 1e6; config.answerBurst = 1e6; config.perSourceRate = 1e6; config.perSourceBurst = 1e6
        var machine = LANDiscoveryMachine(peer: lan.nodes[0].machine.peer, sessionPort: 1, replyPort: 2, configuration: config)
        let topics = (0..<100).map { i in Topic(bytes: [UInt8](repeating: UInt8(i), count: 31) + [7])! }
        for t in topics { _ = machine.join(t, announce: true, lookup: false, at: lan.time, rng: &lan.rng) }
        let epoch = BeaconEpoch(unixSeconds: lan.unixSeconds)
        let asker = PeerID(Ed25519.KeyPair.generate().publicKey)
        var rng = SeededRandom(seed: 3)
        var largestRatio = 0.0
        for _ in 0..<300 {
            let n = Int.random(in: 1...64, using: &rng)
            let beacons = (0..<n).map { _ in
                Bool.random(using: &rng)
                    ? Beacon(topic: topics.randomElement(using: &rng)!, epoch: BeaconEpoch(index: epoch.index + UInt64.random(in: 0...2, using: &rng) - 1))
                    : Beacon(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            }
            let query = DiscoveryMessage(kind: .query, sender: asker, port: 9, beacons: beacons).encoded()
            for case let .unicast(answer, to) in machine.receive(query, from: .v4(10, 0, 0, 9, port: 5), on: .multicast, at: lan.time) {
                #expect(answer.count <= query.count)
                #expect(to == .v4(10, 0, 0, 9, port: 9))
                largestRatio = max(largestRatio, Double(answer.count) / Double(query.count))
            }
        }
        #expect(largestRatio <= 1.0)
        #expect(machine.counters.answersSent > 100)
    }

    @Test func garbageAndMisplacedDatagramsAreDroppedAndCounted() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic)
        var m = lan.nodes[0].machine
        let from = Endpoint.v4(10, 77, 0, 9, port: 1)
        let t = lan.time
        #expect(m.receive([], from: from, on: .multicast, at: t).isEmpty)
        #expect(m.receive(Array("hello world".utf8), from: from, on: .multicast, at: t).isEmpty)
        var v9 = DiscoveryMessage(kind: .announcement, sender: lan.nodes[1].machine.peer, port: 1,
                                  beacons: [Beacon(topic: topic, epoch: BeaconEpoch(unixSeconds: lan.unixSeconds))]).encoded()
        let valid = v9
        v9[4] = 9
        #expect(m.receive(v9, from: from, on: .multicast, at: t).isEmpty)
        #expect(m.receive(Array(valid.dropLast()), from: from, on: .multicast, at: t).isEmpty)
        #expect(m.receive(valid, from: from, on: .unicast, at: t).isEmpty)
        var answer = valid; answer[5] = 3
        #expect(m.receive(answer, from: from, on: .multicast, at: t).isEmpty)
        #expect(m.counters.badMagic == 2)
        #expect(m.counters.unsupportedVersion == 1)
        #expect(m.counters.malformed == 1)
        #expect(m.counters.wrongSocket == 2)
        #expect(m.counters.sightings == 0)
        // The same announcement on the right socket is a sighting.
        #expect(m.receive(valid, from: from, on: .multicast, at: t).count == 1)
    }

    @Test func unsolicitedAnswersAreDropped() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic, announce: true, lookup: false)
        let answer = DiscoveryMessage(kind: .answer, sender: lan.nodes[1].machine.peer, port: 1,
                                      beacons: [Beacon(topic: topic, epoch: BeaconEpoch(unixSeconds: lan.unixSeconds))]).encoded()
        #expect(lan.nodes[0].machine.receive(answer, from: .v4(10, 77, 0, 2, port: 1), on: .unicast, at: lan.time).isEmpty)
        #expect(lan.nodes[0].machine.counters.unsolicitedAnswers == 1)
    }

    @Test func peersWithClocksOneEpochApartStillMeet() {
        var lan = SimulatedLAN()
        lan.add(); lan.add()
        lan.join(0, topic)
        lan.unixSeconds += BeaconEpoch.seconds
        lan.join(1, topic)
        #expect(lan.saw(1, 0, topic))
        #expect(lan.saw(0, 1, topic))
    }

    @Test func manyTopicsAreSplitIntoDatagramsOfAtMostSixtyFourBeacons() {
        var lan = SimulatedLAN()
        lan.add()
        for i in 0..<130 {
            lan.join(0, Topic(bytes: [UInt8](repeating: UInt8(i), count: 31) + [1])!, announce: true, lookup: true)
        }
        lan.nodes[0].sent = []
        lan.run(for: .seconds(7))
        let messages = lan.nodes[0].sent.map { try! DiscoveryMessage.decode($0).get() }
        let announcements = messages.filter { $0.kind == .announcement }
        #expect(announcements.map(\.beacons.count).sorted() == [2, 64, 64])
        #expect(lan.nodes[0].sent.allSatisfy { $0.count <= 1200 })
    }

    @Test func twentyPercentLossStillConnectsThreeNodes() {
        // Over many seeds: three nodes, every datagram lost with probability 0.2.
        var failures = 0
        for seed in 0..<50 {
            var lan = SimulatedLAN()
            lan.rng = SeededRandom(seed: UInt64(seed))
            lan.lossPercent = 20
            for _ in 0..<3 { lan.add() }
            for i in 0..<3 { lan.join(i, topic) }
            lan.run(for: .seconds(12))
            for i in 0..<3 { for j in 0..<3 where i != j && !lan.saw(i, j, topic) { failures += 1 } }
        }
        #expect(failures == 0)
    }
}
