import Synchronization

/// Discovery inside one process, for scenario tests: every source attached to the same hub
/// sees the others' announcements for the topics it looks up, at once and reliably.
public final class InMemoryDiscoveryHub: Sendable {
    private struct Entry {
        var peer: PeerID
        var endpoint: Endpoint
        var announced: Set<Topic> = []
        var lookedUp: Set<Topic> = []
        var continuation: AsyncStream<PeerSighting>.Continuation
        var delivered = 0

        mutating func deliver(_ sighting: PeerSighting) {
            if case .enqueued = continuation.yield(sighting) { delivered += 1 }
        }
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    /// A discovery source for `peer`, whose sessions listen at `endpoint`.
    public func makeSource(peer: PeerID, endpoint: Endpoint) -> InMemoryDiscovery {
        let (stream, continuation) = AsyncStream<PeerSighting>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let source = InMemoryDiscovery(hub: self, sightings: stream)
        entries.withLock { $0[ObjectIdentifier(source)] = Entry(peer: peer, endpoint: endpoint, continuation: continuation) }
        return source
    }

    func join(_ id: ObjectIdentifier, topic: Topic, announce: Bool, lookup: Bool) {
        entries.withLock { all in
            guard var me = all[id] else { return }
            if announce { me.announced.insert(topic) } else { me.announced.remove(topic) }
            if lookup { me.lookedUp.insert(topic) } else { me.lookedUp.remove(topic) }
            all[id] = me
            for (other, entry) in all where other != id && entry.peer != me.peer {
                // Our lookup finds their announcements; our announcement reaches their lookups.
                if lookup && entry.announced.contains(topic) {
                    me.deliver(PeerSighting(peer: entry.peer, topic: topic, endpoint: entry.endpoint))
                }
                if announce && entry.lookedUp.contains(topic) {
                    all[other]?.deliver(PeerSighting(peer: me.peer, topic: topic, endpoint: me.endpoint))
                }
            }
            all[id] = me
        }
    }

    func delivered(_ id: ObjectIdentifier) -> Int { entries.withLock { $0[id]?.delivered ?? 0 } }

    func leave(_ id: ObjectIdentifier, topic: Topic) {
        entries.withLock { all in
            all[id]?.announced.remove(topic)
            all[id]?.lookedUp.remove(topic)
        }
    }

    func close(_ id: ObjectIdentifier) {
        entries.withLock { all in all.removeValue(forKey: id)?.continuation.finish() }
    }
}

public final class InMemoryDiscovery: DiscoverySource {
    public let sightings: AsyncStream<PeerSighting>
    private let hub: InMemoryDiscoveryHub

    init(hub: InMemoryDiscoveryHub, sightings: AsyncStream<PeerSighting>) {
        self.hub = hub
        self.sightings = sightings
    }

    public func join(_ topic: Topic, announce: Bool, lookup: Bool) async {
        hub.join(ObjectIdentifier(self), topic: topic, announce: announce, lookup: lookup)
    }

    public func leave(_ topic: Topic) async { hub.leave(ObjectIdentifier(self), topic: topic) }

    /// Sightings are delivered during `join`, so the first round is over at once.
    public func flushed(_ topic: Topic) async {}

    public var sightingsDelivered: Int { hub.delivered(ObjectIdentifier(self)) }

    public func close() async { hub.close(ObjectIdentifier(self)) }
}
