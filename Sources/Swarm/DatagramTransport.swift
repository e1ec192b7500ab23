/// One UDP datagram and the endpoint it came from or goes to.
public struct Datagram: Sendable, Equatable {
    public var remote: Endpoint
    public var payload: [UInt8]

    public init(remote: Endpoint, payload: [UInt8]) {
        self.remote = remote
        self.payload = payload
    }
}

/// The seam between protocol logic and sockets, in the manner of wireguard-go's `conn.Bind`:
/// the UDP implementation lives in SwarmNIO (the one module that owns sockets), an in-memory
/// implementation lives beside the tests, and the same scenarios run over both.
public protocol DatagramTransport: Sendable {
    /// Where this transport receives unicast datagrams.
    var localEndpoint: Endpoint { get }

    /// Queues datagrams for sending. Never blocks and never throws: a datagram that cannot be
    /// sent is dropped and counted, as UDP would lose it anyway.
    func send(_ datagrams: [Datagram])

    /// Incoming datagrams, in the batches the socket delivers them. Exactly one consumer.
    var incoming: AsyncStream<[Datagram]> { get }

    /// Stops receiving and sending; `incoming` finishes.
    func close() async

    /// Whether datagrams to `endpoint` can leave through this transport at all (an IPv4
    /// socket cannot send to an IPv6 address). The swarm ignores sightings it could not
    /// dial, so a peer seen on both families is dialled on the one that works.
    func canSend(to endpoint: Endpoint) -> Bool
}

extension DatagramTransport {
    /// Every endpoint, unless the transport says otherwise.
    public func canSend(to endpoint: Endpoint) -> Bool { true }
}
