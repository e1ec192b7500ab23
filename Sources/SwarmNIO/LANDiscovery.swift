import NIOCore
import NIOPosix
import Swarm

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// LAN discovery on real sockets: drives a `LANDiscoveryMachine` (PROTOCOL.md §6).
///
/// Sockets, all on one event loop so the machine needs no lock:
/// * per interface, a multicast socket bound to the IPv4 group and the
///   shared discovery port with `SO_REUSEADDR` (several processes on one host each get every
///   datagram), a membership on that interface's address, `IP_MULTICAST_IF` to it, TTL 0 on
///   loopback and 1 elsewhere, and `IP_MULTICAST_ALL` off so it hears only the memberships
///   it made itself. Options are set directly: NIO's `joinGroup` refuses `lo`, which lacks
///   the MULTICAST flag (MACHINE.md);
/// * per interface given by name, when IPv6 discovery is on (not `lo`: IPv6 multicast does
///   not deliver there), the same for the IPv6 group `ff02::4253:4c44` scoped to the
///   interface: membership, `IPV6_MULTICAST_IF` and hop limit 1 by interface index,
///   `IPV6_MULTICAST_ALL` off;
/// * one unicast socket of our own for answers (the port our queries advertise), since
///   unicast to a shared port would be split between its sockets. Dual-stack (`[::]`) when
///   IPv6 discovery may run, so one reply port serves queries of both families.
///
/// A multicast socket needs its interface's address of its family (IPv4, or an IPv6
/// link-local one). An interface given by name that exists but lacks it — down, waiting for
/// a DHCP lease, a link-local address not there yet or still tentative — is no error: that
/// socket waits, and opens when the address appears, with a query and an announcement at
/// once (`LANDiscoveryMachine.restate`). A socket that closes under us is opened again the
/// same way (`SocketPlan`).
///
/// The interfaces are looked at again within about 20 ms of the kernel announcing a change
/// of links or addresses (route netlink, `InterfaceWatcher`), and every second in any case
/// (off the loop), given ones as the LAN default (below), and followed: a socket whose own address changed or went — a new DHCP
/// address, an IPv6 link-local address gone or replaced, a new interface index (removed and
/// back), the interface down or removed — is closed and opened again on what the interface
/// has now, at once or when the address comes back, and greets as a late socket does; IPv6
/// discovery comes and goes with IPv6 on the interface (switched on or off). A given
/// interface that disappears keeps its entry and waits, with no error and nothing retried
/// until it is back. Nothing changes for an interface that stays as it was. (Loopback given
/// as 127.0.0.1 is not looked at: it cannot change.)
///
/// Instead of given interfaces, discovery can follow the LAN default
/// (`Configuration.lanDefault`, what the daemon runs on when no interface is named): the
/// interfaces that are up, multicast-capable, not loopback and have an IPv4 address
/// (`NetworkInterface.lanDefault`), looked at again every second. One that joins that set —
/// Wi-Fi coming up after the daemon started, a new veth, a lease on a link that had none — is
/// taken up as a late socket is: its sockets open and greet at once. One that leaves it is
/// dropped quietly (its sockets closed) and taken up again when it returns; one that stays is
/// followed as a given interface is. With none yet, discovery runs all the same and waits
/// (`DiscoveryInterface.anyLANWaiting`).
///
/// Both families carry the same datagrams: every query and announcement goes out on every
/// socket, and a peer on a dual-stack LAN is seen twice, once per family, each sighting with
/// the address it came from (a link-local IPv6 one with its interface as scope).
///
/// `start` opens the sockets and begins; `close` stops all traffic and finishes `sightings`.
public final class LANDiscovery: DiscoverySource {
    public struct Configuration: Sendable {
        /// Where to run: explicit (see `InterfaceSpec`); empty when `followsLANDefault`.
        public var interfaces: [InterfaceSpec]
        /// Run on the LAN default as it is at each moment (`NetworkInterface.lanDefault`,
        /// looked at again every second) instead of on `interfaces`, which must then be
        /// empty. Never the default: it multicasts on the host's real network, so tests set
        /// it only inside network namespaces of their own (MACHINE.md's network rule).
        public var followsLANDefault = false
        /// The shared discovery port: the project's (`DiscoveryGroup.port`) in real use, a
        /// test's own one in tests so they never meet a real run.
        public var port: UInt16
        /// The IPv4 group; the project's unless a test isolates itself further.
        public var group: Endpoint.Address
        /// The IPv6 group (link-local scope, `ff02::/16`); the project's unless a test
        /// isolates itself further.
        public var ipv6Group: Endpoint.Address = DiscoveryGroup.ipv6.address
        /// Runs IPv6 discovery too on the interfaces that have an IPv6 link-local address
        /// (DESIGN decision 6: "IPv6 `ff02::` where available"). Off unless asked for: turn
        /// it on when the session socket receives IPv6 (`UDPTransport` bound to `[::]`), or
        /// peers would be told of a session port that nothing serves over IPv6.
        public var ipv6 = false
        public var machine: LANDiscoveryMachine.Configuration
        /// Sightings buffered for a slow consumer; beyond it the oldest are dropped (a peer
        /// that matters announces again).
        public var sightingBuffer: Int = 1024

        public init(interfaces: [InterfaceSpec], port: UInt16 = DiscoveryGroup.port,
                    group: Endpoint.Address = DiscoveryGroup.ipv4.address,
                    machine: LANDiscoveryMachine.Configuration = .init()) {
            self.interfaces = interfaces
            self.port = port
            self.group = group
            self.machine = machine
        }

        /// Discovery on the LAN default, followed as interfaces come and go (see
        /// `followsLANDefault`).
        public static func lanDefault(port: UInt16 = DiscoveryGroup.port, group: Endpoint.Address = DiscoveryGroup.ipv4.address,
                                      machine: LANDiscoveryMachine.Configuration = .init()) -> Configuration {
            var configuration = Configuration(interfaces: [], port: port, group: group, machine: machine)
            configuration.followsLANDefault = true
            return configuration
        }
    }

    /// The machine's counters plus what the sockets refused.
    public struct Counters: Sendable, Equatable {
        public var machine: LANDiscoveryMachine.Counters
        public var sendErrors: Int
        public var sightingsDropped: Int
        /// Sockets that closed under us and were opened again.
        public var socketRestarts: Int = 0
        /// Attempts to open such a socket again, or one whose interface just got its address,
        /// that failed (it is retried every 5 s at most).
        public var socketReopenFailures: Int = 0
        /// Sockets opened after start because their interface got the address they need
        /// then — or got it back after losing it, got a new one, had IPv6 switched on, came
        /// back after it was removed, or, on the LAN default, was taken up.
        public var socketsOpenedLate: Int = 0
        /// Interfaces of the LAN default taken up after start (`followsLANDefault`).
        public var interfacesTakenUp: Int = 0
        /// Interfaces that left the LAN default and were dropped (`followsLANDefault`).
        public var interfacesDropped: Int = 0
        /// Looks at the interfaces made at once because the kernel announced a change
        /// (route netlink), rather than at the next second.
        public var looksOnChange: Int = 0
    }

    public let sightings: AsyncStream<PeerSighting>
    /// Where answers to our queries arrive.
    public let replyEndpoint: Endpoint
    public let peer: PeerID
    let core: Core

    /// Starts discovery for `peer`, whose sessions listen on `sessionPort`, on the interfaces
    /// of `configuration`: opens the sockets whose interface has its address now; the others
    /// wait for it. Fails on a name no interface has or an address none holds, or when a
    /// socket that can be opened cannot (IPv6 excepted: it is refused, shown in
    /// `interfaces`, and IPv4 runs). Following the LAN default, it starts with whatever
    /// the default is now, none included; a socket that cannot be opened is tried again.
    public static func start(
        peer: PeerID, sessionPort: UInt16, configuration: Configuration,
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> LANDiscovery {
        let follows = configuration.followsLANDefault
        guard follows ? configuration.interfaces.isEmpty : !configuration.interfaces.isEmpty else {
            throw SwarmNIOError(.invalidAddress, follows ? "LAN discovery follows the LAN default or runs on given interfaces, not both"
                                                         : "LAN discovery needs at least one interface")
        }
        guard case let .v4(g0, _, _, _) = configuration.group, (224...239).contains(g0) else {
            throw SwarmNIOError(.invalidAddress, "discovery group must be an IPv4 multicast address")
        }
        guard Endpoint(address: configuration.ipv6Group, port: 0).isLinkLocalMulticast else {
            throw SwarmNIOError(.invalidAddress, "IPv6 discovery group must be a link-local multicast address (ff02::/16)")
        }
        // A name no interface has, or an address none holds, is an error now (a typo); an
        // interface that exists but lacks an address waits for it.
        let interfaces: [InterfaceSpec.Resolved]
        if follows {
            let all = NetworkInterface.all()
            interfaces = NetworkInterface.lanDefault(among: all).compactMap { try? InterfaceSpec.named($0.name).resolve(among: all) }
        } else {
            interfaces = try configuration.interfaces.map { try $0.resolve() }
        }
        let ipv6Runs = configuration.ipv6 && NetworkInterface.ipv6Supported
        let loop = group.next()
        let (stream, continuation) = AsyncStream<PeerSighting>.makeStream(
            bufferingPolicy: .bufferingNewest(configuration.sightingBuffer))
        let core = Core(loop: loop, continuation: continuation)

        var wanted: [Core.Socket] = []
        for (position, interface) in interfaces.enumerated() {
            wanted.append(Core.Socket(plan: .multicast4(interface, group: Endpoint(address: configuration.group, port: configuration.port)),
                                      interface: position))
            if ipv6Runs, interface.ipv6Capable {
                let group = Endpoint(address: configuration.ipv6Group, port: configuration.port, scopeID: interface.index)
                wanted.append(Core.Socket(plan: .multicast6(interface, group: group), interface: position))
            }
        }
        var channels: [Channel] = []
        do {
            // IPv6 is best effort: an interface whose IPv6 socket cannot be set up (an old
            // kernel, IPv6 switched off under us) keeps IPv4 discovery.
            var multicast: [Core.Socket] = []
            var ipv6Refused: [String: String] = [:]
            for var socket in wanted {
                guard socket.plan.isReady else {
                    socket.waiting = true
                    socket.late = true
                    multicast.append(socket)
                    continue
                }
                do {
                    let channel = try await socket.plan.open(core: core, loop: loop)
                    channels.append(channel)
                    socket.channel = channel
                    multicast.append(socket)
                } catch let error where socket.plan.family == "IPv6" {
                    ipv6Refused[interfaces[socket.interface ?? 0].name] = (error as? SwarmNIOError)?.detail ?? "\(error)"
                } catch where follows {
                    // Not this run's mistake but the moment's (the address went as we
                    // opened): the socket is opened again, as one taken up later would be.
                    socket.waiting = true
                    socket.late = true
                    multicast.append(socket)
                }
            }
            // The unicast socket listens where peers can reach us: the interface's own address
            // when there is one interface given by its IPv4 address, every address otherwise
            // (of both families when IPv6 discovery may run on some interface, now or later:
            // one given by name may get IPv6, switched on or multicast-capable after start;
            // following the LAN default, any interface may come with IPv6).
            let dualStack = ipv6Runs && (follows || interfaces.contains(where: \.mayRunIPv6))
            let unicastBind: Endpoint
            if dualStack {
                unicastBind = Endpoint(address: Endpoint.ipv6Unspecified, port: 0)
            } else if interfaces.count == 1, interfaces[0].spec.isAddress, let v4 = interfaces[0].ipv4 {
                // Given by its address (loopback among them): that address. A named interface
                // gets every address, so a new one (DHCP) does not strand the socket.
                unicastBind = Endpoint(address: v4, port: 0)
            } else {
                unicastBind = .v4(0, 0, 0, 0, port: 0)
            }
            let unicast = try await SocketPlan.unicast(unicastBind).open(core: core, loop: loop)
            channels.append(unicast)
            guard let reply = unicast.localAddress.flatMap(Endpoint.init) else {
                throw SwarmNIOError(.socketSetupFailed, "unicast socket has no local address")
            }
            let machine = LANDiscoveryMachine(peer: peer, sessionPort: sessionPort, replyPort: reply.port,
                                              configuration: configuration.machine)
            // Reopened, the unicast socket must keep its port: queries advertise it.
            let unicastPlan = SocketPlan.unicast(Endpoint(address: unicastBind.address, port: reply.port))
            let sockets = [Core.Socket(plan: unicastPlan, channel: unicast)] + multicast
            let given = interfaces.map { (name: $0.name, spec: $0.spec) }
            let refused = ipv6Refused
            let groups = Core.Groups(
                group4: Endpoint(address: configuration.group, port: configuration.port),
                group6: ipv6Runs ? Endpoint(address: configuration.ipv6Group, port: configuration.port) : nil)
            try await loop.submit {
                core.attach(machine: machine, sockets: sockets, interfaces: given, ipv6Refused: refused, groups: groups,
                            followsLANDefault: follows)
            }.get()
            return LANDiscovery(sightings: stream, replyEndpoint: reply, peer: peer, core: core)
        } catch {
            for channel in channels { try? await channel.close() }
            continuation.finish()
            if let error = error as? SwarmNIOError { throw error }
            throw SwarmNIOError(.socketSetupFailed, "LAN discovery on \(configuration.interfaces): \(error)")
        }
    }

    private init(sightings: AsyncStream<PeerSighting>, replyEndpoint: Endpoint, peer: PeerID, core: Core) {
        self.sightings = sightings
        self.replyEndpoint = replyEndpoint
        self.peer = peer
        self.core = core
    }

    public func join(_ topic: Topic, announce: Bool, lookup: Bool) async {
        let core = self.core
        try? await core.loop.submit { core.join(topic, announce: announce, lookup: lookup) }.get()
    }

    public func leave(_ topic: Topic) async {
        let core = self.core
        try? await core.loop.submit { core.leave(topic) }.get()
    }

    public var sightingsDelivered: Int { core.sightingsDelivered.load(ordering: .relaxed) }

    public func flushed(_ topic: Topic) async {
        let core = self.core
        let future = try? await core.loop.submit { core.flushedFuture(topic) }.get()
        try? await future?.get()
    }

    public func close() async {
        let core = self.core
        let channels = (try? await core.loop.submit { core.shutdown() }.get()) ?? []
        for channel in channels { try? await channel.close() }
    }

    public var counters: Counters {
        get async {
            let core = self.core
            return (try? await core.loop.submit { core.counters }.get())
                ?? Counters(machine: .init(), sendErrors: 0, sightingsDropped: 0)
        }
    }

    /// Closes socket `index` (0: the unicast one, then the multicast ones in interface
    /// order, IPv4 before IPv6) as a fatal send error would, without closing discovery (tests).
    func closeSocketUnderneath(_ index: Int) async {
        let core = self.core
        let channel = try? await core.loop.submit { core.channel(index) }.get()
        if let channel = channel ?? nil { try? await channel.close() }
    }

    /// Interfaces where IPv6 discovery was wanted but could not be set up, with the reason
    /// (IPv4 discovery runs there).
    public var ipv6Refused: [String: String] {
        get async {
            let core = self.core
            return (try? await core.loop.submit { core.ipv6Refused }.get()) ?? [:]
        }
    }

    /// The IPv4 address of each interface discovery runs on now (or is opening a socket
    /// on), loopback left out: what a bootstrap client offers peers behind the same NAT.
    public var ipv4Addresses: [Endpoint.Address] {
        get async {
            let core = self.core
            return (try? await core.loop.submit { core.ipv4Addresses }.get()) ?? []
        }
    }

    /// Calls `handler` with `ipv4Addresses` at once and then whenever they change (an
    /// interface taken up or dropped, an address that came or changed), on discovery's
    /// event loop: it must return quickly. Replaces an earlier handler; none after `close`.
    public func observeIPv4Addresses(_ handler: @escaping @Sendable ([Endpoint.Address]) -> Void) async {
        let core = self.core
        try? await core.loop.submit { core.observeIPv4Addresses(handler) }.get()
    }

    /// How discovery runs on each of its interfaces now, in the configuration's order (named
    /// as the kernel names them), or for the LAN default by name: the families it runs on,
    /// those it waits for, and why IPv6 failed where it did. The LAN default with no
    /// interface yet shows as `DiscoveryInterface.anyLANWaiting`.
    public var interfaces: [DiscoveryInterface] {
        get async {
            let core = self.core
            return (try? await core.loop.submit { core.interfaces }.get()) ?? []
        }
    }

    // MARK: - Sockets

    /// One of discovery's sockets, as a recipe: opened at start, or once its interface has
    /// the address it needs, and opened again the same way when it closes under us. (NIO
    /// closes a datagram socket on most send errors — a link-local source address not yet
    /// usable, an interface gone down — although for UDP each concerns one datagram.)
    enum SocketPlan: Sendable {
        /// Our own socket for answers; dual-stack when bound to `[::]`.
        case unicast(Endpoint)
        /// The IPv4 group on one interface, joined by the interface's IPv4 address.
        case multicast4(InterfaceSpec.Resolved, group: Endpoint)
        /// The IPv6 group scoped to one interface (the group's scope is its index), joined by
        /// its index.
        case multicast6(InterfaceSpec.Resolved, group: Endpoint)

        /// Where `.multicast` actions go through this socket; nil for the unicast one.
        var group: SocketAddress? {
            switch self {
            case .unicast: nil
            case let .multicast4(_, group), let .multicast6(_, group): group.socketAddress
            }
        }

        var isDualStack: Bool {
            if case let .unicast(bind) = self { return bind.isIPv6 }
            return false
        }

        /// "IPv4" or "IPv6" for a multicast socket (as `DiscoveryInterface` shows them); nil
        /// for the unicast one.
        var family: String? {
            switch self {
            case .unicast: nil
            case .multicast4: "IPv4"
            case .multicast6: "IPv6"
            }
        }

        /// Whether it can be opened: its interface has an address of the socket's family.
        var isReady: Bool {
            switch self {
            case .unicast: true
            case let .multicast4(interface, _): interface.ipv4 != nil
            case let .multicast6(interface, _): interface.ipv6LinkLocal != nil
            }
        }

        /// The same socket for the interface as it is now: a named interface may have a new
        /// IPv4 address (DHCP), a new index (unplugged and back), or an address it lacked.
        /// One that cannot be looked up any more (gone) keeps its name and index and has no
        /// address (`lost`): the socket waits until it is back.
        func refreshed() -> SocketPlan {
            switch self {
            case .unicast:
                return self
            case let .multicast4(interface, _), let .multicast6(interface, _):
                if let now = try? interface.spec.resolve() { return on(now) }
                return lost()
            }
        }

        /// The same socket for its interface gone: same name and index, no address.
        func lost() -> SocketPlan {
            switch self {
            case .unicast:
                return self
            case let .multicast4(interface, _), let .multicast6(interface, _):
                var gone = interface
                gone.ipv4 = nil
                gone.ipv6LinkLocal = nil
                return on(gone)
            }
        }

        /// The same socket for the interface as `now` has it.
        func on(_ now: InterfaceSpec.Resolved) -> SocketPlan {
            switch self {
            case .unicast:
                return self
            case let .multicast4(_, group):
                return .multicast4(now, group: group)
            case let .multicast6(_, group):
                return .multicast6(now, group: Endpoint(address: group.address, port: group.port, scopeID: now.index))
            }
        }

        /// Whether a socket opened by this plan no longer fits its interface as `fresh` (the
        /// same plan, looked up again) has it: IPv4 membership and sending go by the
        /// interface's address, IPv6 ones by its index; and a socket whose address went or
        /// changed must greet from the new one (peers know us by the address we send from).
        /// What else changes on the interface (the other family's address) leaves it alone.
        func isStale(for fresh: SocketPlan) -> Bool {
            switch (self, fresh) {
            case let (.multicast4(was, _), .multicast4(now, _)):
                was.ipv4 != now.ipv4 || was.index != now.index
            case let (.multicast6(was, _), .multicast6(now, _)):
                was.ipv6LinkLocal != now.ipv6LinkLocal || was.index != now.index
            default:
                false
            }
        }

        func open(core: Core, loop: EventLoop) async throws -> Channel {
            switch self {
            case let .unicast(bind):
                var bootstrap = DatagramBootstrap(group: loop)
                if bind.isIPv6 {
                    bootstrap = bootstrap.channelOption(.socket(SocketOptionLevel(IPPROTO_IPV6), SocketOptionName(IPV6_V6ONLY)), value: 0)
                }
                return try await LANDiscovery.bind(bootstrap, to: bind, socket: .unicast, core: core)
            case let .multicast4(interface, group):
                guard let address = interface.ipv4Bytes else {
                    throw SwarmNIOError(.invalidAddress, "interface \(interface.name) has no IPv4 address")
                }
                return try await LANDiscovery.openMulticast(on: interface, address: address, group: group, core: core, loop: loop)
            case let .multicast6(interface, group):
                guard interface.ipv6LinkLocal != nil else {
                    throw SwarmNIOError(.invalidAddress, "interface \(interface.name) has no IPv6 link-local address")
                }
                return try await LANDiscovery.openMulticast6(on: interface, group: group, core: core, loop: loop)
            }
        }
    }

    /// Binds with the receive handler installed. The async bind closes the socket when the
    /// bind fails (the future-based one leaves it open: a descriptor lost per attempt of a
    /// reopen that keeps failing).
    fileprivate static func bind(_ bootstrap: DatagramBootstrap, to endpoint: Endpoint, socket: LANDiscoveryMachine.Socket,
                                 core: Core) async throws -> Channel {
        try await bootstrap.bind(to: endpoint.socketAddress) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ReceiveHandler(core: core, socket: socket))
                return channel
            }
        }
    }

    fileprivate static func openMulticast(
        on interface: InterfaceSpec.Resolved, address: [UInt8], group: Endpoint, core: Core, loop: EventLoop
    ) async throws -> Channel {
        // Bound to the group address, the socket only hears datagrams sent to the group.
        let channel = try await bind(DatagramBootstrap(group: loop).channelOption(.socketOption(.so_reuseaddr), value: 1),
                                     to: group, socket: .multicast, core: core)
        do {
            guard let options = channel as? SocketOptionProvider else {
                throw SwarmNIOError(.socketSetupFailed, "channel offers no socket options")
            }
            try await MulticastOptions.apply(to: options, group: group.addressBytes, address: address, loopback: interface.isLoopback)
        } catch {
            try? await channel.close()
            throw SwarmNIOError(.socketSetupFailed, "multicast on \(interface.name): \(error)")
        }
        return channel
    }

    /// The IPv6 twin of `openMulticast`: bound to the link-local group scoped to the
    /// interface (which also binds the socket to that interface), joined by interface index.
    fileprivate static func openMulticast6(
        on interface: InterfaceSpec.Resolved, group: Endpoint, core: Core, loop: EventLoop
    ) async throws -> Channel {
        let channel: Channel
        do {
            channel = try await bind(
                DatagramBootstrap(group: loop)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(.socket(SocketOptionLevel(IPPROTO_IPV6), SocketOptionName(IPV6_V6ONLY)), value: 1),
                to: group, socket: .multicast, core: core)
        } catch {
            throw SwarmNIOError(.socketSetupFailed, "IPv6 multicast on \(interface.name): \(SwarmNIOError.reason(error))")
        }
        do {
            guard let options = channel as? SocketOptionProvider else {
                throw SwarmNIOError(.socketSetupFailed, "channel offers no socket options")
            }
            try await MulticastOptions.apply6(to: options, group: group.addressBytes, interfaceIndex: interface.index)
        } catch {
            try? await channel.close()
            throw SwarmNIOError(.socketSetupFailed, "IPv6 multicast on \(interface.name): \(SwarmNIOError.reason(error))")
        }
        return channel
    }

    /// Reads datagrams on one of the sockets and hands them to the core, on the loop.
    final class ReceiveHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let core: Core
        let socket: LANDiscoveryMachine.Socket

        init(core: Core, socket: LANDiscoveryMachine.Socket) {
            self.core = core
            self.socket = socket
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard let source = Endpoint(envelope.remoteAddress) else { return }
            var buffer = envelope.data
            // Anything longer than the largest valid datagram is garbage; read one byte more
            // so the decoder still sees it as malformed.
            let payload = buffer.readBytes(length: min(buffer.readableBytes, DiscoveryMessage.maxLength + 1)) ?? []
            core.receive(payload, from: source, on: socket)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            core.countSendError()
        }
    }
}

/// Socket options NIO offers no safe wrapper for. Per NIO's own guidance, the unsafe
/// setters are called from non-public, non-inlinable code.
enum MulticastOptions {
    /// Linux `IP_MULTICAST_ALL` (linux/in.h): 0 makes a socket hear only its own memberships.
    static let ipMulticastAll: Int32 = 49

    /// Linux `IPV6_MULTICAST_ALL` (linux/in6.h), the IPv6 twin of `IP_MULTICAST_ALL`.
    static let ipv6MulticastAll: Int32 = 29

    /// IPv4: membership on the interface with `address`, sending through it, TTL 0 on
    /// loopback and 1 elsewhere.
    static func apply(to options: SocketOptionProvider, group: [UInt8], address: [UInt8], loopback: Bool) async throws {
        var membership = ip_mreq()
        withUnsafeMutableBytes(of: &membership.imr_multiaddr) { raw in for i in 0..<4 { raw[i] = group[i] } }
        withUnsafeMutableBytes(of: &membership.imr_interface) { raw in for i in 0..<4 { raw[i] = address[i] } }
        var outgoing = in_addr()
        withUnsafeMutableBytes(of: &outgoing) { raw in for i in 0..<4 { raw[i] = address[i] } }

        #if os(Linux)
        try await options.unsafeSetSocketOption(
            level: SocketOptionLevel(IPPROTO_IP), name: SocketOptionName(ipMulticastAll), value: CInt(0)).get()
        #endif
        try await options.unsafeSetSocketOption(
            level: SocketOptionLevel(IPPROTO_IP), name: SocketOptionName(IP_ADD_MEMBERSHIP), value: membership).get()
        try await options.setIPMulticastIF(outgoing).get()
        // TTL 0 keeps loopback datagrams on the host; TTL 1 keeps the rest on the link.
        try await options.setIPMulticastTTL(loopback ? 0 : 1).get()
        // Loop stays on: other processes on this host are peers too. Our own datagrams come
        // back and are filtered by peer id (IP_MULTICAST_LOOP=0 has no effect on lo anyway).
        try await options.setIPMulticastLoop(1).get()
    }

    /// IPv6: membership on the interface with index `interfaceIndex`, sending through it,
    /// hop limit 1, loop on (other processes on this host are peers too).
    static func apply6(to options: SocketOptionProvider, group: [UInt8], interfaceIndex: UInt32) async throws {
        var membership = ipv6_mreq()
        withUnsafeMutableBytes(of: &membership.ipv6mr_multiaddr) { raw in for i in 0..<16 { raw[i] = group[i] } }
        membership.ipv6mr_interface = interfaceIndex
        let level = SocketOptionLevel(IPPROTO_IPV6)
        #if os(Linux)
        // Linux ≥ 4.20. Without it the socket may also hear groups other sockets of this
        // process joined on the same port — only ours, which the decoder sorts out.
        try? await options.unsafeSetSocketOption(level: level, name: SocketOptionName(ipv6MulticastAll), value: CInt(0)).get()
        #endif
        try await options.unsafeSetSocketOption(level: level, name: SocketOptionName(IPV6_ADD_MEMBERSHIP), value: membership).get()
        try await options.unsafeSetSocketOption(level: level, name: SocketOptionName(IPV6_MULTICAST_IF), value: CInt(bitPattern: interfaceIndex)).get()
        try await options.unsafeSetSocketOption(level: level, name: SocketOptionName(IPV6_MULTICAST_HOPS), value: CInt(1)).get()
        try await options.unsafeSetSocketOption(level: level, name: SocketOptionName(IPV6_MULTICAST_LOOP), value: CUnsignedInt(1)).get()
    }
}
