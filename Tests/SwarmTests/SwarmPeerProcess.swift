import BookswarmTestSupport

/// A `swarm-peer` child (see `JSONLinesProcess`).
typealias SwarmPeerProcess = JSONLinesProcess

extension JSONLinesProcess {
    /// The peer id a `swarm-peer` announced in its `ready` line.
    var peer: String? { lines("ready").first?.fields["peer"] }
}
