import NIOCore
import NIOPosix
import Swarm

/// The floor a bootstrap node's relay is compared against (BENCHMARKS.md, bootstrap): a
/// plain SwiftNIO UDP socket that sends every datagram it receives on to one fixed endpoint,
/// unchanged — no parsing, no table, no copy into arrays. A relay can only be slower.
///
/// With `offload`, the socket also reads with UDP GRO and forwards each glued read in one
/// GSO write (the kernel path `UDPTransport`, and so the node, takes where Linux has it);
/// without, it is plain NIO: one read and one write per datagram.
public final class BootstrapForwardFloor: Sendable {
    public let localEndpoint: Endpoint
    private let channel: Channel
    private let group: MultiThreadedEventLoopGroup

    /// Binds `address` (port 0: ephemeral) and forwards everything to `target`, on an event
    /// loop thread of its own.
    public static func start(at address: Endpoint = .v4(127, 0, 0, 1, port: 0), forwardingTo target: Endpoint,
                             offload: Bool = false) async throws -> BootstrapForwardFloor {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = UDPTransport.Configuration()
        configuration.receiveOffload = offload && UDPTransport.Configuration.kernelHasOffloads
        let handler = ForwardHandler(target: target.socketAddress)
        do {
            let channel = try await DatagramBootstrap(group: group)
                .socketOptions(configuration)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
                }
                .bind(to: address.socketAddress).get()
            guard let local = channel.localAddress.flatMap(Endpoint.init) else {
                throw SwarmNIOError(.invalidAddress, "no local address after bind to \(address)")
            }
            return BootstrapForwardFloor(channel: channel, group: group, localEndpoint: local)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(channel: Channel, group: MultiThreadedEventLoopGroup, localEndpoint: Endpoint) {
        self.channel = channel
        self.group = group
        self.localEndpoint = localEndpoint
    }

    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    final class ForwardHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let target: SocketAddress

        init(target: SocketAddress) { self.target = target }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            // A glued (GRO) read leaves as one GSO write of the same segments.
            let metadata = envelope.metadata?.segmentSize.flatMap { size in
                size < envelope.data.readableBytes
                    ? AddressedEnvelope<ByteBuffer>.Metadata(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: size)
                    : nil
            }
            context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: target, data: envelope.data, metadata: metadata)),
                          promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

        func errorCaught(context: ChannelHandlerContext, error: Error) {}
    }
}
