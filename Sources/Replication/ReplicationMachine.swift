import Books
import Swarm

/// What the session a channel runs in binds a capability to.
public struct SessionBinding: Sendable, Equatable {
    public var remote: PeerID
    /// The Noise handshake hash of the session.
    public var handshakeHash: [UInt8]
    /// This side's role in that handshake.
    public var localRole: Capability.Role

    public init(remote: PeerID, handshakeHash: [UInt8], localRole: Capability.Role) {
        self.remote = remote
        self.handshakeHash = handshakeHash
        self.localRole = localRole
    }
}

/// What the machine asks its driver to do or to know, besides sending messages.
public enum ReplicationAction: Sendable, Equatable {
    /// Pages were verified and stored.
    case stored(pages: Int)
    /// The remote announced a new length (a reader's progress bar learns the total).
    case remoteLength(UInt64)
    /// This side refused the remote: report it (with the fork proof, if that was the
    /// reason) and close the channel once the refusal is sent.
    case refused(RefuseReason, detail: String, fork: ForkProof?)
    /// The remote refused this side; the channel is over.
    case refusedByRemote(RefuseReason)
    /// The local store failed; this channel stops. Not the remote's fault.
    case localFailure(String)
    /// The local store could not take verified pages for a reason that may pass (a full
    /// disk, …); the channel stays and asks for them again after a pause.
    case storeFailed(String)
}

/// Replication of one book with one remote peer over one channel, sans I/O
/// (PROTOCOL.md §9, DESIGN decisions 5 and 9).
///
/// Flow: each side sends `open` with its capability for the book; each checks the
/// other's with the policy and, once satisfied, sends its `status` (length, signed root,
/// held pages), again whenever it changes, until acknowledged. A side that lacks pages the
/// other holds requests them (`Fetcher`); a side asked for pages answers in fragments
/// (`Server`). Both halves run on both sides: any holder serves, any reader fetches.
/// Anything that does not verify, or breaks the protocol, ends the channel with `refuse`
/// and an action the driver reports.
///
/// Inputs: `start`, `receive`, `localBookChanged`, `setInterest`, `tick`, each with `now`.
/// Outputs: `takeMessages`, `takeActions`, `nextDeadline`. The book is the only other
/// party, through the synchronous `ReplicatedBook` calls.
public struct ReplicationMachine: Sendable {
    public let book: any ReplicatedBook
    public let binding: SessionBinding
    let policy: ReplicationPolicy
    let configuration: ReplicationConfiguration
    /// The live state, mutated in place (as an enum payload it was copied out and back
    /// for every message: a retain and a release of every buffer in it). Once `closed`
    /// is set it is reset to an empty one and no input touches it again.
    private var active: Active
    private var closed: Closed?
    private var outbox: [[UInt8]] = []
    private var actions: [ReplicationAction] = []

    private struct Active {
        var ownCapability: [UInt8]?
        /// The capability the remote proved itself with, once the policy accepted it.
        var remoteCapability: [UInt8]?
        /// A status from the remote proves it accepted our `open`: stop repeating it.
        var heardStatus = false
        var nextOpen: Timestamp?
        var openRetries = 0
        var status = StatusExchange()
        var fetcher: Fetcher
        var server: Server

        var remoteAuthorized: Bool { remoteCapability != nil }
    }

    private struct Closed {
        var stats: ReplicationStats
        var remoteLength: UInt64?
    }

    public init(book: any ReplicatedBook, binding: SessionBinding, policy: ReplicationPolicy,
                interest: Interest, configuration: ReplicationConfiguration = ReplicationConfiguration()) {
        self.book = book
        self.binding = binding
        self.policy = policy
        self.configuration = configuration
        active = Active(fetcher: Fetcher(interest: book.isWritable ? .none : interest, configuration: configuration),
                        server: Server(configuration: configuration))
    }

    // MARK: - Queries

    public var isClosed: Bool { closed != nil }

    /// The length the remote announced (nil before its first status).
    public var remoteLength: UInt64? {
        if let closed { return closed.remoteLength }
        return active.fetcher.remote?.length
    }

    public var stats: ReplicationStats {
        if let closed { return closed.stats }
        return active.fetcher.stats + active.server.stats
    }

    /// True when messages wait: `takeMessages` has more to give.
    public var hasPendingOutput: Bool {
        !outbox.isEmpty || (closed == nil && active.server.hasWork)
    }

    public var nextDeadline: Timestamp? {
        guard closed == nil else { return nil }
        var earliest = active.fetcher.nextDeadline
        for candidate in [active.nextOpen, active.remoteAuthorized ? active.status.nextSend : nil] {
            if let candidate, earliest.map({ candidate < $0 }) ?? true { earliest = candidate }
        }
        return earliest
    }

    // MARK: - Outputs

    /// Messages to send, in order: control messages first, then answers to queued
    /// requests up to about `serveLimit` fragments (call again while `hasPendingOutput`).
    public mutating func takeMessages(serveLimit: Int = 256) -> [[UInt8]] {
        if closed == nil, active.server.hasWork {
            active.server.produce(book: book, limit: serveLimit, into: &outbox)
        }
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    public mutating func takeActions() -> [ReplicationAction] {
        defer { actions.removeAll(keepingCapacity: true) }
        return actions
    }

    // MARK: - Inputs

    /// Call once when the channel is open: sends `open` (when this side has a secret for
    /// the book) and takes in the book's state.
    public mutating func start(now: Timestamp) {
        guard closed == nil else { return }
        if let secret = policy.secret(book.id) {
            active.ownCapability = ReadCapability.make(secret: secret, book: book.id,
                                                       handshakeHash: binding.handshakeHash, sender: binding.localRole)
            sendOpen(now: now)
        }
        active.status.update(StatusExchange.Content(book: book), now: now, configuration: configuration)
    }

    /// The book changed here (an append, or pages stored from any peer).
    public mutating func localBookChanged(now: Timestamp) {
        guard closed == nil else { return }
        active.status.update(StatusExchange.Content(book: book), now: now, configuration: configuration)
        if active.remoteAuthorized, active.status.isDue(now) { sendStatus(now: now) }
        active.fetcher.fill(book: book, now: now, into: &outbox)
    }

    /// What this side wants of the book from this peer.
    public mutating func setInterest(_ interest: Interest, now: Timestamp) {
        guard !book.isWritable, closed == nil else { return }
        active.fetcher.interest = interest
        active.fetcher.fill(book: book, now: now, into: &outbox)
    }

    /// Timers: repeats `open` and `status` until acknowledged, re-requests what timed out.
    public mutating func tick(now: Timestamp) {
        guard closed == nil else { return }
        if let next = active.nextOpen, next <= now { sendOpen(now: now) }
        if active.remoteAuthorized, active.status.isDue(now) { sendStatus(now: now) }
        active.fetcher.timeouts(book: book, now: now, into: &outbox)
        active.fetcher.fill(book: book, now: now, into: &outbox)
    }

    /// One message from the channel.
    public mutating func receive(_ bytes: [UInt8], now: Timestamp) {
        guard closed == nil else { return }
        switch ReplicationMessage.decode(bytes) {
        case .failure(.unknown):
            // A newer peer's message: ignored, as PROTOCOL.md §9.1 requires.
            return
        case .failure(.malformed):
            return refuse(.malformed, "a message of \(bytes.count) bytes does not parse", fork: nil)
        case let .success(message):
            switch message {
            case let .open(open):
                guard open.book == book.id else {
                    return refuse(.malformed, "open for book \(open.book.hex.prefix(16))… on this book's channel", fork: nil)
                }
                if active.remoteCapability != open.capability {
                    let check = CapabilityCheck(book: book.id, capability: open.capability,
                                                handshakeHash: binding.handshakeHash, sender: binding.localRole.peer)
                    guard policy.authorize(binding.remote, book.id, check) else {
                        return refuse(.notAuthorized, "the capability for this book was not accepted", fork: nil)
                    }
                    active.remoteCapability = open.capability
                    active.server.servesForkedHistory = policy.author(book.id) == binding.remote
                }
                // A repeated open means our status did not arrive.
                sendStatus(now: now)
            case let .status(status):
                let isNew = active.status.received(status)
                // A status from the remote means it accepted our `open`.
                active.heardStatus = true
                active.nextOpen = nil
                if isNew {
                    let before = active.fetcher.remote?.length
                    switch active.fetcher.remoteStatus(status, book: book) {
                    case .nothing, .stored:
                        break
                    case let .refuse(reason, detail, fork):
                        return refuse(reason, detail, fork: fork)
                    case let .localFailure(detail), let .storeFailed(detail):
                        return fail(detail)
                    }
                    if let after = active.fetcher.remote?.length, after != before { actions.append(.remoteLength(after)) }
                }
                if status.needsAck, active.remoteAuthorized { sendStatus(now: now) }
            case let .request(request):
                switch active.server.receive(request, authorized: active.remoteAuthorized, localLength: book.signedRoot?.length ?? 0,
                                             into: &outbox) {
                case .nothing: break
                case let .refuse(reason, detail): return refuse(reason, detail, fork: nil)
                }
            case let .data(fragment):
                switch active.fetcher.receive(fragment, book: book, now: now, into: &outbox) {
                case .nothing:
                    // Most fragments complete nothing: no need to look for more to request.
                    return
                case let .stored(pages):
                    actions.append(.stored(pages: pages))
                    active.status.update(StatusExchange.Content(book: book), now: now, configuration: configuration)
                    if active.remoteAuthorized, active.status.isDue(now) { sendStatus(now: now) }
                case let .refuse(reason, detail, fork):
                    return refuse(reason, detail, fork: fork)
                case let .localFailure(detail):
                    return fail(detail)
                case let .storeFailed(detail):
                    actions.append(.storeFailed(detail))
                }
            case let .noData(requestID, reason):
                active.fetcher.noData(requestID: requestID, reason: reason, now: now)
            case let .cancel(requestID):
                active.server.cancel(requestID)
            case let .refuse(reason):
                actions.append(.refusedByRemote(reason))
                becomeClosed()
                return
            }
        }
        active.fetcher.fill(book: book, now: now, into: &outbox)
    }

    /// Ends the channel from this side (detach, shutdown): cancels what is in flight.
    public mutating func close() {
        guard closed == nil else { return }
        active.fetcher.cancelAll(into: &outbox)
        becomeClosed()
    }

    // MARK: - Helpers

    /// Keeps what a closed channel still reports and lets go of the rest (answers being
    /// reassembled, queued requests).
    private mutating func becomeClosed() {
        closed = Closed(stats: active.fetcher.stats + active.server.stats, remoteLength: active.fetcher.remote?.length)
        active = Active(fetcher: Fetcher(interest: .none, configuration: configuration), server: Server(configuration: configuration))
    }

    private mutating func sendOpen(now: Timestamp) {
        guard let capability = active.ownCapability, !active.heardStatus else {
            active.nextOpen = nil
            return
        }
        outbox.append(ReplicationMessage.open(.init(book: book.id, capability: capability)).encoded())
        var delay = configuration.stateRetransmit
        for _ in 0..<min(active.openRetries, 3) { delay *= 2 }
        active.openRetries += 1
        active.nextOpen = now + delay
    }

    private mutating func sendStatus(now: Timestamp) {
        outbox.append(ReplicationMessage.status(active.status.message()).encoded())
        active.status.sent(now: now, configuration: configuration)
    }

    private mutating func refuse(_ reason: RefuseReason, _ detail: String, fork: ForkProof?) {
        active.fetcher.cancelAll(into: &outbox)
        outbox.append(ReplicationMessage.refuse(reason).encoded())
        actions.append(.refused(reason, detail: detail, fork: fork))
        becomeClosed()
    }

    private mutating func fail(_ detail: String) {
        actions.append(.localFailure(detail))
        becomeClosed()
    }
}
