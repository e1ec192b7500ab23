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
    /// The timer's longest sleep when the machine has no deadline. The timer is woken
    /// early whenever a deadline earlier than its wake-up is published, so this only
    /// bounds how long an idle channel sleeps: an idle channel costs one wake-up a second,
    /// not a hundred.
    private var idleSleep: UInt64 { 1_000_000_000 }
    /// The timer's pauses when a due deadline stays where it was (nanoseconds).
    static var firstPause: UInt64 { 500_000 }
    static var longestPause: UInt64 { 20_000_000 }
    /// When the timer task sleeps until (nanoseconds of `clock`; 0: not sleeping) and its
    /// sleep, which `updateDeadline` cancels to wake it for an earlier deadline.
    private let timerSleep = Mutex<(until: UInt64, sleeper: Task<Void, Never>?)>((0, nil))

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
                    // Closed by this batch (the remote's `refuse`, a local failure) with nothing
                    // to send: the flush still reports the actions and ends the driver.
                    return m.hasPendingOutput || m.isClosed
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
            // After a look that left the deadline where it was: how long to wait before the next.
            var pause: UInt64 = 0
            while !Task.isCancelled, !isFinished {
                let now = clock.now().nanoseconds
                let due = deadline.load(ordering: .relaxed)
                if due != 0 && due <= now {
                    await serveSideInputs()
                    // Served: the deadline moved. Or it did not: the machine was busy, or a
                    // flush already under way (its send waiting for room in the session)
                    // holds what the look produced and publishes the next deadline when done.
                    // Then wait — 0.5 ms, doubling to 20 ms, or until an earlier deadline is
                    // published — rather than look again at once: the look does not suspend,
                    // so looping on it would hold this pool thread, the one that flush may
                    // need to go on (two such channels on two cores stalled a daemon).
                    if deadline.load(ordering: .relaxed) == due {
                        pause = min(max(pause * 2, Self.firstPause), Self.longestPause)
                        await sleep(until: now + pause, past: due)
                    } else {
                        pause = 0
                    }
                    continue
                }
                pause = 0
                await sleep(until: due == 0 ? now + idleSleep : min(due, now + idleSleep))
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

    /// Serves the side inputs if the machine is free, then sends what they produced. When
    /// it is busy, its holder serves them before letting go; but the holder may have taken
    /// its last look just before the flag went up, so a changed book is looked after here
    /// until someone has served it (a pause of 0.5 ms per try).
    private func serveSideInputs() async {
        while true {
            let now = clock.now()
            if let more = machine.withLockIfAvailable({ m -> Bool in
                serveSideInputs(&m, now: now)
                return m.hasPendingOutput || m.isClosed
            }) {
                if more { await flush() } else { updateDeadline() }
                return
            }
            try? await Task.sleep(for: .microseconds(500))
            guard !isFinished, bookChanged.load(ordering: .acquiring) else { return }
        }
    }

    /// The timer's sleep: until `wake`, or until `updateDeadline` publishes an earlier
    /// deadline and cancels it. `past`: a deadline already due, left as it was, that is no
    /// reason to wake.
    private func sleep(until wake: UInt64, past: UInt64 = 0) async {
        let clock = self.clock
        let sleeper = Task { _ = try? await clock.sleep(until: Timestamp(nanoseconds: wake)) }
        timerSleep.withLock { $0 = (wake, sleeper) }
        // A deadline published between the look above and the line before saw no sleeper
        // to wake: look again now that it can.
        let due = deadline.load(ordering: .relaxed)
        if (due != 0 && due < wake && due != past) || isFinished { sleeper.cancel() }
        await sleeper.value
        timerSleep.withLock { $0 = (0, nil) }
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
        let value = next.map { max(1, $0.nanoseconds) } ?? 0
        deadline.store(value, ordering: .relaxed)
        guard value != 0 else { return }
        let sleeper = timerSleep.withLock { $0.until != 0 && value < $0.until ? $0.sleeper : nil }
        sleeper?.cancel()
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
        timerSleep.withLock { $0.sleeper }?.cancel()
        onFinish(self)
    }
}
