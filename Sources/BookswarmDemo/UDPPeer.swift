import NIOCore
import NIOPosix
import Sodium

/// One demo peer: an Ed25519 identity and a UDP socket on 127.0.0.1 with an ephemeral port.
/// Only loopback is ever used (../shared/MACHINE.md, network rule). Used by one task only.
final class UDPPeer {
    typealias Datagram = AddressedEnvelope<ByteBuffer>
    typealias Channel = NIOAsyncChannel<Datagram, Datagram>

    let name: String
    let identity: Ed25519.KeyPair
    let address: SocketAddress
    private var inbound: NIOAsyncChannelInboundStream<Datagram>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<Datagram>

    init(name: String, identity: Ed25519.KeyPair, address: SocketAddress,
         inbound: NIOAsyncChannelInboundStream<Datagram>, outbound: NIOAsyncChannelOutboundWriter<Datagram>) {
        self.name = name
        self.identity = identity
        self.address = address
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
    }

    static func bind(group: EventLoopGroup) async throws -> (Channel, SocketAddress) {
        let channel = try await DatagramBootstrap(group: group)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try Channel(wrappingChannelSynchronously: channel) }
            }
        guard let address = channel.channel.localAddress else { throw DemoError("socket has no local address") }
        return (channel, address)
    }

    func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
        try await outbound.write(Datagram(remoteAddress: address, data: ByteBuffer(bytes: bytes)))
    }

    func receive() async throws -> [UInt8] {
        guard let datagram = try await inbound.next() else {
            throw DemoError("\(name): socket closed (the demo's time limit closes it)")
        }
        return Array(datagram.data.readableBytesView)
    }
}
