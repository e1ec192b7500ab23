/// One sighting of a peer that announced a topic: who, for which topic, and where it
/// receives session datagrams.
public struct PeerSighting: Hashable, Sendable {
    public var peer: PeerID
    public var topic: Topic
    public var endpoint: Endpoint

    public init(peer: PeerID, topic: Topic, endpoint: Endpoint) {
        self.peer = peer
        self.topic = topic
        self.endpoint = endpoint
    }
}

/// A way of finding peers for a topic: LAN multicast now, a bootstrap node later. The swarm
/// runs several side by side and dials what they see.
public protocol DiscoverySource: Sendable {
    /// Start announcing and/or looking up `topic`. Joining twice updates the flags.
    func join(_ topic: Topic, announce: Bool, lookup: Bool) async
    /// Stop announcing and looking up `topic`.
    func leave(_ topic: Topic) async
    /// Peers seen for joined topics (own announcements are filtered out). One consumer.
    var sightings: AsyncStream<PeerSighting> { get }
    /// Returns when the first lookup round for `topic` is over (query sent, answers awaited)
    /// and the sightings it brought are in `sightings`.
    func flushed(_ topic: Topic) async
    /// How many sightings the source has put into `sightings` so far (not those a full
    /// buffer dropped): `Swarm.flushed()` waits until it has taken that many.
    var sightingsDelivered: Int { get }
    /// Stops all traffic; `sightings` finishes.
    func close() async
}
