import NIOCore
import NIOPosix
import Swarm
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `DatagramTransport` over a SwiftNIO UDP socket: the sessions' path to the network.
///
/// Reads arrive in batches (`datagramVectorReadMessageCount`: one `recvmmsg` per batch) and are
/// handed to `incoming` as one `[Datagram]` per read burst. `send` only enqueues onto the
/// channel's event loop; when the socket's send queue is above its high-water mark the
/// datagram is dropped and counted, as a full network queue would drop it, so a slow kernel
/// never blocks the caller.
///
/// Where the kernel has them (Linux ≥ 5.10), the socket uses UDP segmentation offload on
/// send and receive offload on receive, as wireguard-go and the QUIC stacks do: consecutive
/// datagrams of one `send` to one endpoint and of one size (the last of a run may be
/// shorter) leave in one write that the kernel cuts into datagrams (GSO), and datagrams of
/// one flow that arrive together come up in one read (GRO), cut here at the segment size
/// the kernel reports. Neither changes what goes on the wire or what `incoming` yields —
/// one `Datagram` per datagram — only how many trips through the kernel they take.
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
        /// Send runs of equal datagrams to one endpoint as one GSO write (`UDP_SEGMENT`).
        public var segmentationOffload: Bool = Configuration.kernelHasOffloads
        /// Let the kernel hand up datagrams of one flow together (`UDP_GRO`). Each receive
        /// slot is then `offloadSlotBytes` and there are `offloadReceiveSlots` of them.
        public var receiveOffload: Bool = Configuration.kernelHasOffloads

        public init() {}

        /// Whether this kernel supports both offloads (NIO probes it once), unless the
        /// environment says `BOOKSWARM_UDP_OFFLOAD=0` (for a device that misbehaves, or to
        /// compare).
        public static let kernelHasOffloads = System.supportsUDPSegmentationOffload && System.supportsUDPReceiveOffload
            && getenv("BOOKSWARM_UDP_OFFLOAD").map { String(cString: $0) } != "0"
        /// A receive slot with offload holds one glued read: up to a full 64 KiB UDP payload.
        public static let offloadSlotBytes = 65_536
        /// Slots per `recvmmsg` with offload: 16 × 64 KiB = 1 MiB, reused by NIO's pool.
        public static let offloadReceiveSlots = 16
        /// The kernel's cap on segments in one GSO write (`UDP_MAX_SEGMENTS`, 64 on the
        /// kernels this runs on) and on the bytes of one (a UDP payload, less slack).
        public static let maxSegmentsPerWrite = 64
        public static let maxBytesPerWrite = 65_000

        /// How many datagrams of `size` bytes one GSO write may carry.
        public static func segmentsPerWrite(_ size: Int) -> Int {
            max(1, min(maxSegmentsPerWrite, maxBytesPerWrite / max(size, 1)))
        }

        var receiveSlotBytes: Int { receiveOffload ? Configuration.offloadSlotBytes : maxDatagramBytes }
        var receiveSlots: Int { receiveOffload ? min(vectorReadCount, Configuration.offloadReceiveSlots) : vectorReadCount }
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
        /// Writes that carried several datagrams (GSO), and the datagrams they carried.
        public var segmentedWrites: Int = 0
        public var segmentedDatagrams: Int = 0
    }

    public let localEndpoint: Endpoint
    public let incoming: AsyncStream<[Datagram]>
    private let current: Mutex<Channel>
    private let continuation: AsyncStream<[Datagram]>.Continuation
    private let stats: Stats
    private let configuration: Configuration
    private let group: EventLoopGroup

    /// Binds a UDP socket to `endpoint` (port 0: an ephemeral port; the bound one is
    /// `localEndpoint`). IPv4 or IPv6 according to the address; the unspecified IPv6 address
    /// `[::]` makes a dual-stack socket (`IPV6_V6ONLY` off) that also sends to and receives
    /// from IPv4 endpoints, which `incoming` reports as IPv4.
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
            throw SwarmNIOError(.socketSetupFailed, "cannot use UDP \(endpoint): \(SwarmNIOError.reason(error))")
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
        var bootstrap = DatagramBootstrap(group: group).socketOptions(configuration)
        if endpoint.isIPv6 && endpoint.isUnspecified {
            bootstrap = bootstrap.channelOption(.socket(SocketOptionLevel(IPPROTO_IPV6), SocketOptionName(IPV6_V6ONLY)), value: 0)
        }
        // The async bind closes the socket when the bind fails (the future-based one leaves
        // it open: a descriptor lost per failed attempt of `rebind`).
        return try await bootstrap
            .channelOption(.writeBufferWaterMark, value: .init(
                low: configuration.sendQueueHighWaterBytes / 2, high: configuration.sendQueueHighWaterBytes))
            .bind(to: endpoint.socketAddress) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler)
                    return channel
                }
            }
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
        let segmenting = configuration.segmentationOffload && !stats.segmentationBroken.load(ordering: .relaxed)
        let local = localEndpoint
        channel.eventLoop.execute {
            var writer = Writer(channel: channel, stats: stats, local: local)
            var start = 0
            while start < datagrams.count {
                let end = segmenting ? Self.runEnd(datagrams, from: start) : start + 1
                writer.write(datagrams[start..<end])
                start = end
            }
            writer.finish()
        }
    }

    /// The end of the run of datagrams starting at `start` that one GSO write can carry: one
    /// endpoint, one size, except that the last may be shorter; within the kernel's caps.
    static func runEnd(_ datagrams: [Datagram], from start: Int) -> Int {
        let first = datagrams[start]
        let size = first.payload.count
        guard size > 0 else { return start + 1 }
        let limit = min(datagrams.count, start + Configuration.segmentsPerWrite(size))
        var end = start + 1
        while end < limit {
            let next = datagrams[end]
            guard next.remote == first.remote, next.payload.count <= size, !next.payload.isEmpty else { break }
            end += 1
            if next.payload.count < size { break }
        }
        return end
    }

    /// Writes on the channel's event loop, dropping what does not fit above the high-water
    /// mark, and flushes once at the end.
    private struct Writer {
        let channel: Channel
        let stats: Stats
        /// The socket's own endpoint: which families it can send to, and whether IPv4
        /// destinations go IPv4-mapped (an IPv6 socket).
        let local: Endpoint
        var written = 0
        var unflushed = 0
        /// The last destination, its socket address, or nil when this socket cannot reach it.
        var lastRemote: (endpoint: Endpoint, address: SocketAddress?)?

        init(channel: Channel, stats: Stats, local: Endpoint) {
            self.channel = channel
            self.stats = stats
            self.local = local
        }

        mutating func write(_ run: ArraySlice<Datagram>) {
            guard channel.isActive else {
                stats.sendDropped.add(run.count, ordering: .relaxed)
                return
            }
            // Above the high-water mark, first try to hand what is queued to the kernel;
            // if it still will not take it, drop rather than let memory grow.
            if !channel.isWritable && unflushed > 0 {
                channel.flush()
                unflushed = 0
            }
            guard channel.isWritable else {
                stats.sendDropped.add(run.count, ordering: .relaxed)
                return
            }
            let first = run[run.startIndex]
            // Batches usually go to one peer: build its socket address once.
            if first.remote != lastRemote?.endpoint {
                let reachable = UDPTransport.canSend(from: local, to: first.remote)
                lastRemote = (first.remote, !reachable ? nil
                              : local.isIPv6 ? first.remote.socketAddressForIPv6Socket : first.remote.socketAddress)
            }
            // An address of a family this socket cannot use (IPv6 on an IPv4 socket): NIO
            // would close the socket over it, so it is dropped here, as the kernel's error.
            guard let address = lastRemote!.address else {
                stats.sendErrors.add(run.count, ordering: .relaxed)
                return
            }
            if run.count == 1 {
                let buffer = channel.allocator.buffer(bytes: first.payload)
                channel.write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
            } else {
                let size = first.payload.count
                var buffer = channel.allocator.buffer(capacity: run.reduce(0) { $0 + $1.payload.count })
                for datagram in run { buffer.writeBytes(datagram.payload) }
                let metadata = AddressedEnvelope<ByteBuffer>.Metadata(ecnState: .transportNotCapable, packetInfo: nil,
                                                                      segmentSize: size)
                let promise = channel.eventLoop.makePromise(of: Void.self)
                let stats = self.stats
                promise.futureResult.whenFailure { error in
                    // EIO: the route's device cannot segment (wireguard-go turns GSO off on
                    // it too). Later sends go one datagram per write.
                    if let io = error as? IOError, io.errnoCode == EIO {
                        stats.segmentationBroken.store(true, ordering: .relaxed)
                    }
                }
                channel.write(AddressedEnvelope(remoteAddress: address, data: buffer, metadata: metadata), promise: promise)
                stats.segmentedWrites.add(1, ordering: .relaxed)
                stats.segmentedDatagrams.add(run.count, ordering: .relaxed)
            }
            written += run.count
            unflushed += 1
        }

        func finish() {
            if unflushed > 0 { channel.flush() }
            if written > 0 { stats.datagramsSent.add(written, ordering: .relaxed) }
        }
    }

    /// An IPv4 socket sends to IPv4; an IPv6 one to IPv6, and to IPv4 too when it is the
    /// dual-stack `[::]`.
    public func canSend(to endpoint: Endpoint) -> Bool { Self.canSend(from: localEndpoint, to: endpoint) }

    static func canSend(from local: Endpoint, to endpoint: Endpoint) -> Bool {
        guard local.isIPv6 else { return !endpoint.isIPv6 }
        return endpoint.isIPv6 || local.isUnspecified
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
            socketRestarts: stats.socketRestarts.load(ordering: .relaxed),
            segmentedWrites: stats.segmentedWrites.load(ordering: .relaxed),
            segmentedDatagrams: stats.segmentedDatagrams.load(ordering: .relaxed))
    }
}

extension DatagramBootstrap {
    /// The socket options of `configuration`: kernel buffers, vector reads and their slots,
    /// and receive offload. Shared by the transport and the raw floors measured against it.
    func socketOptions(_ configuration: UDPTransport.Configuration) -> DatagramBootstrap {
        channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.receiveBufferBytes))
            .channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(configuration.sendBufferBytes))
            .channelOption(.datagramVectorReadMessageCount, value: configuration.receiveSlots)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(
                capacity: configuration.receiveSlotBytes * configuration.receiveSlots))
            .channelOption(.datagramReceiveOffload, value: configuration.receiveOffload)
            .channelOption(.datagramReceiveSegmentSize, value: configuration.receiveOffload)
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
        let segmentedWrites = Atomic<Int>(0)
        let segmentedDatagrams = Atomic<Int>(0)
        /// A GSO write failed with EIO: segment no more on this transport.
        let segmentationBroken = Atomic<Bool>(false)
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
            // A GRO read: datagrams of `segment` bytes glued together, the last maybe shorter.
            let segment = envelope.metadata?.segmentSize.flatMap { $0 > 0 ? $0 : nil } ?? buffer.readableBytes
            repeat {
                let payload = buffer.readBytes(length: min(segment, buffer.readableBytes)) ?? []
                batch.append(Datagram(remote: remote, payload: payload))
            } while buffer.readableBytes > 0
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
