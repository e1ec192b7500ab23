import NIOCore
import NIOPosix
import Swarm
import Synchronization

/// The floor that the swarm's throughput is compared against: two plain SwiftNIO UDP sockets
/// on loopback, one blasting fixed-size datagrams at the other, with the same buffer and
/// vector-read options as `UDPTransport` and nothing else — no crypto, no copies into
/// arrays, no async streams.
///
/// Two variants: `offload: false` (the floor the issues name, "raw SwiftNIO UDP": one
/// `AddressedEnvelope` per datagram, one `sendmmsg` entry each), and `offload: true`, the
/// same sockets with the kernel's UDP segmentation and receive offloads (GSO: one write
/// carries up to 64 equal datagrams, cut by the kernel; GRO: one read returns them glued,
/// cut here by counting) — the path `UDPTransport` itself takes where the kernel has it.
public enum RawUDPFloor {
    public struct Result: Sendable, CustomStringConvertible {
        public var datagramsSent: Int
        public var datagramsReceived: Int
        public var seconds: Double
        public var datagramSize: Int

        public var datagramsPerSecond: Double { Double(datagramsReceived) / seconds }
        public var bytesPerSecond: Double { datagramsPerSecond * Double(datagramSize) }
        public var description: String {
            "\(Int(datagramsPerSecond)) datagrams/s (\(Int(bytesPerSecond / 1e6)) MB/s), \(datagramsReceived)/\(datagramsSent) received in \(seconds) s"
        }
    }

    /// Sends `datagramSize`-byte datagrams from one loopback socket to another for `duration`
    /// (bounded: the loop stops itself), and counts what arrives during that window.
    /// `address` is the loopback address to use (127.0.0.1 or ::1). Sender and receiver get
    /// an event loop thread each, from a group of their own, so neither starves the other
    /// and nothing else running in the process shares their threads.
    public static func measure(
        datagramSize: Int = 1200,
        duration: Duration = .seconds(1),
        address: Endpoint = .v4(127, 0, 0, 1, port: 0),
        offload: Bool = false
    ) async throws -> Result {
        precondition(datagramSize > 0 && datagramSize <= 65_000, "datagram size")
        let offload = offload && UDPTransport.Configuration.kernelHasOffloads
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.shutdownGracefully { _ in } }
        let loops = Array(group.makeIterator())
        var configuration = UDPTransport.Configuration()
        configuration.receiveOffload = offload
        let counter = CountingHandler(datagramSize: datagramSize)
        func bootstrap(_ loop: EventLoop) -> DatagramBootstrap {
            DatagramBootstrap(group: loop).socketOptions(configuration)
        }
        let receiver = try await bootstrap(loops[0])
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) }
            }
            .bind(to: address.socketAddress).get()
        let sender: Channel
        do {
            sender = try await bootstrap(loops[1]).bind(to: address.socketAddress).get()
        } catch {
            try? await receiver.close()
            throw error
        }
        guard let target = receiver.localAddress else {
            try? await receiver.close(); try? await sender.close()
            throw SwarmNIOError(.invalidAddress, "receiver has no local address")
        }

        let nanoseconds = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        let blaster = Blaster(channel: sender, target: target, size: datagramSize,
                              segments: offload ? UDPTransport.Configuration.segmentsPerWrite(datagramSize) : 1,
                              stopAt: .now() + .nanoseconds(nanoseconds))
        let start = NIODeadline.now()
        let sent = try await blaster.run()
        // Let datagrams already in the receiver's buffer drain before the count is read.
        try await Task.sleep(for: .milliseconds(50))
        let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        let result = Result(datagramsSent: sent, datagramsReceived: counter.received.load(ordering: .relaxed),
                            seconds: elapsed, datagramSize: datagramSize)
        try? await sender.close()
        try? await receiver.close()
        return result
    }

    final class CountingHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let received = Atomic<Int>(0)
        let datagramSize: Int
        init(datagramSize: Int) { self.datagramSize = datagramSize }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            // A GRO read holds several datagrams of the one size (the last may be shorter).
            let bytes = unwrapInboundIn(data).data.readableBytes
            received.add(max(1, (bytes + datagramSize - 1) / datagramSize), ordering: .relaxed)
        }
    }

    /// Writes batches of datagrams, each batch after the previous one's flush completed, so
    /// the socket is always busy but NIO's queue stays short; stops at `stopAt`. With
    /// `segments` > 1 each write is one GSO buffer of that many datagrams.
    final class Blaster: Sendable {
        let channel: Channel
        let target: SocketAddress
        let size: Int
        let segments: Int
        let stopAt: NIODeadline
        static let batch = 64

        init(channel: Channel, target: SocketAddress, size: Int, segments: Int, stopAt: NIODeadline) {
            self.channel = channel
            self.target = target
            self.size = size
            self.segments = segments
            self.stopAt = stopAt
        }

        /// Datagrams per batch: 64 single writes, or GSO writes adding up to at least 64.
        var writesPerBatch: Int { segments == 1 ? Blaster.batch : (Blaster.batch + segments - 1) / segments }

        func run() async throws -> Int {
            let done = channel.eventLoop.makePromise(of: Int.self)
            let payload = channel.allocator.buffer(repeating: 0xB5, count: size * segments)
            channel.eventLoop.execute { self.step(sent: 0, payload: payload, done: done) }
            return try await done.futureResult.get()
        }

        private func step(sent: Int, payload: ByteBuffer, done: EventLoopPromise<Int>) {
            guard NIODeadline.now() < stopAt, channel.isActive else {
                done.succeed(sent)
                return
            }
            let flushed = channel.eventLoop.makePromise(of: Void.self)
            let writes = writesPerBatch
            let metadata = segments > 1
                ? AddressedEnvelope<ByteBuffer>.Metadata(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: size)
                : nil
            for i in 0..<writes {
                let envelope = AddressedEnvelope(remoteAddress: target, data: payload, metadata: metadata)
                channel.write(envelope, promise: i == writes - 1 ? flushed : nil)
            }
            channel.flush()
            // Re-enter through the loop's task queue: a future that completed during `flush`
            // would otherwise run the next step inline and recurse without bound.
            let batch = writes * segments
            flushed.futureResult.whenComplete { _ in
                self.channel.eventLoop.execute { self.step(sent: sent + batch, payload: payload, done: done) }
            }
        }
    }
}
