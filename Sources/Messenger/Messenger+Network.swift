import Books
import Foundation
import Replication
import Swarm
import Synchronization

/// The messenger on the network: flows 1 (join), 3 (more people) and 5 (reconnect).
///
/// `run(swarm:)` joins every task's topic (everyone announces, so members find each other)
/// and dials each task's creator by id. For each connection on which the remote proved a
/// task's topic, both sides run the connection protocol of the specification:
/// 1. create or load `${self}-${other}-${task}` (new: its first page is the other's address);
/// 2. tell the other its book id on the messenger channel (`MessengerWire`), re-sent until
///    acknowledged;
/// 3. on the other's book id: open it as a reader and have the `Replicator` fetch it from
///    every connected holder, now and after every reconnect (resume without loss or
///    duplicates is the replicator's).
/// Read policy: a peer may read a book iff it proves the topic of the book's task (it is a
/// member), so any member holding a book can serve it.
extension Messenger {
    struct NetworkState {
        let swarm: Swarm
        let replicator: Replicator
        let clock: any SwarmClock
        /// How devtools name a session's path (direct, LAN, punched, relayed).
        let describePath: @Sendable (Endpoint) -> String
        var connections: [PeerID: PeerConnection] = [:]
        /// (peer, task) pairs whose connection protocol ran on the current connection.
        var started: Set<PeerTask> = []
        /// Book ids the peer acknowledged, per task.
        var acknowledged: Set<PeerTask> = []
        /// Books we asked a peer for again after it re-announced them (`learnBook`): once
        /// per book and connection.
        var retried: Set<PeerBook> = []
        var watchers: [BookID: Task<Void, Never>] = [:]
    }

    struct PeerTask: Hashable {
        var peer: PeerID
        var task: TaskID
    }

    struct PeerBook: Hashable {
        var peer: PeerID
        var book: BookID
    }

    /// How often an unacknowledged book id is sent again.
    static let announceInterval: Duration = .milliseconds(300)
    /// The longest pause before a refused announcement channel is opened again.
    static let announceRetryMax: Duration = .seconds(10)

    /// Runs the messenger over `swarm` until the swarm shuts down. `clock` must be the
    /// swarm's (session times in `inspect` are read against it).
    public func run(swarm: Swarm, clock: any SwarmClock, replication: ReplicationConfiguration = ReplicationConfiguration(),
                    describePath: @escaping @Sendable (Endpoint) -> String = { "direct \($0)" }) async {
        let topics = BookTopics()
        for (task, record) in tasks {
            for (name, book) in (try? books(of: task)) ?? [] where !name.isJournal {
                topics.set(book.id, topic: record.invite.topic, author: name.author)
            }
        }
        bookTopics = topics
        // The author of a pairwise book is the author part of its name: a member that refuses
        // the book as forked still serves it the history it holds (PROTOCOL.md §9.6, §10.3).
        let policy = ReplicationPolicy(
            secret: { book in topics.topic(of: book)?.bytes },
            authorize: { _, book, check in topics.topic(of: book).map { check.proves(topic: $0) } ?? false },
            author: { book in topics.author(of: book) })
        let replicator = Replicator(store: store, localPeer: localPeer, policy: policy, configuration: replication, clock: clock,
                                    otherChannel: { [weak self] peer, channel in
                                        Task { await self?.accepted(channel, from: peer) }
                                    })
        network = NetworkState(swarm: swarm, replicator: replicator, clock: clock, describePath: describePath)
        record("network", "listening at \(swarm.transport.localEndpoint)")
        for task in tasks.keys { await startTask(task) }
        // A store that could not be written (a daemon started on a full disk) is opened for
        // writing again once it can be (`Messenger+FullDisk.swift`).
        let resuming = Task { await self.resumeWritingWhenPossible() }

        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await connection in swarm.connections { await self.connected(connection) }
            }
            group.addTask {
                for await event in swarm.events { await self.swarmEvent(event) }
            }
            group.addTask {
                for await refusal in replicator.refusals { await self.refused(refusal) }
            }
            group.addTask {
                // A full disk: the pages come again once it has space (`inspect` shows this).
                for await failure in replicator.storeFailures { await self.record("error", failure.description) }
            }
            // Ends when the swarm shuts down (its connections finish).
            _ = await group.next()
            group.cancelAll()
        }
        resuming.cancel()
        await resuming.value
        await replicator.shutdown()
        if let watchers = network?.watchers.values { for watcher in watchers { watcher.cancel() } }
        network = nil
    }

    /// Joins the task's topic and dials its creator; fetches the members' books we know.
    func startTask(_ task: TaskID) async {
        guard let network, let record = tasks[task] else { return }
        await network.swarm.join(record.invite.topic)
        if record.creator != localPeer { await network.swarm.joinPeer(record.creator) }
        for (name, book) in (try? books(of: task)) ?? [] where name.reader == localPeer && !name.isJournal {
            await follow(book, task: task)
        }
        await takeBackForkedBooks(in: task)
        for (peer, connection) in network.connections where connection.topics.contains(record.invite.topic) {
            await runConnectionProtocol(with: peer, task: task)
        }
        // Successor pages that arrived before this start (the process ended before it
        // followed them).
        await followSuccessors(of: task)
    }

    /// Has the replicator fetch a member's book from any holder, and tells followers when
    /// pages arrive.
    private func follow(_ book: Book, task: TaskID) async {
        guard let network, network.watchers[book.id] == nil, let record = tasks[task] else { return }
        bookTopics?.set(book.id, topic: record.invite.topic, author: book.name.flatMap(TaskBookName.init(parsing:))?.author)
        do { try await network.replicator.replicate(book.id) } catch {
            self.record("error", "cannot replicate \(book.id.hex.prefix(16))…: \(error)")
        }
        let updates = book.lengthUpdates
        self.network?.watchers[book.id] = Task { [weak self] in
            for await _ in updates {
                await self?.notify(.changed(task))
                // A member may have moved the task on and taken this peer along.
                await self?.followSuccessors(of: task)
            }
        }
    }

    // MARK: - Connections

    private func connected(_ connection: PeerConnection) async {
        guard let network else { return }
        let peer = connection.remotePeer
        self.network?.connections[peer] = connection
        self.network?.started = network.started.filter { $0.peer != peer }
        self.network?.acknowledged = network.acknowledged.filter { $0.peer != peer }
        network.replicator.attach(connection)
        record("connection", "\(peer.short) at \(connection.endpoint)")
        // The records as they are now: an `await` in the loop lets a `leave` remove one, and a
        // lookup of `tasks` by a key taken before it would find nothing (runConnectionProtocol
        // looks the task up again itself).
        for (task, record) in tasks where connection.topics.contains(record.invite.topic) {
            await runConnectionProtocol(with: peer, task: task)
        }
        Task { [weak self] in
            let reason = await connection.closed()
            await self?.disconnected(connection, reason: reason)
        }
    }

    private func disconnected(_ connection: PeerConnection, reason: CloseReason) {
        let peer = connection.remotePeer
        guard network?.connections[peer] === connection else { return }
        network?.connections[peer] = nil
        let remaining: Set<PeerTask> = network?.started.filter { $0.peer != peer } ?? []
        network?.started = remaining
        let retried: Set<PeerBook> = network?.retried.filter { $0.peer != peer } ?? []
        network?.retried = retried
        record("disconnected", "\(peer.short): \(reason)")
        for task in tasks.keys where (try? members(of: task).contains(peer)) == true {
            notify(.presence(task, peer, online: false))
        }
    }

    private func swarmEvent(_ event: SwarmEvent) async {
        switch event {
        case let .sessionEstablished(peer, _): record("session", "established with \(peer.short)")
        case let .sessionRestored(peer, _): record("session", "restored with \(peer.short)")
        case let .sessionLost(peer, _, reason): record("session", "lost \(peer.short): \(reason)")
        case let .endpointChanged(peer, endpoint): record("session", "\(peer.short) moved to \(endpoint)")
        case let .handshakeFailed(peer, endpoint): record("handshake", "failed with \(peer?.short ?? "?") at \(endpoint)")
        case let .topicProven(peer, topic):
            guard let task = tasks.values.first(where: { $0.invite.topic == topic })?.id else { return }
            record("member", "\(peer.short) proved task \(task.hex.prefix(8))")
            if network?.connections[peer] != nil { await runConnectionProtocol(with: peer, task: task) }
        }
    }

    private func refused(_ refusal: Refusal) async {
        if refusal.byRemote, refusal.reason == .forked, !refusedAsForked.contains(refusal.book) {
            // Only the book's other party speaks for it: its reader (ours) or its author (one
            // we read). A refusal needs no capability, so anyone with a session who knows the
            // id could send one; taken from them, it stopped the pair's messages (a forked book
            // is not written, and the next generation is refused by a reader whose copy is not).
            if let party = otherParty(of: refusal.book), party == refusal.peer {
                refusedAsForked.insert(refusal.book)
                record("warning", "\(refusal.peer.short) refused book \(refusal.book.hex.prefix(16))… as forked: "
                       + "it holds two histories, and messages of one do not reach the other side")
            } else {
                record("warning", "\(refusal.peer.short) refused book \(refusal.book.hex.prefix(16))… as forked, "
                       + "a book it neither writes nor reads for us: not taken")
            }
        }
        if refusal.reason == .forked {
            await startNextGeneration(after: refusal.book, refusedBy: refusal.peer, byRemote: refusal.byRemote)
            if let task = taskOfPairwiseBook(refusal.book) { await takeBackForkedBooks(in: task) }
            if refusal.byRemote { retryTakingBack(refusal.book, from: refusal.peer) }
        }
        refusals.append(EventReport(time: wallClock(), kind: refusal.byRemote ? "refused-by-remote" : "refused",
                                    detail: refusal.description))
        if refusals.count > 200 { refusals.removeFirst(refusals.count - 200) }
    }

    /// Asks the reader of a book we gave up (`takeBackForkedBooks`) for it once more, after its
    /// readmission interval (PROTOCOL.md §9.7), when it refused us for it as forked: a channel
    /// opened before we gave the book up still carried our forked root, and the reader, which
    /// lets the author in once a second, refused that one — while the channel opened when we
    /// gave it up was not opened, the old one being still there. Nothing would ask again
    /// before the next session. At most `takeBackRetryLimit` times per book.
    private func retryTakingBack(_ book: BookID, from peer: PeerID) {
        guard let network, let held = try? store.book(id: book), !held.isWritable, otherParty(of: book) == peer,
              let name = try? store.list().first(where: { $0.id == book })?.name.flatMap(TaskBookName.init(parsing:)),
              name.author == localPeer, takeBackRetries[book, default: 0] < Self.takeBackRetryLimit else { return }
        takeBackRetries[book, default: 0] += 1
        record("member", "\(peer.short) refused book \(book.hex.prefix(16))… we gave up: asking for it again in a moment")
        let clock = network.clock, replicator = network.replicator
        Task {
            try? await clock.sleep(until: clock.now() + Self.takeBackRetryDelay)
            await replicator.retry(book, from: peer)
        }
    }

    /// A little over a reader's readmission interval (§9.7: one second).
    static let takeBackRetryDelay: Duration = .milliseconds(1200)
    static let takeBackRetryLimit = 5

    /// The other party of a pairwise book we write or read: its reader when we are its author,
    /// its author when we are its reader; nil for any other book.
    private func otherParty(of book: BookID) -> PeerID? {
        guard let entry = try? store.list().first(where: { $0.id == book }),
              let name = entry.name.flatMap(TaskBookName.init(parsing:)), !name.isJournal else { return nil }
        if name.author == localPeer { return name.reader }
        if name.reader == localPeer { return name.author }
        return nil
    }

    /// The task of a pairwise book held here, by its name.
    private func taskOfPairwiseBook(_ book: BookID) -> TaskID? {
        guard let entry = try? store.list().first(where: { $0.id == book }),
              let name = entry.name.flatMap(TaskBookName.init(parsing:)), !name.isJournal else { return nil }
        return name.task
    }

    /// Takes back, from their readers, the versions of this peer's forked books (PROTOCOL.md
    /// §10.3): a pairwise book we write that is forked — we wrote it again from page 0 after
    /// losing our store, while its reader holds the old pages — and that a later generation
    /// of the pair has replaced is given up (`Book.becomeReader`: our own pages of it go,
    /// their messages being in the journal and the newest generation anyway) and fetched
    /// like a book we read, from every member that holds it; its reader serves it to us, its
    /// author, although it refuses the book as forked (§9.6). Our own messages from before
    /// the loss, and the task's title for its creator, come back with it. A book given up
    /// earlier (before a restart) is fetched again the same way. Never the newest generation
    /// of a pair: that one is written.
    func takeBackForkedBooks(in task: TaskID) async {
        guard let network, tasks[task] != nil, let books = try? books(of: task) else { return }
        for (name, book) in books where name.author == localPeer && !name.isJournal {
            let replaced = books.contains {
                $0.name.author == localPeer && $0.name.reader == name.reader && $0.name.generation > name.generation
            }
            guard replaced else { continue }
            if book.isWritable {
                guard isForked(book) else { continue }
                do {
                    try storage { try book.becomeReader() }
                } catch {
                    self.record("error", "cannot give up the forked book \(book.id.hex.prefix(16))… for \(name.reader.short): \(error)")
                    continue
                }
                refusedAsForked.remove(book.id)
                self.record("member", "book \(book.id.hex.prefix(16))… for \(name.reader.short) (generation \(name.generation)) is forked: "
                            + "giving up our copy, taking back the one \(name.reader.short) holds")
            }
            guard network.watchers[book.id] == nil else { continue }
            await follow(book, task: task)
            // This side may have refused the reader for the fork it no longer holds.
            await network.replicator.retry(book.id, from: name.reader)
        }
    }

    /// Books one pair may have (PROTOCOL.md §10.3): generations beyond are neither written
    /// nor accepted.
    static let maxGenerations: UInt32 = 16

    /// Our book for `reader` turned out forked (we wrote it again from page 0 after losing
    /// our store; the reader holds the old pages): write the next generation — a new book
    /// that starts with everything our journal holds — and announce it, so messages flow
    /// again. Once per forked book; nothing happens for a book that is not ours, or not the
    /// newest of its pair.
    ///
    /// Who may set this off: our own side, which refused the reader's status with a fork
    /// proof (two roots signed by our key), or the book's reader itself — the one party the
    /// book is for. Another member's `refuse(4)` proves nothing (it carries no proof) and
    /// only shows as a problem.
    private func startNextGeneration(after forked: BookID, refusedBy peer: PeerID, byRemote: Bool) async {
        guard let list = try? store.list(), let entry = list.first(where: { $0.id == forked }),
              let name = entry.name.flatMap(TaskBookName.init(parsing:)), name.author == localPeer, !name.isJournal,
              let record = tasks[name.task],
              byRemote ? name.reader == peer : (try? store.open(id: forked))?.forkProof != nil,
              let current = try? currentPairwiseName(for: name.reader, task: name.task), current.generation > name.generation,
              !list.contains(where: { $0.name == current.text }) else { return }
        let book: Book
        do {
            book = try createPairwiseBook(for: name.reader, task: name.task)
        } catch {
            self.record("error", "cannot start a new book for \(name.reader.short): \(error)")
            return
        }
        bookTopics?.set(book.id, topic: record.invite.topic)
        self.record("member", "book \(forked.hex.prefix(16))… for \(name.reader.short) is forked: writing generation "
                    + "\(current.generation), book \(book.id.hex.prefix(16))…")
        notify(.changed(name.task))
        if let connection = network?.connections[name.reader] {
            Task { [weak self] in await self?.announce(book.id, task: name.task, on: connection) }
        }
    }

    // MARK: - The connection protocol

    func runConnectionProtocol(with peer: PeerID, task: TaskID) async {
        guard let network, let connection = network.connections[peer], let record = tasks[task],
              !network.started.contains(PeerTask(peer: peer, task: task)) else { return }
        self.network?.started.insert(PeerTask(peer: peer, task: task))
        // The book's topic is known to the read policy before the book exists: a member who
        // knew its id from before (we lost our store and write it again) may open a channel
        // for it the moment it appears, and would be refused — for good — without it.
        if let name = try? currentPairwiseName(for: peer, task: task), let id = try? store.derivedID(name: name.text) {
            bookTopics?.set(id, topic: record.invite.topic)
        }
        let book: Book
        do {
            book = try createPairwiseBook(for: peer, task: task)
        } catch {
            // Run again once the store writes again (`resumeWriting`), or on the next connection.
            self.network?.started.remove(PeerTask(peer: peer, task: task))
            self.record("error", "cannot create the book for \(peer.short): \(error)")
            return
        }
        bookTopics?.set(book.id, topic: record.invite.topic)
        notify(.presence(task, peer, online: true))
        notify(.changed(task))
        self.record("member", "\(peer.short) in task \(task.hex.prefix(8)): announcing book \(book.id.hex.prefix(16))…")
        Task { [weak self] in await self?.announce(book.id, task: task, on: connection) }
    }

    /// Sends our book id on our messenger channel until the peer acknowledges it or the
    /// connection ends. The peer closes a channel for a task we have not yet proved to it:
    /// we open it as soon as the peer proved the task to us, and our own capability may
    /// arrive after the channel's open (lost once, resent every 500 ms, §8.3). So a channel
    /// closed without an acknowledgement is opened again, after a pause that doubles up to
    /// `announceRetryMax`, for as long as the connection lasts (PROTOCOL.md §10.5).
    private nonisolated func announce(_ book: BookID, task: TaskID, on connection: PeerConnection) async {
        var acknowledged = false
        var pause = Self.announceInterval
        while connection.isOpen && !acknowledged && !Task.isCancelled {
            if let channel = try? await connection.openChannel(label: MessengerWire.label(task)) {
                let acked = Atomic<Bool>(false)
                let reader = Task {
                    for await message in channel.messages where MessengerWire.decode(message) == .ack(book) {
                        acked.store(true, ordering: .relaxed)
                        return
                    }
                }
                while connection.isOpen && channel.isOpen && !acked.load(ordering: .relaxed) {
                    try? await channel.send(MessengerWire.encode(.book(book)))
                    try? await Task.sleep(for: Self.announceInterval)
                }
                reader.cancel()
                acknowledged = acked.load(ordering: .relaxed)
                if !acknowledged { await channel.close() }
            }
            guard !acknowledged, connection.isOpen else { break }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, Self.announceRetryMax)
        }
        if acknowledged { await self.acknowledged(PeerTask(peer: connection.remotePeer, task: task)) }
    }

    private func acknowledged(_ key: PeerTask) { network?.acknowledged.insert(key) }

    /// A channel the remote opened that is not replication's: ours if labelled for a task
    /// the remote proved on this session.
    private func accepted(_ channel: any ReplicationChannel, from peer: PeerID) async {
        guard let task = MessengerWire.task(inLabel: channel.label), let taskRecord = tasks[task],
              let connection = network?.connections[peer], connection.topics.contains(taskRecord.invite.topic) else {
            record("refused", "channel from \(peer.short) for no task it proved")
            await channel.close()
            return
        }
        for await message in channel.messages {
            guard case let .book(id) = MessengerWire.decode(message) else {
                record("dropped", "malformed messenger message from \(peer.short)")
                continue
            }
            // Acknowledged only when taken: a refused id is announced again (after a pause), by
            // when the reason may be gone (a new generation we have not yet seen forked).
            if await learnBook(id, of: peer, task: task) { try? await channel.send([MessengerWire.encode(.ack(id))]) }
        }
    }

    /// The peer writes book `id` for us in `task`: open it as a reader, fetch it, follow it.
    /// A second book for the same pair (the peer started a new generation after a fork) is
    /// labelled with the next generation here.
    @discardableResult
    private func learnBook(_ id: BookID, of peer: PeerID, task: TaskID) async -> Bool {
        // A task left while its channel was open: nothing of it is taken any more.
        guard tasks[task] != nil else { return false }
        let pair = TaskBookName(author: peer, reader: localPeer, task: task)
        let books = (try? books(of: task)) ?? []
        var name = pair
        if let held = books.first(where: { $0.book.id == id && $0.name.author == peer && $0.name.reader == localPeer }) {
            name = held.name
        } else if let newest = newest(books, author: peer, reader: localPeer) {
            // A further book of the pair: the author's next generation (§10.3). Its word is
            // enough — the session proves who speaks, and an author that wanted another book
            // could always fork its own, holding the key. Asking for a fork we saw ourselves
            // lost the pair for good when the author had taken the forked generation back
            // before we saw its new root: its copy is then ours, and nothing shows the fork
            // any more. The cap is what bounds the books a member can make us keep.
            guard newest.name.generation + 1 < Self.maxGenerations else {
                record("refused", "book \(id.hex.prefix(16))… from \(peer.short): already \(Self.maxGenerations) books of this pair")
                return false
            }
            name = pair.generation(newest.name.generation + 1)
        }
        // An id the store holds under another name (a book of someone else, or our own) is
        // not this peer's to announce: taking it would relabel that book.
        if let entry = try? store.list().first(where: { $0.id == id }), entry.name != name.text {
            record("refused", "book \(id.hex.prefix(16))… from \(peer.short): it is \(entry.name ?? "another book") here")
            return false
        }
        let book: Book
        do {
            book = try store.open(id: id, title: name.text)
        } catch {
            record("refused", "book \(id.hex.prefix(16))… from \(peer.short): \(error)")
            return false
        }
        if network?.watchers[id] == nil {
            record("member", "reading \(peer.short)'s book \(id.hex.prefix(16))… in task \(task.hex.prefix(8))")
            await follow(book, task: task)
            notify(.changed(task))
        } else {
            // Known already, yet announced again: the channel we opened for it before the
            // peer held it (a peer that lost its store and writes it again) was closed, and
            // nothing would open it again this session; or we refused the book from this
            // peer as forked, and its author — having lost its store again — may now hold a
            // third history. Ask again: the exchange of signed roots shows it (and the
            // author then starts a new generation, §10.3). Once per announcement, which the
            // author sends once per session until we acknowledge it.
            try? await network?.replicator.replicate(id)
            if network?.retried.insert(PeerBook(peer: peer, book: id)).inserted == true {
                await network?.replicator.retry(id, from: peer)
            }
        }
        return true
    }

    // MARK: - For the CLI

    /// The peers connected now.
    public var connectedPeers: [PeerID] { network.map { Array($0.connections.keys) } ?? [] }

    public var isOnline: Bool { network != nil }

    /// Whether `peer` acknowledged the book this peer writes for it in `task`, on the
    /// current connection.
    public func isAcknowledged(by peer: PeerID, task: TaskID) -> Bool {
        network?.acknowledged.contains(PeerTask(peer: peer, task: task)) ?? false
    }
}

/// Which topic entitles a peer to which book: read synchronously by the replication
/// policy, written by the messenger as books appear.
final class BookTopics: Sendable {
    private let table = Mutex<[BookID: (topic: Topic, author: PeerID?)]>([:])

    /// `author`: who writes the book, when known (nil keeps what was known).
    func set(_ book: BookID, topic: Topic, author: PeerID? = nil) {
        table.withLock { $0[book] = (topic, author ?? $0[book]?.author) }
    }

    func topic(of book: BookID) -> Topic? { table.withLock { $0[book]?.topic } }

    /// The book is no task's any more (its task was left): nobody may open it.
    func remove(_ book: BookID) { table.withLock { $0[book] = nil } }

    func author(of book: BookID) -> PeerID? { table.withLock { $0[book]?.author } }
}
