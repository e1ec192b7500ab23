import Books
import Swarm
import Synchronization

/// The face of a driver that the replicator keeps, whatever its channel type.
protocol ChannelDriving: AnyObject, Sendable {
    var peer: PeerID { get }
    var bookID: BookID { get }
    var stats: ReplicationStats { get }
    var remoteLength: UInt64? { get }
    func setInterest(_ interest: Interest) async
    func finish() async
}

/// Runs one `ReplicationMachine` against one channel: the thin handler that performs the
/// machine's effects. Three tasks feed it — the channel's messages, the book's length
/// changes, and a timer at the machine's next deadline — under one lock, so no input
/// waits for a hop through another task or actor; the messages each input produces are
/// sent from the task that produced them, a batch per send.
///
/// The message task holds the lock longest (a completed answer is verified and stored
/// under it), so the two side inputs never wait for it: they raise a flag and try the
/// lock, and whoever holds it serves the flags before letting go. A blocked pool thread
/// would idle one of the few cores the whole process shares.
final class ChannelDriver<Channel: ReplicationChannel>: ChannelDriving {
    let peer: PeerID
    let bookID: BookID
    let channel: Channel
    private let machine: Mutex<ReplicationMachine>
    private let clock: any SwarmClock
    /// The machine's next deadline in nanoseconds (0: none), read by the timer task.
    private let deadline = Atomic<UInt64>(0)
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let finished = Atomic<Bool>(false)
    /// The book changed (an append here, or pages stored from any peer) and the machine
    /// has not been told yet.
    private let bookChanged = Atomic<Bool>(false)
    /// One task sends at a time, so the holder's fragments leave in the order the machine
    /// produced them (the reader's loss detection relies on answers arriving in order);
    /// a task finding a send under way leaves its output to that task.
    private let sending = Mutex<(running: Bool, again: Bool)>((false, false))
    private let report: @Sendable (any ChannelDriving, [ReplicationAction]) -> Void
    private let onFinish: @Sendable (any ChannelDriving) -> Void

    /// Output fragments taken per send: a batch per hop into the session, small enough to
    /// interleave with the other channels' traffic.
    private var sendBatch: Int { 64 }
    /// The timer's longest sleep: the machine's deadlines are never missed by more.
    private var idleTick: Duration { .milliseconds(10) }

    init(machine: consuming ReplicationMachine, peer: PeerID, channel: Channel, clock: any SwarmClock,
         report: @escaping @Sendable (any ChannelDriving, [ReplicationAction]) -> Void,
         onFinish: @escaping @Sendable (any ChannelDriving) -> Void) {
        self.peer = peer
        bookID = machine.book.id
        self.channel = channel
        self.clock = clock
        self.report = report
        self.onFinish = onFinish
        self.machine = Mutex(machine)
    }

    var stats: ReplicationStats { machine.withLock { $0.stats } }
    var remoteLength: UInt64? { machine.withLock { $0.remoteLength } }

    func start(lengthUpdates: AsyncStream<BookLength>) {
        let now = clock.now()
        machine.withLock { $0.start(now: now) }
        let pump = Task { [self] in
            await flush()
            for await batch in channel.messageBatches {
                let now = clock.now()
                // The whole batch under one lock, then one flush or one timer update: per
                // message, those cost more than the message itself.
                let more = machine.withLock { m in
                    for message in batch {
                        m.receive(message, now: now)
                        if m.isClosed { break }
                    }
                    serveSideInputs(&m, now: now)
                    return m.hasPendingOutput
                }
                if more { await flush() } else { updateDeadline() }
                if isFinished { break }
            }
            await finish()
        }
        let watcher = Task { [self] in
            for await _ in lengthUpdates {
                bookChanged.store(true, ordering: .releasing)
                await serveSideInputs()
                if isFinished { break }
            }
        }
        let timer = Task { [self] in
            while !Task.isCancelled, !isFinished {
                let now = clock.now()
                let due = deadline.load(ordering: .relaxed)
                if (due != 0 && due <= now.nanoseconds) || bookChanged.load(ordering: .acquiring) {
                    // Served, or the machine was busy (then it paused briefly): look again.
                    await serveSideInputs()
                    continue
                }
                let wait = due == 0 ? idleTick
                    : min(idleTick, .nanoseconds(Int64(due - now.nanoseconds)))
                try? await Task.sleep(for: max(wait, .microseconds(500)))
            }
        }
        tasks.withLock { $0 = [pump, watcher, timer] }
    }

    func setInterest(_ interest: Interest) async {
        let now = clock.now()
        machine.withLock { $0.setInterest(interest, now: now) }
        await flush()
    }

    private var isFinished: Bool { finished.load(ordering: .relaxed) }

    /// Tells the machine what the side inputs raised: a changed book, a due timer.
    private func serveSideInputs(_ m: inout ReplicationMachine, now: Timestamp) {
        if bookChanged.exchange(false, ordering: .acquiringAndReleasing) { m.localBookChanged(now: now) }
        let due = deadline.load(ordering: .relaxed)
        if due != 0, due <= now.nanoseconds, let next = m.nextDeadline, next <= now { m.tick(now: now) }
    }

    /// Serves the side inputs if the machine is free, then sends what they produced.
    /// Returns false when the machine was busy: its holder serves them before letting go
    /// (or, in a race with its last look, the timer's next round does).
    @discardableResult
    private func serveSideInputs() async -> Bool {
        let now = clock.now()
        guard let more = machine.withLockIfAvailable({ m -> Bool in
            serveSideInputs(&m, now: now)
            return m.hasPendingOutput
        }) else {
            try? await Task.sleep(for: .microseconds(500))
            return false
        }
        if more { await flush() } else { updateDeadline() }
        return true
    }

    /// Sends what the machine has, in batches, and performs its actions.
    private func flush() async {
        let go = sending.withLock { s -> Bool in
            if s.running { s.again = true; return false }
            s.running = true
            return true
        }
        guard go else { return }
        while true {
            let ended = await drain()
            let stop = sending.withLock { s -> Bool in
                if s.again, !ended { s.again = false; return false }
                s.running = false
                s.again = false
                return true
            }
            if stop { break }
        }
    }

    /// Returns true when the driver finished.
    private func drain() async -> Bool {
        while true {
            let (messages, actions, more, closed) = machine.withLock { m in
                (m.takeMessages(serveLimit: sendBatch), m.takeActions(), m.hasPendingOutput, m.isClosed)
            }
            if !actions.isEmpty { report(self, actions) }
            if !messages.isEmpty {
                do { try await channel.send(messages) } catch { await finish(); return true }
            }
            if closed {
                await finish()
                return true
            }
            if !more { break }
        }
        updateDeadline()
        return false
    }

    /// Publishes the machine's next deadline for the timer. Skipped when the machine is
    /// busy: its holder publishes it when done (every input ends in a flush or here).
    private func updateDeadline() {
        guard let next = machine.withLockIfAvailable({ $0.nextDeadline }) else { return }
        deadline.store(next.map { max(1, $0.nanoseconds) } ?? 0, ordering: .relaxed)
    }

    /// Stops the driver: cancels what is in flight (best effort) and closes the channel.
    func finish() async {
        guard finished.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let (messages, actions) = machine.withLock { m in
            m.close()
            return (m.takeMessages(serveLimit: 0), m.takeActions())
        }
        if !actions.isEmpty { report(self, actions) }
        if !messages.isEmpty { try? await channel.send(messages) }
        await channel.close()
        for task in tasks.withLock({ $0 }) { task.cancel() }
        onFinish(self)
    }
}
