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
        /// Every socket with its recipe; the channel is nil while it is being opened again.
        /// The first is the unicast socket.
        private var sockets: [(plan: SocketPlan, channel: Channel?)] = []
        private(set) var ipv6Refused: [String: String] = [:]
        private var socketRestarts = 0
        private var reopenFailures = 0
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

        func attach(machine: LANDiscoveryMachine, sockets: [(plan: SocketPlan, channel: Channel)], ipv6Refused: [String: String]) {
            loop.preconditionInEventLoop()
            self.machine = machine
            self.sockets = sockets.map { ($0.plan, $0.channel) }
            self.ipv6Refused = ipv6Refused
            for (index, socket) in sockets.enumerated() { watch(index, socket.channel) }
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
                    reopen(index, after: .milliseconds(50))
                }
            }
        }

        /// Tries to open socket `index` again after `pause`, doubling the pause (to 5 s)
        /// while it fails. Sends meanwhile are dropped and counted; announcements repeat.
        /// The interface is looked up again off the loop (`getifaddrs`).
        private func reopen(_ index: Int, after pause: TimeAmount) {
            loop.scheduleTask(in: pause) { [self] in
                guard !closed else { return }
                let plan = sockets[index].plan
                Task { [self] in
                    let fresh = plan.refreshed()
                    let channel = try? await fresh.open(core: self, loop: loop)
                    loop.execute { [self] in
                        guard let channel else {
                            reopenFailures += 1
                            if !closed { reopen(index, after: min(pause * 2, .seconds(5))) }
                            return
                        }
                        guard !closed else { channel.close(promise: nil); return }
                        sockets[index] = (fresh, channel)
                        socketRestarts += 1
                        watch(index, channel)
                    }
                }
            }
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
                    for socket in sockets {
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
                            socketRestarts: socketRestarts, socketReopenFailures: reopenFailures)
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
