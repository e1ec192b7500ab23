import Synchronization

/// One session with a remote peer, as the application sees it: who, which of our topics it
/// proved, where it is, and its channels. A connection lives as long as its session; when
/// the peer comes back, a new `PeerConnection` arrives on `Swarm.connections`.
public final class PeerConnection: Sendable, Hashable, CustomStringConvertible {
    public let remotePeer: PeerID
    public let sessionID: SessionID
    /// The Noise handshake hash of the handshake that started the session, and this side's
    /// role in it: what capabilities inside the session bind to (PROTOCOL.md §5.3), e.g. a
    /// replication channel's read capability.
    public let handshakeHash: [UInt8]
    public let localRole: Capability.Role
    /// Channels the remote opens, in order (up to 1024 unread). Finishes when the connection
    /// closes.
    public let incomingChannels: AsyncStream<SessionChannel>

    private struct State {
        var topics: Set<Topic> = []
        var endpoint: Endpoint
        var closeReason: CloseReason?
        var closeWaiters: [CheckedContinuation<CloseReason, Never>] = []
    }

    private let state: Mutex<State>
    private let incomingContinuation: AsyncStream<SessionChannel>.Continuation
    let swarm: Swarm

    init(swarm: Swarm, peer: PeerID, sessionID: SessionID, handshakeHash: [UInt8], localRole: Capability.Role,
         endpoint: Endpoint) {
        self.swarm = swarm
        remotePeer = peer
        self.sessionID = sessionID
        self.handshakeHash = handshakeHash
        self.localRole = localRole
        state = Mutex(State(endpoint: endpoint))
        // Bounded, so a peer cannot make us hold channels nobody reads.
        (incomingChannels, incomingContinuation) = AsyncStream<SessionChannel>.makeStream(bufferingPolicy: .bufferingOldest(1024))
    }

    /// Topics the remote proved with a capability in this session (grows while it lasts).
    public var topics: Set<Topic> { state.withLock { $0.topics } }

    /// The remote's current endpoint (the session's path).
    public var endpoint: Endpoint { state.withLock { $0.endpoint } }

    /// Why the connection closed, or nil while it is open.
    public var closeReason: CloseReason? { state.withLock { $0.closeReason } }

    public var isOpen: Bool { closeReason == nil }

    /// Opens a channel; returns once the remote accepted it. `label` (≤ 1100 bytes) tells the
    /// remote what the channel is for, e.g. a protocol name and a book id.
    public func openChannel(label: [UInt8]) async throws -> SessionChannel {
        try await swarm.openChannel(on: self, label: label)
    }

    /// Ends the session, telling the remote.
    public func close() async { await swarm.closeConnection(self) }

    /// Returns when the connection closes, with the reason.
    public func closed() async -> CloseReason {
        await withCheckedContinuation { continuation in
            let reason: CloseReason? = state.withLock { s in
                if let r = s.closeReason { return r }
                s.closeWaiters.append(continuation)
                return nil
            }
            if let reason { continuation.resume(returning: reason) }
        }
    }

    /// Round-trip time, last-seen time and counters of the session, for devtools.
    public func stats() async -> SessionStats? { await swarm.sessionStats(for: remotePeer) }

    // MARK: Runtime side

    func addTopic(_ topic: Topic) -> Bool { state.withLock { $0.topics.insert(topic).inserted } }

    func setEndpoint(_ endpoint: Endpoint) { state.withLock { $0.endpoint = endpoint } }

    func deliverIncoming(_ channel: SessionChannel) { incomingContinuation.yield(channel) }

    func markClosed(_ reason: CloseReason) {
        let waiters: [CheckedContinuation<CloseReason, Never>] = state.withLock { s in
            guard s.closeReason == nil else { return [] }
            s.closeReason = reason
            defer { s.closeWaiters = [] }
            return s.closeWaiters
        }
        incomingContinuation.finish()
        for w in waiters { w.resume(returning: reason) }
    }

    public static func == (a: PeerConnection, b: PeerConnection) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "PeerConnection(\(remotePeer.short), session \(sessionID))" }
}

/// A channel inside a session (PROTOCOL.md §8): datagram-sized messages, unreliable and
/// unordered as UDP is. Reliability is the user's: idempotent state, or requests with retry.
public final class SessionChannel: Sendable, CustomStringConvertible {
    public let id: UInt16
    public let label: [UInt8]
    public let remotePeer: PeerID
    /// Messages from the remote. Finishes when the channel or its session closes. A reader
    /// that falls more than `SwarmConfiguration.channelBuffer` deliveries behind loses the
    /// newest (a delivery is what one received batch of datagrams carried for the channel).
    public let messages: ChannelMessages

    private let continuation: AsyncStream<[[UInt8]]>.Continuation
    private let swarm: Swarm
    private let isClosed = Atomic<Bool>(false)

    init(swarm: Swarm, peer: PeerID, id: UInt16, label: [UInt8], buffer: Int) {
        self.swarm = swarm
        remotePeer = peer
        self.id = id
        self.label = label
        let (batches, continuation) = AsyncStream<[[UInt8]]>.makeStream(bufferingPolicy: .bufferingOldest(buffer))
        messages = ChannelMessages(batches: batches)
        self.continuation = continuation
    }

    public var isOpen: Bool { !isClosed.load(ordering: .relaxed) }

    /// Sends one message (≤ `ChannelLimits.maxMessage` bytes).
    public func send(_ message: [UInt8]) async throws {
        try await swarm.send([message], on: self)
    }

    /// Sends several messages with one hop into the swarm and one write to the transport.
    /// Throws `messageTooLarge`, sending none, if any exceeds `ChannelLimits.maxMessage`.
    public func send(_ messages: [[UInt8]]) async throws {
        try await swarm.send(messages, on: self)
    }

    /// Closes the channel on both sides (best effort: a lost close leaves the remote's end
    /// open until the session ends; messages for it are then dropped and counted).
    public func close() async {
        guard !isClosed.load(ordering: .relaxed) else { return }
        await swarm.closeChannel(self)
    }

    func deliver(_ batch: [[UInt8]]) { continuation.yield(batch) }

    func finish() {
        isClosed.store(true, ordering: .relaxed)
        continuation.finish()
    }

    public var description: String { "SessionChannel(\(id) with \(remotePeer.short))" }
}

/// The messages of a channel, one at a time. Underneath they arrive in batches (what one
/// read from the socket carried), so a reader wakes once per batch, not once per message.
public struct ChannelMessages: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    /// The messages in the batches they arrived in; iterate this or the messages, not both.
    public let batches: AsyncStream<[[UInt8]]>

    public func makeAsyncIterator() -> Iterator { Iterator(batches: batches.makeAsyncIterator()) }

    public struct Iterator: AsyncIteratorProtocol {
        var batches: AsyncStream<[[UInt8]]>.AsyncIterator
        var pending: [[UInt8]] = []
        var position = 0

        public mutating func next() async -> [UInt8]? {
            while position == pending.count {
                guard let batch = await batches.next() else { return nil }
                pending = batch
                position = 0
            }
            defer { position += 1 }
            return pending[position]
        }
    }
}
