import Books
import Foundation
import Swarm
import Synchronization
import Testing
@testable import Replication

/// `ChannelDriver` against a channel the test holds: what its tasks do while a send waits.
@Suite("ChannelDriver")
struct ChannelDriverTests {
    let dir = TemporaryDirectory("repl-driver")

    /// The state that stalled a daemon (adf858b): a holder serves many pages, its send waits
    /// for room in the session, and a deadline of the machine (its `open` and `status`,
    /// unacknowledged) falls due meanwhile. The timer's look finds the machine free, ticks
    /// it, and leaves what that produced to the flush under way, which publishes the next
    /// deadline only when its send returns: the deadline stays where it was. The timer must
    /// wait before it looks again — looping at once holds a pool thread without suspending
    /// (two such channels took both threads of a 2-core machine, the send never got room).
    ///
    /// Measured by the timer's own clock: every look reads `now()`. Waiting (0.5 ms doubling
    /// to 20 ms) costs about a hundred reads a second; looping at once costs hundreds of
    /// thousands, even with the CPU shared with other loads. Process CPU time is in the
    /// message, not checked: tests running beside this one would count in it.
    @Test("a timer whose due deadline a blocked flush holds waits, not spins")
    func timerWaitsWhileSendBlocked() async throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 2000)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        let (holderBinding, readerBinding) = Fixtures.bindings()
        let clock = CountingClock()
        let channel = GatedChannel()
        let driver = ChannelDriver(
            machine: ReplicationMachine(book: author, binding: holderBinding, policy: Fixtures.policy, interest: .none),
            peer: holderBinding.remote, channel: channel, clock: clock, report: { _, _ in }, onFinish: { _ in })
        // The remote: a reader's machine, played by hand.
        var remote = ReplicationMachine(book: reader, binding: readerBinding, policy: Fixtures.policy, interest: .all)
        driver.start(lengthUpdates: author.lengthUpdates)

        // Open both ways; the holder answers the reader's open with its status.
        #expect(await eventually { channel.sent.count >= 1 })
        remote.start(now: clock.now())
        channel.deliver(remote.takeMessages())
        #expect(await eventually {
            channel.sent.contains { if case .success(.status) = ReplicationMessage.decode($0) { true } else { false } }
        })
        // From now on sends of answers wait. The reader takes the holder's open and status and
        // asks for pages; its status (which would acknowledge the holder's and stop its `open`)
        // is lost, so the holder's state stays unacknowledged and its retransmissions fall due.
        channel.closeGate()
        for message in channel.sent { remote.receive(message, now: clock.now()) }
        let requests = remote.takeMessages().filter {
            if case .success(.status) = ReplicationMessage.decode($0) { false } else { true }
        }
        #expect(requests.contains { if case .success(.request) = ReplicationMessage.decode($0) { true } else { false } })
        channel.deliver(requests)
        // The holder serves: its first batch of fragments waits in `send`, more to come.
        #expect(await eventually { channel.waiting == 1 })
        // Its deadlines (250 ms after the open and the status were sent) fall due.
        try await Task.sleep(for: .milliseconds(400))

        let reads = clock.reads.load(ordering: .relaxed)
        let cpu = processCPUTime()
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(1))
        let wall = (ContinuousClock.now - start).seconds
        let cpuUsed = processCPUTime() - cpu
        let looks = clock.reads.load(ordering: .relaxed) - reads
        // Still blocked: nothing else moved the deadline meanwhile.
        #expect(channel.waiting == 1)
        #expect(looks < 5000, "the timer read the clock \(looks) times in \(wall) s (process CPU \(cpuUsed) s)")

        // Let the sends go, then stop (a spinning timer stops once the flush is done).
        channel.openGate()
        await driver.finish()
    }
}

/// A clock that counts its reads: each look of a driver's timer reads it.
final class CountingClock: SwarmClock {
    private let base = SystemSwarmClock()
    let reads = Atomic<Int>(0)

    func now() -> Timestamp {
        reads.add(1, ordering: .relaxed)
        return base.now()
    }

    func sleep(until deadline: Timestamp) async throws { try await base.sleep(until: deadline) }
}

/// A channel whose sends of answers (`data`) wait while its gate is closed, as a session's
/// send waits for room while a holder serves a large file; other messages go through.
final class GatedChannel: ReplicationChannel {
    let label: [UInt8] = []
    let messages: AsyncStream<[UInt8]>
    let messageBatches: AsyncStream<[[UInt8]]>
    private let messageInput: AsyncStream<[UInt8]>.Continuation
    private let batchInput: AsyncStream<[[UInt8]]>.Continuation
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>], sent: [[UInt8]])>((true, [], []))

    init() {
        (messages, messageInput) = AsyncStream.makeStream()
        (messageBatches, batchInput) = AsyncStream.makeStream()
    }

    /// What went through.
    var sent: [[UInt8]] { state.withLock { $0.sent } }
    /// Sends of answers waiting at the gate.
    var waiting: Int { state.withLock { $0.waiters.count } }

    func deliver(_ batch: [[UInt8]]) { batchInput.yield(batch) }
    func closeGate() { state.withLock { $0.open = false } }

    func openGate() {
        let waiters = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func send(_ messages: [[UInt8]]) async throws {
        let answers = messages.contains { if case .success(.data) = ReplicationMessage.decode($0) { true } else { false } }
        if answers {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let go = state.withLock { s in
                    if !s.open { s.waiters.append(waiter) }
                    return s.open
                }
                if go { waiter.resume() }
            }
        }
        state.withLock { $0.sent += messages }
    }

    func close() async {
        openGate()
        messageInput.finish()
        batchInput.finish()
    }
}

private func processCPUTime() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

private extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
