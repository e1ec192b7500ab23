import Books
import Foundation
import Swarm
import Synchronization

/// Replication for one peer's book store over its sessions: the small API the messenger
/// uses (issue 5, DESIGN decision 9).
///
/// * `attach(_:)` a connection (a `PeerConnection` as the swarm hands it out): the remote
///   may then open a channel for any book of the store that the policy lets it read, and
///   this side opens a channel for every book it `replicate`s from that peer.
/// * `replicate(_:interest:from:)` a book: fetched from every attached peer (or one), now
///   and after every reconnect, resuming from what the store holds.
/// * `progress(of:)` and `progressUpdates(of:)` for a progress bar; `refusals` for
///   devtools: every peer refused (forged data, forks, floods, no right to read) and why;
///   `storeFailures`: pages this side could not store (a full disk), asked for again.
///
/// A peer refused for what it sent gets no channel for that book again from this
/// replicator; one refused only for lacking the right to read is judged again at its next
/// open. When a session ends, its channels stop; the next session with the peer resumes.
public final class Replicator: Sendable {
    public let store: BookStore
    public let localPeer: PeerID
    public let policy: ReplicationPolicy
    public let configuration: ReplicationConfiguration
    /// Every refusal, as it happens.
    public let refusals: AsyncStream<Refusal>
    /// Pages the local store could not take (a full disk, …), once per pause before they
    /// are asked for again.
    public let storeFailures: AsyncStream<StoreFailure>

    private let clock: any SwarmClock
    private let refusalContinuation: AsyncStream<Refusal>.Continuation
    private let storeFailureContinuation: AsyncStream<StoreFailure>.Continuation
    private let otherChannel: (@Sendable (PeerID, any ReplicationChannel) -> Void)?
    private let state = Mutex(State())

    private struct Key: Hashable {
        var peer: PeerID
        var book: BookID
    }

    private struct State {
        var connections: [PeerID: any ReplicationConnection] = [:]
        var drivers: [ObjectIdentifier: any ChannelDriving] = [:]
        /// Books to fetch: from one peer, or (key nil) from every peer.
        var wanted: [BookID: (interest: Interest, peer: PeerID?)] = [:]
        /// Peers refused for a book, with the reason.
        var banned: [Key: RefuseReason] = [:]
        /// When a book's author refused as forked was last let in for it, and whether a
        /// channel of its waits for its turn (`forkedAuthorReadmitInterval`).
        var readmitted: [Key: (at: Timestamp, waiting: Bool)] = [:]
        var refusalLog: [Refusal] = []
        var subscribers: [BookID: [Int: AsyncStream<ReplicationProgress>.Continuation]] = [:]
        var nextSubscriber = 0
        var tasks: [PeerID: [Task<Void, Never>]] = [:]
        /// Counters of channels that ended, by book.
        var finishedStats: [BookID: ReplicationStats] = [:]
        /// `retry` asked while a channel for the book with the peer was up: one is opened
        /// again when that one ends, unless it ended refused.
        var askAgain: Set<Key> = []
        /// The channel this side asked for, by peer and book: the connection it was asked on,
        /// from the ask until the channel ends (or the ask fails). `open` asks once per
        /// connection: the attach's opener, `replicate`, `retry` and `channelEnded` each look
        /// for a driver, which exists only once the remote accepted, so two of them in that
        /// round trip opened two channels, each fetching every page the other did.
        var opened: [Key: any ReplicationConnection] = [:]
    }

    /// - Parameters:
    ///   - otherChannel: receives channels the remote opens that are not replication's
    ///     (another protocol on the same session); they are closed when it is nil.
    public init(store: BookStore, localPeer: PeerID, policy: ReplicationPolicy,
                configuration: ReplicationConfiguration = ReplicationConfiguration(),
                clock: any SwarmClock = SystemSwarmClock(),
                otherChannel: (@Sendable (PeerID, any ReplicationChannel) -> Void)? = nil) {
        self.store = store
        self.localPeer = localPeer
        self.policy = policy
        self.configuration = configuration
        self.clock = clock
        self.otherChannel = otherChannel
        (refusals, refusalContinuation) = AsyncStream<Refusal>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        (storeFailures, storeFailureContinuation) = AsyncStream<StoreFailure>.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    // MARK: - Connections

    /// Serves and fetches over `connection` until it closes.
    public func attach(_ connection: any ReplicationConnection) {
        let peer = connection.remotePeer
        let previous = state.withLock { s -> [Task<Void, Never>] in
            s.connections[peer] = connection
            return s.tasks.removeValue(forKey: peer) ?? []
        }
        for task in previous { task.cancel() }
        let incoming = Task { [self] in
            for await channel in connection.incomingReplicationChannels() {
                accept(channel, on: connection)
            }
        }
        let opener = Task { [self] in
            for book in booksWanted(from: peer) { await open(book, on: connection) }
        }
        let watcher = Task { [self] in
            await connection.waitUntilClosed()
            await detach(connection)
        }
        state.withLock { $0.tasks[peer] = [incoming, opener, watcher] }
    }

    /// Attaches every connection of `connections` as it comes (e.g. `swarm.connections`),
    /// until the sequence ends.
    public func attachAll(_ connections: AsyncStream<PeerConnection>) async {
        for await connection in connections { attach(connection) }
    }

    /// Stops every channel of `connection` (the session was lost or is being closed).
    public func detach(_ connection: any ReplicationConnection) async {
        let peer = connection.remotePeer
        let drivers = state.withLock { s -> [any ChannelDriving] in
            guard s.connections[peer] === connection else { return [] }
            s.connections[peer] = nil
            for task in s.tasks.removeValue(forKey: peer) ?? [] { task.cancel() }
            s.askAgain = s.askAgain.filter { $0.peer != peer }
            return s.drivers.values.filter { $0.peer == peer }
        }
        for driver in drivers { await driver.finish() }
    }

    /// Stops every channel and forgets every connection.
    public func shutdown() async {
        let (drivers, tasks) = state.withLock { s in
            defer { s.connections = [:]; s.tasks = [:] }
            return (Array(s.drivers.values), s.tasks.values.flatMap { $0 })
        }
        for task in tasks { task.cancel() }
        for driver in drivers { await driver.finish() }
        refusalContinuation.finish()
        storeFailureContinuation.finish()
        let subscribers = state.withLock { s in defer { s.subscribers = [:] }; return s.subscribers.values.flatMap(\.values) }
        for c in subscribers { c.finish() }
    }

    // MARK: - Books

    /// Fetches `book` — from `peer` only, or from every attached peer — now and whenever a
    /// session comes back. The book is opened in the store as a reader if new.
    public func replicate(_ book: BookID, interest: Interest = .all, from peer: PeerID? = nil) async throws {
        _ = try store.open(id: book)
        let (connections, drivers) = state.withLock { s in
            s.wanted[book] = (interest, peer)
            let connections = s.connections.values.filter { peer == nil || $0.remotePeer == peer }
            return (connections, s.drivers.values.filter { $0.bookID == book })
        }
        for driver in drivers where peer == nil || driver.peer == peer { await driver.setInterest(interest) }
        for connection in connections where !drivers.contains(where: { $0.peer == connection.remotePeer }) {
            await open(book, on: connection)
        }
    }

    /// Lets `peer` be asked for `book` again although it was refused for it as forked, and
    /// opens a channel now if a session is up: for when the book's author announces the book
    /// again — after losing its store it may hold yet another history, which only a new
    /// exchange of signed roots can show (and refuse again; nothing unverified is stored
    /// either way). A peer refused for anything else stays refused. The caller bounds how
    /// often this happens.
    ///
    /// A channel for the book with the peer that is up already may be one opened before the
    /// reason to ask again (the author, back, announcing a book it did not hold yet when
    /// that channel reached it, and closing it): one is opened again when it ends, unless it
    /// ended refused.
    public func retry(_ book: BookID, from peer: PeerID) async {
        let connection = state.withLock { s -> (any ReplicationConnection)? in
            let key = Key(peer: peer, book: book)
            guard s.banned[key] == nil || s.banned[key] == .forked else { return nil }
            s.banned[key] = nil
            guard s.wanted[book] != nil else { return nil }
            if s.drivers.values.contains(where: { $0.bookID == book && $0.peer == peer }) || s.opened[key] != nil {
                s.askAgain.insert(key)
                return nil
            }
            return s.connections[peer]
        }
        if let connection { await open(book, on: connection) }
    }

    /// A channel ended: if `retry` asked while it was up, open one again (`open` leaves out a
    /// peer banned meanwhile).
    private func channelEnded(_ book: BookID, with peer: PeerID) {
        let connection = state.withLock { s -> (any ReplicationConnection)? in
            guard s.askAgain.remove(Key(peer: peer, book: book)) != nil, s.wanted[book] != nil,
                  !s.drivers.values.contains(where: { $0.bookID == book && $0.peer == peer }) else { return nil }
            return s.connections[peer]
        }
        if let connection { Task { await open(book, on: connection) } }
    }

    /// Stops fetching `book` (channels stay open: this side still serves it).
    public func stopReplicating(_ book: BookID) async {
        let drivers = state.withLock { s in
            s.wanted[book] = nil
            return s.drivers.values.filter { $0.bookID == book }
        }
        for driver in drivers { await driver.setInterest(.none) }
    }

    /// Pages held of the length known, for `book`.
    public func progress(of book: BookID) throws -> ReplicationProgress {
        guard let handle = try store.book(id: book) else {
            throw BooksError(.unknownBook, "book \(book.hex.prefix(16))… is not in the store", file: store.file)
        }
        let peers = state.withLock { s in
            s.drivers.values.filter { $0.bookID == book }.compactMap { d in d.remoteLength.map { (d.peer, $0) } }
        }
        var lengths: [PeerID: UInt64] = [:]
        for (peer, length) in peers { lengths[peer] = max(lengths[peer] ?? 0, length) }
        let verified = handle.length
        return ReplicationProgress(book: book, heldPages: handle.heldRanges().count, contiguousPages: handle.contiguousLength,
                                   verifiedLength: verified, knownLength: max(verified, lengths.values.max() ?? 0), peers: lengths)
    }

    /// Progress of `book` whenever pages arrive or a peer announces a new length (newest
    /// only, for a slow consumer). Finishes at `shutdown`.
    public func progressUpdates(of book: BookID) -> AsyncStream<ReplicationProgress> {
        let (stream, continuation) = AsyncStream<ReplicationProgress>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key = state.withLock { s in
            defer { s.nextSubscriber += 1 }
            s.subscribers[book, default: [:]][s.nextSubscriber] = continuation
            return s.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { s in _ = s.subscribers[book]?.removeValue(forKey: key) }
        }
        if let progress = try? progress(of: book) { continuation.yield(progress) }
        return stream
    }

    /// Every refusal so far, oldest first.
    public var refusalLog: [Refusal] { state.withLock { $0.refusalLog } }

    /// Counters of every channel of `book` since this replicator started, summed.
    public func stats(of book: BookID) -> ReplicationStats {
        state.withLock { s in
            s.drivers.values.filter { $0.bookID == book }.reduce(s.finishedStats[book] ?? ReplicationStats()) { $0 + $1.stats }
        }
    }

    /// The peers with an open channel for `book`.
    public func peers(of book: BookID) -> [PeerID] {
        state.withLock { s in Array(Set(s.drivers.values.filter { $0.bookID == book }.map(\.peer))) }
    }

    // MARK: - Channels

    private func booksWanted(from peer: PeerID) -> [BookID] {
        state.withLock { s in
            s.wanted.compactMap { book, entry in
                (entry.peer == nil || entry.peer == peer) && s.banned[Key(peer: peer, book: book)] == nil ? book : nil
            }
        }
    }

    private func open(_ bookID: BookID, on connection: any ReplicationConnection) async {
        let key = Key(peer: connection.remotePeer, book: bookID)
        let ask = state.withLock { s -> Bool in
            guard s.banned[key] == nil, s.opened[key] !== connection else { return false }
            s.opened[key] = connection
            return true
        }
        guard ask else { return }
        guard let channel = try? await connection.openReplicationChannel(label: ChannelLabel.make(bookID)) else {
            state.withLock { s in if s.opened[key] === connection { s.opened[key] = nil } }
            // A `retry` asked meanwhile waited for this channel.
            channelEnded(bookID, with: key.peer)
            return
        }
        start(bookID, channel: channel, on: connection, opened: true)
    }

    private func accept(_ channel: any ReplicationChannel, on connection: any ReplicationConnection) {
        let peer = connection.remotePeer
        guard let bookID = ChannelLabel.book(in: channel.label) else {
            if let otherChannel { otherChannel(peer, channel) } else { Task { await channel.close() } }
            return
        }
        let known = (try? store.list().contains { $0.id == bookID }) ?? false
        let admission = known ? admit(peer, for: bookID) : .refused
        switch admission {
        case .now:
            start(bookID, channel: channel, on: connection)
        case .refused:
            // Nothing to serve, or a peer refused before: the channel ends here.
            Task { await channel.close() }
        case .at(let turn):
            Task { [self] in
                try? await clock.sleep(until: turn)
                state.withLock { $0.readmitted[Key(peer: peer, book: bookID)]?.waiting = false }
                let open = state.withLock { $0.connections[peer] === connection }
                if open, !Task.isCancelled { start(bookID, channel: channel, on: connection) } else { await channel.close() }
            }
        }
    }

    private enum Admission { case now, refused, at(Timestamp) }

    /// Whether a channel `peer` opens for `bookID` is served. A peer refused for a fork is
    /// let in again when it is the book's author: it may come for the history this side
    /// holds, having lost its own (PROTOCOL.md §9.7). What it sends is checked as before, and
    /// a conflicting root refuses it again — so it is let in at most once per
    /// `forkedAuthorReadmitInterval`: a channel opened sooner waits for its turn, and any
    /// other opened meanwhile is closed.
    private func admit(_ peer: PeerID, for bookID: BookID) -> Admission {
        let key = Key(peer: peer, book: bookID)
        return state.withLock { s in
            guard let reason = s.banned[key] else { return .now }
            guard reason == .forked, policy.author(bookID) == peer else { return .refused }
            let now = clock.now()
            guard let last = s.readmitted[key] else {
                s.readmitted[key] = (now, false)
                return .now
            }
            guard !last.waiting else { return .refused }
            let turn = last.at + configuration.forkedAuthorReadmitInterval
            guard turn > now else {
                s.readmitted[key] = (now, false)
                return .now
            }
            s.readmitted[key] = (turn, true)
            return .at(turn)
        }
    }

    /// - Parameter opened: this side asked for the channel (`open`); its end lets `open` ask
    ///   again on the connection.
    private func start<Channel: ReplicationChannel>(_ bookID: BookID, channel: Channel, on connection: any ReplicationConnection,
                                                    opened: Bool = false) {
        let peer = connection.remotePeer
        let key = Key(peer: peer, book: bookID)
        // Never `open(id:)` here: a book deleted since the channel was asked for (a task
        // left) would come back as an empty reader's book.
        guard let book = try? store.book(id: bookID) else {
            if opened { state.withLock { s in if s.opened[key] === connection { s.opened[key] = nil } } }
            Task { await channel.close() }
            return
        }
        let interest: Interest = state.withLock { s in
            guard let entry = s.wanted[bookID], entry.peer == nil || entry.peer == peer else { return .none }
            return entry.interest
        }
        let machine = ReplicationMachine(book: book, binding: connection.replicationBinding(localPeer: localPeer),
                                         policy: policy, interest: interest, configuration: configuration)
        let driver = ChannelDriver(
            machine: machine, peer: peer, channel: channel, clock: clock,
            report: { [weak self] driver, actions in self?.perform(actions, of: driver) },
            onFinish: { [weak self] driver in
                self?.state.withLock { s in
                    if opened, s.opened[key] === connection { s.opened[key] = nil }
                    guard s.drivers.removeValue(forKey: ObjectIdentifier(driver)) != nil else { return }
                    s.finishedStats[driver.bookID] = (s.finishedStats[driver.bookID] ?? ReplicationStats()) + driver.stats
                }
                self?.publishProgress(driver.bookID)
                self?.channelEnded(driver.bookID, with: driver.peer)
            })
        state.withLock { $0.drivers[ObjectIdentifier(driver)] = driver }
        driver.start(lengthUpdates: book.lengthUpdates)
    }

    private func perform(_ actions: [ReplicationAction], of driver: any ChannelDriving) {
        var progressed = false
        for action in actions {
            switch action {
            case .stored, .remoteLength:
                progressed = true
            case let .refused(reason, detail, fork):
                // What the peer sent bans it for this book; lacking the right to read it does
                // not: the policy may say yes later (a topic learnt, a member added), and each
                // open is judged again.
                record(Refusal(peer: driver.peer, book: driver.bookID, reason: reason, detail: detail, fork: fork,
                               byRemote: false, time: Date()), ban: reason != .notAuthorized)
            case let .refusedByRemote(reason):
                record(Refusal(peer: driver.peer, book: driver.bookID, reason: reason, detail: "the remote closed the channel",
                               fork: nil, byRemote: true, time: Date()), ban: false)
            case .localFailure:
                break
            case let .storeFailed(detail):
                storeFailureContinuation.yield(StoreFailure(peer: driver.peer, book: driver.bookID, detail: detail, time: Date()))
            }
        }
        if progressed { publishProgress(driver.bookID) }
    }

    private func record(_ refusal: Refusal, ban: Bool) {
        state.withLock { s in
            s.refusalLog.append(refusal)
            if s.refusalLog.count > 1000 { s.refusalLog.removeFirst() }
            if ban { s.banned[Key(peer: refusal.peer, book: refusal.book)] = refusal.reason }
            // The exchange `retry` asked for took place: this channel's refusal answers it.
            s.askAgain.remove(Key(peer: refusal.peer, book: refusal.book))
        }
        refusalContinuation.yield(refusal)
    }

    private func publishProgress(_ book: BookID) {
        let subscribers = state.withLock { Array(($0.subscribers[book] ?? [:]).values) }
        guard !subscribers.isEmpty, let progress = try? progress(of: book) else { return }
        for c in subscribers { c.yield(progress) }
    }
}
