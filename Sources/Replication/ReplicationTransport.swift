import Books
import Swarm

/// A channel as replication uses it: datagram-sized messages, unreliable and unordered.
/// `Swarm.SessionChannel` conforms; tests also use an in-memory lossy pair.
public protocol ReplicationChannel: AnyObject, Sendable {
    associatedtype Messages: AsyncSequence, Sendable where Messages.Element == [UInt8], Messages.Failure == Never
    associatedtype MessageBatches: AsyncSequence, Sendable where MessageBatches.Element == [[UInt8]],
        MessageBatches.Failure == Never
    var label: [UInt8] { get }
    /// Messages from the remote; finishes when the channel or its session closes.
    var messages: Messages { get }
    /// The same messages in the batches they arrived in (what one read from the socket
    /// carried): a driver takes a batch under one lock and updates its timers once per
    /// batch instead of once per message. Consume either this or `messages`, not both.
    var messageBatches: MessageBatches { get }
    func send(_ messages: [[UInt8]]) async throws
    func close() async
}

/// A session with one remote peer as replication uses it. `Swarm.PeerConnection` conforms.
public protocol ReplicationConnection: AnyObject, Sendable {
    var remotePeer: PeerID { get }
    /// What capabilities on this session are bound to, seen from `localPeer`.
    func replicationBinding(localPeer: PeerID) -> SessionBinding
    func openReplicationChannel(label: [UInt8]) async throws -> any ReplicationChannel
    /// Channels the remote opens. Consumed by the replicator that the connection is
    /// attached to; channels that are not replication's go to its `otherChannel` hook.
    func incomingReplicationChannels() -> AsyncStream<any ReplicationChannel>
    /// Returns when the session is over.
    func waitUntilClosed() async
}

/// §9.1: the label of a book's channel: this tag, then the 32-byte book id.
package enum ChannelLabel {
    static let tag: [UInt8] = Array("bsrepl/1".utf8)

    package static func make(_ book: BookID) -> [UInt8] { tag + book.bytes }

    package static func book(in label: [UInt8]) -> BookID? {
        guard label.count == tag.count + 32, Array(label.prefix(tag.count)) == tag else { return nil }
        return try? BookID(bytes: Array(label.suffix(32)))
    }
}

extension SessionChannel: ReplicationChannel {
    public var messageBatches: AsyncStream<[[UInt8]]> { messages.batches }
}

extension PeerConnection: ReplicationConnection {
    /// Bound to the session's Noise handshake hash and this side's role in the handshake.
    public func replicationBinding(localPeer: PeerID) -> SessionBinding {
        SessionBinding(remote: remotePeer, handshakeHash: handshakeHash, localRole: localRole)
    }

    public func openReplicationChannel(label: [UInt8]) async throws -> any ReplicationChannel {
        try await openChannel(label: label)
    }

    public func incomingReplicationChannels() -> AsyncStream<any ReplicationChannel> {
        let incoming = incomingChannels
        return AsyncStream { continuation in
            let task = Task {
                for await channel in incoming { continuation.yield(channel) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func waitUntilClosed() async { _ = await closed() }
}
