import Books
import Swarm
import Synchronization

/// Runs one `ReplicationMachine` against one channel: the thin handler that performs the
/// machine's effects. Three tasks feed it — the channel's messages, the book's length
/// changes, and a timer at the machine's next deadline — under one lock, so no input
/// waits for a hop through another task or actor; the messages each input produces are
/// sent from the task that produced them, a batch per send.
/// The face of a driver that the replicator keeps, whatever its channel type.
protocol ChannelDriving: AnyObject, Sendable {
    var peer: PeerID { get }
    var bookID: BookID { get }
    var stats: ReplicationStats { get }
    var remoteLength: UInt64? { get }
    func setInterest(_ interest: Interest) async
    func finish() async
}

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
                    return m.hasPendingOutput
                }
                if more { await flush() } else { updateDeadline() }
                if isFinished { break }
            }
            await finish()
        }
        let watcher = Task { [self] in
            for await _ in lengthUpdates {
                let now = clock.now()
                machine.withLock { $0.localBookChanged(now: now) }
                await flush()
                if isFinished { break }
            }
        }
        let timer = Task { [self] in
            while !Task.isCancelled, !isFinished {
                let now = clock.now()
                let due = deadline.load(ordering: .relaxed)
                if due != 0, due <= now.nanoseconds {
                    machine.withLock { $0.tick(now: now) }
                    await flush()
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

    private func updateDeadline() {
        let next = machine.withLock { $0.nextDeadline }
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
