/// What the swarm reports besides new connections, for applications and devtools.
public enum SwarmEvent: Sendable, Equatable {
    /// A session with a peer we never had one with (this run).
    case sessionEstablished(PeerID, SessionID)
    /// A session with a peer we had lost (or whose old session a restart replaced).
    case sessionRestored(PeerID, SessionID)
    case sessionLost(PeerID, SessionID, CloseReason)
    /// The peer proved it holds a topic we joined.
    case topicProven(PeerID, Topic)
    /// The peer roamed to a new endpoint.
    case endpointChanged(PeerID, Endpoint)
    /// A dial gave up (it will be retried per the retry policy if the peer is still wanted).
    case handshakeFailed(PeerID?, Endpoint)
}
