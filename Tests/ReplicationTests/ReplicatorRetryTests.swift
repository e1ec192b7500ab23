import Books
import BookswarmTestSupport
import Foundation
import Swarm
import Synchronization
import Testing
@testable import Replication

/// `Replicator.retry` against a remote the test plays by hand (PROTOCOL.md §10.3): a retry
/// asked while a channel for the book is up opens one again when that channel ends, unless
/// it ended refused; a channel that ends without a retry is not opened again.
@Suite("Replicator retry")
struct ReplicatorRetryTests {
    @Test("a retry while a channel is up opens one again when that channel ends")
    func retryWhileUpReopens() async throws {
        let bed = try await readerAttached()
        let (reader, remote, book) = (bed.reader, bed.remote, bed.book)
        #expect(await eventually { remote.opened == 1 })
        await reader.retry(book, from: remote.remotePeer)
        // No second channel beside the first: the retry waits for it to end.
        try await Task.sleep(for: .milliseconds(100))
        #expect(remote.opened == 1)
        // The remote closes it (it did not hold the book when the channel reached it).
        await remote.channel(0)?.close()
        #expect(await eventually { remote.opened == 2 })
        #expect(remote.channel(1)?.label == ChannelLabel.make(book))
        // Once: the reopened channel ending brings no third.
        await remote.channel(1)?.close()
        try await Task.sleep(for: .milliseconds(200))
        #expect(remote.opened == 2)
        await bed.stop()
    }

    @Test("a channel that ends without a retry is not opened again")
    func endWithoutRetryStaysClosed() async throws {
        let bed = try await readerAttached()
        let remote = bed.remote
        #expect(await eventually { remote.opened == 1 })
        await remote.channel(0)?.close()
        try await Task.sleep(for: .milliseconds(200))
        #expect(remote.opened == 1)
        await bed.stop()
    }

    @Test("a channel that ends refused is not opened again, although a retry was asked")
    func refusedAfterRetryStaysClosed() async throws {
        let bed = try await readerAttached()
        let (reader, remote, book) = (bed.reader, bed.remote, bed.book)
        #expect(await eventually { remote.opened == 1 })
        await reader.retry(book, from: remote.remotePeer)
        // The exchange the retry asked for took place, and ended in a refusal.
        remote.channel(0)?.deliver([ReplicationMessage.refuse(.forked).encoded()])
        #expect(await eventually { reader.refusalLog.contains { $0.byRemote && $0.reason == .forked } })
        try await Task.sleep(for: .milliseconds(200))
        #expect(remote.opened == 1)
        await bed.stop()
    }

    @Test("a retry asked on a session that then closes is forgotten with it")
    func detachForgetsTheRetry() async throws {
        let bed = try await readerAttached()
        let (reader, remote, book) = (bed.reader, bed.remote, bed.book)
        #expect(await eventually { remote.opened == 1 })
        await reader.retry(book, from: remote.remotePeer)
        await reader.detach(remote)
        // The next session with the same peer opens the book's channel once; its end
        // answers to nothing asked on that session.
        let next = ScriptedConnection(remotePeer: remote.remotePeer)
        reader.attach(next)
        #expect(await eventually { next.opened == 1 })
        await next.channel(0)?.close()
        try await Task.sleep(for: .milliseconds(200))
        #expect(next.opened == 1 && remote.opened == 1)
        await bed.stop()
    }

    @Test("asked for again while its channel is being opened, the book gets no second channel")
    func noSecondChannelWhileOpening() async throws {
        // The remote accepts only when the test says: until then the replicator has no
        // driver for the book, only the open it asked for.
        let bed = try await readerAttached(gated: true)
        let (reader, remote, book) = (bed.reader, bed.remote, bed.book)
        #expect(await eventually { remote.asked == 1 })
        // Asked for again in that round trip: the reader process calls `replicate` as its
        // session comes up, the messenger at each announcement of the book.
        let again = Task { try await reader.replicate(book, from: remote.remotePeer) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(remote.asked == 1, "a second channel was asked for while the first was being opened")
        remote.accept()
        try await again.value
        #expect(await eventually { remote.opened >= 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(remote.opened == 1)
        // Once it ends, the book's channel can be asked for again on this session.
        await remote.channel(0)?.close()
        try await Task.sleep(for: .milliseconds(100))
        let reopen = Task { try await reader.replicate(book, from: remote.remotePeer) }
        #expect(await eventually { remote.asked == 2 })
        remote.accept()
        try await reopen.value
        #expect(remote.opened == 2)
        await bed.stop()
    }

    /// A reader's replicator that wants a book from a scripted remote, attached to it.
    private func readerAttached(gated: Bool = false) async throws -> RetryBed {
        let directory = TemporaryDirectory("repl-retry")
        let author = try Fixtures.store(directory.sub("author"), seed: 1)
        let book = try Fixtures.authorBook(author, count: 3).id
        author.close()
        let store = try Fixtures.store(directory.sub("reader"), seed: 2)
        let remote = ScriptedConnection(remotePeer: Fixtures.peer(1), gated: gated)
        let reader = Replicator(store: store, localPeer: Fixtures.peer(2), policy: Fixtures.policy)
        try await reader.replicate(book, from: remote.remotePeer)
        reader.attach(remote)
        return RetryBed(directory: directory, store: store, reader: reader, remote: remote, book: book)
    }
}

/// The reader of `ReplicatorRetryTests` and what it stands on.
struct RetryBed {
    let directory: TemporaryDirectory
    let store: BookStore
    let reader: Replicator
    let remote: ScriptedConnection
    let book: BookID

    func stop() async {
        await reader.shutdown()
        store.close()
    }
}

/// A session whose remote side the test plays: it records the channels the replicator
/// opens, never opens one itself, and stays up until detached. Gated, it accepts a channel
/// only when the test calls `accept()`.
final class ScriptedConnection: ReplicationConnection {
    let remotePeer: PeerID
    let gated: Bool
    private let channels = Mutex<[ScriptedChannel]>([])
    /// Opens asked for, and those waiting for `accept()`.
    private let asks = Mutex<(count: Int, waiting: [CheckedContinuation<Void, Never>])>((0, []))

    init(remotePeer: PeerID, gated: Bool = false) {
        self.remotePeer = remotePeer
        self.gated = gated
    }

    /// Channels the replicator asked for (accepted or waiting).
    var asked: Int { asks.withLock { $0.count } }
    /// Channels accepted.
    var opened: Int { channels.withLock { $0.count } }

    /// Accepts every channel asked for so far.
    func accept() {
        for waiter in asks.withLock({ s in defer { s.waiting = [] }; return s.waiting }) { waiter.resume() }
    }
    func channel(_ index: Int) -> ScriptedChannel? { channels.withLock { index < $0.count ? $0[index] : nil } }

    func replicationBinding(localPeer: PeerID) -> SessionBinding {
        SessionBinding(remote: remotePeer, handshakeHash: [UInt8](repeating: 7, count: 32), localRole: .initiator)
    }

    func openReplicationChannel(label: [UInt8]) async throws -> any ReplicationChannel {
        if gated {
            await withCheckedContinuation { continuation in
                asks.withLock { $0.count += 1; $0.waiting.append(continuation) }
            }
        } else {
            asks.withLock { $0.count += 1 }
        }
        let channel = ScriptedChannel(label: label)
        channels.withLock { $0.append(channel) }
        return channel
    }

    func incomingReplicationChannels() -> AsyncStream<any ReplicationChannel> {
        AsyncStream { continuation in continuation.onTermination = { _ in } }
    }

    func waitUntilClosed() async {
        // Until the replicator cancels its watcher (detach, shutdown).
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
    }
}

/// One channel of a `ScriptedConnection`: what the test delivers arrives as from the remote;
/// closing it (from either side) ends its messages, as a session channel's close does.
final class ScriptedChannel: ReplicationChannel {
    let label: [UInt8]
    let messages: AsyncStream<[UInt8]>
    let messageBatches: AsyncStream<[[UInt8]]>
    private let messageInput: AsyncStream<[UInt8]>.Continuation
    private let batchInput: AsyncStream<[[UInt8]]>.Continuation
    private let sentMessages = Mutex<[[UInt8]]>([])

    init(label: [UInt8]) {
        self.label = label
        (messages, messageInput) = AsyncStream.makeStream()
        (messageBatches, batchInput) = AsyncStream.makeStream()
    }

    /// What the replicator sent on this channel.
    var sent: [[UInt8]] { sentMessages.withLock { $0 } }

    func deliver(_ batch: [[UInt8]]) { batchInput.yield(batch) }

    func send(_ messages: [[UInt8]]) async throws { sentMessages.withLock { $0 += messages } }

    func close() async {
        messageInput.finish()
        batchInput.finish()
    }
}
