import NIOCore
import NIOPosix
import Swarm
import Synchronization

/// `DatagramTransport` over a SwiftNIO UDP socket: the sessions' path to the network.
///
/// Reads arrive in batches (`datagramVectorReadMessageCount`: one `recvmmsg` per batch) and are
/// handed to `incoming` as one `[Datagram]` per read burst. `send` only enqueues onto the
/// channel's event loop; when the socket's send queue is above its high-water mark the
/// datagram is dropped and counted, as a full network queue would drop it, so a slow kernel
/// never blocks the caller.
public final class UDPTransport: DatagramTransport {
    public struct Configuration: Sendable {
        /// Kernel receive buffer. 4 MiB absorbs a burst of ~3,500 full-size datagrams while
        /// the consumer is busy (MACHINE.md: it measurably raises the loopback rate).
        public var receiveBufferBytes: Int = 4 << 20
        /// Kernel send buffer, for the same reason on the sending side.
        public var sendBufferBytes: Int = 4 << 20
        /// Datagrams per `recvmmsg`: 32 amortises the syscall without holding memory for
        /// long batches.
        public var vectorReadCount: Int = 32
        /// Largest datagram received intact; bigger ones are truncated by the kernel and
        /// left for the protocol layer to reject. Payloads are ≤ 1200 bytes by design
        /// (DESIGN decision 5), so 2048 leaves room for any header growth.
        public var maxDatagramBytes: Int = 2048
        /// Batches buffered for a slow consumer before new ones are dropped and counted.
        public var incomingBufferBatches: Int = 4096
        /// Bytes queued in NIO above which `send` drops instead of queueing.
        public var sendQueueHighWaterBytes: Int = 4 << 20

        public init() {}
    }

    /// What the transport dropped, and why. Read at any time from any thread.
    public struct Counters: Sendable, Equatable {
        public var datagramsSent: Int
        public var datagramsReceived: Int
        /// `send` found the queue full (or the transport closed).
        public var sendDropped: Int
        /// The kernel refused a datagram (e.g. no route).
        public var sendErrors: Int
        /// `incoming`'s consumer fell behind by more than `incomingBufferBatches`.
        public var receiveDropped: Int
        /// The socket was closed under us (a fatal send error) and bound again.
        public var socketRestarts: Int
    }

    public let localEndpoint: Endpoint
    public let incoming: AsyncStream<[Datagram]>
    private let current: Mutex<Channel>
    private let continuation: AsyncStream<[Datagram]>.Continuation
    private let stats: Stats
    private let configuration: Configuration
    private let group: EventLoopGroup

    /// Binds a UDP socket to `endpoint` (port 0: an ephemeral port; the bound one is
    /// `localEndpoint`). IPv4 or IPv6 according to the address.
    public static func bind(
        _ endpoint: Endpoint,
        configuration: Configuration = Configuration(),
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> UDPTransport {
        let stats = Stats()
        let (stream, continuation) = AsyncStream<[Datagram]>.makeStream(
            bufferingPolicy: .bufferingOldest(configuration.incomingBufferBatches))
        let channel: Channel
        do {
            channel = try await makeChannel(endpoint, configuration: configuration, group: group,
                                            continuation: continuation, stats: stats)
        } catch {
            continuation.finish()
            throw SwarmNIOError(.socketSetupFailed, "bind \(endpoint): \(error)")
        }
        guard let local = channel.localAddress.flatMap(Endpoint.init) else {
            try? await channel.close()
            throw SwarmNIOError(.invalidAddress, "no local address after bind to \(endpoint)")
        }
        let transport = UDPTransport(channel: channel, localEndpoint: local, incoming: stream, continuation: continuation,
                                     stats: stats, configuration: configuration, group: group)
        transport.watch(channel)
        return transport
    }

    static func makeChannel(_ endpoint: Endpoint, configuration: Configuration, group: EventLoopGroup,
                            continuation: AsyncStream<[Datagram]>.Continuation, stats: Stats) async throws -> Channel {
        let handler = ReceiveHandler(continuation: continuation, stats: stats)
        return try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.receiveBufferBytes))
            .channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(configuration.sendBufferBytes))
            .channelOption(.datagramVectorReadMessageCount, value: configuration.vectorReadCount)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(
                capacity: configuration.maxDatagramBytes * configuration.vectorReadCount))
            .channelOption(.writeBufferWaterMark, value: .init(
                low: configuration.sendQueueHighWaterBytes / 2, high: configuration.sendQueueHighWaterBytes))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .bind(to: endpoint.socketAddress)
            .get()
    }

    private init(channel: Channel, localEndpoint: Endpoint, incoming: AsyncStream<[Datagram]>,
                 continuation: AsyncStream<[Datagram]>.Continuation, stats: Stats,
                 configuration: Configuration, group: EventLoopGroup) {
        self.current = Mutex(channel)
        self.localEndpoint = localEndpoint
        self.incoming = incoming
        self.continuation = continuation
        self.stats = stats
        self.configuration = configuration
        self.group = group
    }

    /// The socket, replaced if the kernel or NIO closes it under us.
    private var channel: Channel { current.withLock { $0 } }

    /// NIO closes a datagram channel on most `sendmsg` errors (EPERM from a firewall rule,
    /// ENETUNREACH while a route is missing, …), although for UDP each concerns one datagram.
    /// A peer must outlive a partition, so when the socket closes without `close()` we bind
    /// a new one on the same address and port, retrying with a growing pause, and carry on
    /// with the same `incoming` stream. Sends in the gap are dropped and counted.
    private func watch(_ channel: Channel) {
        channel.closeFuture.whenComplete { [self] _ in
            guard !stats.closed.load(ordering: .acquiring) else {
                continuation.finish()
                return
            }
            Task { await self.rebind() }
        }
    }

    /// Closes the socket as a fatal error would, without closing the transport (tests).
    func closeSocketUnderneath() async {
        try? await channel.close()
    }

    private func rebind() async {
        var pause = Duration.milliseconds(50)
        while !stats.closed.load(ordering: .acquiring) {
            if let fresh = try? await Self.makeChannel(localEndpoint, configuration: configuration, group: group,
                                                       continuation: continuation, stats: stats) {
                current.withLock { $0 = fresh }
                stats.socketRestarts.add(1, ordering: .relaxed)
                if stats.closed.load(ordering: .acquiring) {
                    try? await fresh.close()
                } else {
                    watch(fresh)
                }
                return
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(1))
        }
        continuation.finish()
    }

    public func send(_ datagrams: [Datagram]) {
        guard !datagrams.isEmpty else { return }
        let channel = self.channel
        let stats = self.stats
        // After close() the drop is counted here and now, not after a hop to a loop that
        // may be busy: a caller reading the counters right after sees it.
        guard !stats.closed.load(ordering: .acquiring) else {
            stats.sendDropped.add(datagrams.count, ordering: .relaxed)
            return
        }
        channel.eventLoop.execute {
            var written = 0
            var unflushed = 0
            var lastRemote: (endpoint: Endpoint, address: SocketAddress)?
            for datagram in datagrams {
                guard channel.isActive else {
                    stats.sendDropped.add(1, ordering: .relaxed)
                    continue
                }
                // Above the high-water mark, first try to hand what is queued to the kernel;
                // if it still will not take it, drop rather than let memory grow.
                if !channel.isWritable && unflushed > 0 {
                    channel.flush()
                    unflushed = 0
                }
                guard channel.isWritable else {
                    stats.sendDropped.add(1, ordering: .relaxed)
                    continue
                }
                // Batches usually go to one peer: build its socket address once.
                if datagram.remote != lastRemote?.endpoint {
                    lastRemote = (datagram.remote, datagram.remote.socketAddress)
                }
                let buffer = channel.allocator.buffer(bytes: datagram.payload)
                let envelope = AddressedEnvelope(remoteAddress: lastRemote!.address, data: buffer)
                channel.write(envelope, promise: nil)
                written += 1
                unflushed += 1
            }
            if unflushed > 0 { channel.flush() }
            if written > 0 { stats.datagramsSent.add(written, ordering: .relaxed) }
        }
    }

    public func close() async {
        stats.closed.store(true, ordering: .releasing)
        try? await channel.close()
    }

    public var counters: Counters {
        Counters(
            datagramsSent: stats.datagramsSent.load(ordering: .relaxed),
            datagramsReceived: stats.datagramsReceived.load(ordering: .relaxed),
            sendDropped: stats.sendDropped.load(ordering: .relaxed),
            sendErrors: stats.sendErrors.load(ordering: .relaxed),
            receiveDropped: stats.receiveDropped.load(ordering: .relaxed),
            socketRestarts: stats.socketRestarts.load(ordering: .relaxed))
    }
}

extension UDPTransport {
    final class Stats: Sendable {
        let datagramsSent = Atomic<Int>(0)
        let datagramsReceived = Atomic<Int>(0)
        let sendDropped = Atomic<Int>(0)
        let sendErrors = Atomic<Int>(0)
        let receiveDropped = Atomic<Int>(0)
        let socketRestarts = Atomic<Int>(0)
        let closed = Atomic<Bool>(false)
    }

    /// Collects one read burst into a batch and yields it when NIO says the burst is over.
    final class ReceiveHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>

        private let continuation: AsyncStream<[Datagram]>.Continuation
        private let stats: Stats
        // Touched only on the channel's event loop.
        nonisolated(unsafe) private var batch: [Datagram] = []

        init(continuation: AsyncStream<[Datagram]>.Continuation, stats: Stats) {
            self.continuation = continuation
            self.stats = stats
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard let remote = Endpoint(envelope.remoteAddress) else { return }
            var buffer = envelope.data
            let payload = buffer.readBytes(length: buffer.readableBytes) ?? []
            batch.append(Datagram(remote: remote, payload: payload))
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            guard !batch.isEmpty else { return }
            let count = batch.count
            stats.datagramsReceived.add(count, ordering: .relaxed)
            if case .dropped = continuation.yield(batch) {
                stats.receiveDropped.add(count, ordering: .relaxed)
            }
            batch.removeAll(keepingCapacity: true)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            // UDP errors (ICMP unreachable reported on a later call, ENETUNREACH on send)
            // concern one datagram, never the socket: count and carry on.
            stats.sendErrors.add(1, ordering: .relaxed)
        }

        func channelInactive(context: ChannelHandlerContext) {
            // The stream outlives one socket (see `watch`): it finishes when the transport
            // is closed, not when a socket is.
            if !batch.isEmpty { continuation.yield(batch); batch.removeAll() }
            context.fireChannelInactive()
        }
    }
}
