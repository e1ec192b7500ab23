import NIOCore
import Swarm

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension LANDiscovery {
    /// The machine and everything around it, confined to one event loop: every method runs on
    /// `loop` (the sockets' loop), so the state needs no lock. Reads the clocks and the
    /// random generator the machine must not read itself, performs its actions, and keeps
    /// one timer armed for its next deadline.
    final class Core: @unchecked Sendable {
        let loop: EventLoop
        private let continuation: AsyncStream<PeerSighting>.Continuation
        private var machine: LANDiscoveryMachine?
        /// One of discovery's sockets: its recipe, and its channel while it is open.
        struct Socket {
            var plan: SocketPlan
            var channel: Channel?
            /// The position of its interface in the configuration; nil for the unicast socket.
            var interface: Int?
            /// Its interface has no address of its family (at the last look): it is looked up
            /// again every `lookInterval`, and sends leave it out.
            var waiting = false
            /// It has waited for that address and not been open since: when it opens, it
            /// counts as opened late and restates everything joined.
            var late = false
        }

        /// How often an interface is looked up again while a socket waits for its address.
        static let lookInterval: TimeAmount = .seconds(1)

        /// Every socket; the first is the unicast one.
        private var sockets: [Socket] = []
        /// The configuration's interfaces, by the names the kernel gives them.
        private var names: [String] = []
        private(set) var ipv6Refused: [String: String] = [:]
        private var socketRestarts = 0
        private var reopenFailures = 0
        private var socketsOpenedLate = 0
        private var timer: Scheduled<Void>?
        private var timerDeadline: NIODeadline?
        private var rng = SystemRandomNumberGenerator()
        /// Topics whose first lookup round is over (or that do not look up).
        private var flushedTopics: Set<Topic> = []
        private var waiters: [Topic: [EventLoopPromise<Void>]] = [:]
        private var sendErrors = 0
        private var sightingsDropped = 0
        private var closed = false

        init(loop: EventLoop, continuation: AsyncStream<PeerSighting>.Continuation) {
            self.loop = loop
            self.continuation = continuation
        }

        /// Takes over the sockets: watches the open ones, and starts looking for the address
        /// of those that wait.
        func attach(machine: LANDiscoveryMachine, sockets: [Socket], interfaces names: [String], ipv6Refused: [String: String]) {
            loop.preconditionInEventLoop()
            self.machine = machine
            self.sockets = sockets
            self.names = names
            self.ipv6Refused = ipv6Refused
            for (index, socket) in sockets.enumerated() {
                if let channel = socket.channel { watch(index, channel) } else { open(index, after: Self.lookInterval) }
            }
        }

        func channel(_ index: Int) -> Channel? {
            loop.preconditionInEventLoop()
            return sockets.indices.contains(index) ? sockets[index].channel : nil
        }

        /// When socket `index` closes and we did not close it, opens it again.
        private func watch(_ index: Int, _ channel: Channel) {
            channel.closeFuture.whenComplete { [self] _ in
                loop.execute { [self] in
                    guard !closed, sockets[index].channel === channel else { return }
                    sockets[index].channel = nil
                    open(index, after: .milliseconds(50))
                }
            }
        }

        /// Opens socket `index` after `pause` on its interface as it is then, looked up again
        /// off the loop (`getifaddrs`): a socket that closed under us, or one that waits for
        /// its interface's address. Without that address it waits: looked up again every
        /// `lookInterval`, which is no failure. An open that fails is counted and tried again
        /// after twice the pause (at most 5 s). Sends meanwhile are dropped — counted as
        /// errors, except through a socket that waits — and announcements repeat. A socket
        /// that opens after waiting sends a query and an announcement at once.
        private func open(_ index: Int, after pause: TimeAmount) {
            loop.scheduleTask(in: pause) { [self] in
                guard !closed else { return }
                let plan = sockets[index].plan
                Task { [self] in
                    let fresh = plan.refreshed()
                    let channel = fresh.isReady ? try? await fresh.open(core: self, loop: loop) : nil
                    loop.execute { [self] in
                        guard !closed else { channel?.close(promise: nil); return }
                        sockets[index].plan = fresh
                        sockets[index].waiting = !fresh.isReady
                        guard fresh.isReady else {
                            sockets[index].late = true
                            open(index, after: Self.lookInterval)
                            return
                        }
                        guard let channel else {
                            reopenFailures += 1
                            open(index, after: min(pause * 2, .seconds(5)))
                            return
                        }
                        sockets[index].channel = channel
                        watch(index, channel)
                        if sockets[index].late {
                            sockets[index].late = false
                            socketsOpenedLate += 1
                            greet(through: index)
                        } else {
                            socketRestarts += 1
                        }
                    }
                }
            }
        }

        /// Sends the machine's `restate` (a query and an announcement of everything joined)
        /// through socket `index` alone: the others have been carrying them all along.
        private func greet(through index: Int) {
            guard var machine, let group = sockets[index].plan.group else { return }
            let actions = machine.restate(at: now)
            self.machine = machine
            for case let .multicast(bytes) in actions { send(bytes, to: group, on: sockets[index].channel) }
            rearm()
        }

        private var now: LANDiscoveryMachine.Time {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return .init(monotonic: .now(), unixSeconds: UInt64(max(0, ts.tv_sec)))
        }

        func join(_ topic: Topic, announce: Bool, lookup: Bool) {
            loop.preconditionInEventLoop()
            guard !closed, var machine else { return }
            let wasLooking = machine.joined[topic]?.lookup ?? false
            if lookup && !wasLooking { flushedTopics.remove(topic) }
            let actions = machine.join(topic, announce: announce, lookup: lookup, at: now, rng: &rng)
            self.machine = machine
            perform(actions)
        }

        func leave(_ topic: Topic) {
            loop.preconditionInEventLoop()
            guard !closed, var machine else { return }
            let actions = machine.leave(topic)
            self.machine = machine
            perform(actions)
            flushedTopics.remove(topic)
            // A waiter on a topic that was never looked up (or was left) must not hang.
            for promise in waiters.removeValue(forKey: topic) ?? [] { promise.succeed() }
        }

        /// Completes when the first lookup round of `topic` is over; at once for a topic that
        /// is not being looked up, or after `close`.
        func flushedFuture(_ topic: Topic) -> EventLoopFuture<Void> {
            loop.preconditionInEventLoop()
            guard !closed, let machine, machine.joined[topic]?.lookup == true, !flushedTopics.contains(topic) else {
                return loop.makeSucceededVoidFuture()
            }
            let promise = loop.makePromise(of: Void.self)
            waiters[topic, default: []].append(promise)
            return promise.futureResult
        }

        func receive(_ payload: [UInt8], from source: Endpoint, on socket: LANDiscoveryMachine.Socket) {
            loop.preconditionInEventLoop()
            guard !closed, var machine else { return }
            let actions = machine.receive(payload, from: source, on: socket, at: now)
            self.machine = machine
            perform(actions)
        }

        private func tick() {
            loop.preconditionInEventLoop()
            timer = nil
            timerDeadline = nil
            guard !closed, var machine else { return }
            let actions = machine.tick(at: now, rng: &rng)
            self.machine = machine
            perform(actions)
        }

        private func perform(_ actions: [LANDiscoveryMachine.Action]) {
            for action in actions {
                switch action {
                case let .multicast(bytes):
                    for socket in sockets where !socket.waiting {
                        guard let group = socket.plan.group else { continue }
                        send(bytes, to: group, on: socket.channel)
                    }
                case let .unicast(bytes, to):
                    guard let unicast = sockets.first else { continue }
                    if !unicast.plan.isDualStack && to.isIPv6 { sendErrors += 1; continue }
                    send(bytes, to: unicast.plan.isDualStack ? to.socketAddressForIPv6Socket : to.socketAddress, on: unicast.channel)
                case let .sighting(sighting):
                    if case .dropped = continuation.yield(sighting) { sightingsDropped += 1 }
                case let .flushed(topic):
                    flushedTopics.insert(topic)
                    for promise in waiters.removeValue(forKey: topic) ?? [] { promise.succeed() }
                }
            }
            rearm()
        }

        private func send(_ bytes: [UInt8], to address: SocketAddress, on channel: Channel?) {
            guard let channel else { sendErrors += 1; return }
            let envelope = AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: bytes))
            // A failed send (no route, interface gone) costs one datagram; it is counted and
            // the periodic announcements try again. `writeAndFlush`'s promise is where NIO
            // reports it (MACHINE.md: async writers would swallow it).
            let promise = loop.makePromise(of: Void.self)
            promise.futureResult.whenFailure { [self] _ in sendErrors += 1 }
            channel.writeAndFlush(envelope, promise: promise)
        }

        /// Keeps exactly one timer, armed for the machine's next deadline.
        private func rearm() {
            let next = closed ? nil : machine?.nextDeadline
            guard next != timerDeadline else { return }
            timer?.cancel()
            timer = nil
            timerDeadline = next
            if let next {
                timer = loop.scheduleTask(deadline: next) { [self] in tick() }
            }
        }

        func countSendError() {
            loop.preconditionInEventLoop()
            sendErrors += 1
        }

        var counters: Counters {
            loop.preconditionInEventLoop()
            return Counters(machine: machine?.counters ?? .init(), sendErrors: sendErrors, sightingsDropped: sightingsDropped,
                            socketRestarts: socketRestarts, socketReopenFailures: reopenFailures,
                            socketsOpenedLate: socketsOpenedLate)
        }

        /// Each configured interface: the families whose socket is open, those whose socket
        /// is not (it waits for the address, or is being opened again), why IPv6 failed.
        var interfaces: [DiscoveryInterface] {
            loop.preconditionInEventLoop()
            return names.enumerated().map { position, name in
                let own = sockets.filter { $0.interface == position }
                return DiscoveryInterface(name: name, families: own.filter { $0.channel != nil }.compactMap(\.plan.family),
                                          waiting: own.filter { $0.channel == nil }.compactMap(\.plan.family),
                                          ipv6Failed: ipv6Refused[name])
            }
        }

        /// Stops everything; returns the channels for the caller to close.
        func shutdown() -> [Channel] {
            loop.preconditionInEventLoop()
            guard !closed else { return [] }
            closed = true
            timer?.cancel()
            timer = nil
            for promise in waiters.values.joined() { promise.succeed() }
            waiters = [:]
            continuation.finish()
            let channels = sockets.compactMap(\.channel)
            sockets = []
            return channels
        }
    }
}
