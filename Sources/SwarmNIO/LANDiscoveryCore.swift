import NIOCore
import Swarm
import Synchronization

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
            /// The slot of its interface (`Interface.slot`); nil for the unicast socket.
            var interface: Int?
            /// Its interface has no address of its family (at the last look): the look every
            /// `lookInterval` opens it once it has, and sends leave it out. Also set while a
            /// socket opens that waited, was just added, or is moved to a new address.
            var waiting = false
            /// It has waited for that address and not been open since: when it opens, it
            /// counts as opened late and restates everything joined.
            var late = false
            /// An open of it is scheduled or under way (`open`), or waits out a pause after a
            /// failed one: the look leaves it to that.
            var opening = false
            /// Stable for the socket's life: its timers and callbacks find it by this, since
            /// sockets come and go with interfaces (and with IPv6 on them).
            var id = 0
        }

        /// An interface discovery runs on: one of the configuration's (its slot is its
        /// position there), or one of the LAN default taken up since.
        struct Interface {
            var slot: Int
            /// As the kernel names it.
            var name: String
            /// How the look finds it again: as given, or by its name on the LAN default.
            var spec: InterfaceSpec
        }

        /// The groups, for the sockets an interface comes to need after start (an interface
        /// taken up from the LAN default, IPv6 switched on where it was off); the IPv6 one nil
        /// when IPv6 discovery does not run.
        struct Groups: Sendable {
            var group4: Endpoint
            var group6: Endpoint?
        }

        /// How often the interfaces are looked at again: the LAN default when discovery
        /// follows it, the given interfaces otherwise.
        static let lookInterval: TimeAmount = .seconds(1)
        /// How soon a look follows the kernel's word that interfaces changed: the messages
        /// of one change (an address, its routes, its flags) arrive within a few
        /// milliseconds and make one look.
        static let lookAfterChange: TimeAmount = .milliseconds(20)
        /// The kernel's word that interfaces changed (nil: none, the looks every second only).
        private var watcher: InterfaceWatcher?
        /// The next look and when it is due; `looking` while one reads the interfaces, and
        /// `lookAgainSoon` when a change was announced meanwhile.
        private var nextLook: Scheduled<Void>?
        private var nextLookDue: NIODeadline?
        private var looking = false
        private var lookAgainSoon = false
        /// Looks made early because the kernel announced a change (tests).
        private(set) var looksOnChange = 0

        /// Every socket; the first is the unicast one.
        private var sockets: [Socket] = []
        /// The interfaces, in the order they are shown: the configuration's, or those of the
        /// LAN default now, by name.
        private var interfaceList: [Interface] = []
        private var groups = Groups(group4: DiscoveryGroup.ipv4, group6: nil)
        /// Discovery follows the LAN default rather than given interfaces.
        private var followsLANDefault = false
        private var nextSlot = 0
        private var nextSocketID = 0
        private(set) var ipv6Refused: [String: String] = [:]
        private var socketRestarts = 0
        private var reopenFailures = 0
        private var socketsOpenedLate = 0
        private var interfacesTakenUp = 0
        private var interfacesDropped = 0
        /// Told the IPv4 addresses discovery runs on whenever they change (`observeIPv4Addresses`).
        private var addressObserver: (@Sendable ([Endpoint.Address]) -> Void)?
        private var observedAddresses: [Endpoint.Address] = []
        private var timer: Scheduled<Void>?
        private var timerDeadline: NIODeadline?
        private var rng = SystemRandomNumberGenerator()
        /// Topics whose first lookup round is over (or that do not look up).
        private var flushedTopics: Set<Topic> = []
        private var waiters: [Topic: [EventLoopPromise<Void>]] = [:]
        private var sendErrors = 0
        private var sightingsDropped = 0
        /// Sightings put into the stream (read off the loop: `sightingsDelivered`).
        let sightingsDelivered = Atomic<Int>(0)
        private var closed = false

        init(loop: EventLoop, continuation: AsyncStream<PeerSighting>.Continuation) {
            self.loop = loop
            self.continuation = continuation
        }

        /// A core dropped without `shutdown` still ends its watcher's thread.
        deinit { watcher?.stop() }

        /// Takes over the sockets: watches the open ones, and from `lookInterval` on looks at
        /// the interfaces again every `lookInterval` (`lookAgain`), which opens those that
        /// wait once their address is there (or those that failed to open at start). With
        /// `followsLANDefault`, the interfaces are the LAN default as it is at each look.
        func attach(machine: LANDiscoveryMachine, sockets: [Socket], interfaces: [(name: String, spec: InterfaceSpec)],
                    ipv6Refused: [String: String], groups: Groups, followsLANDefault: Bool = false) {
            loop.preconditionInEventLoop()
            self.machine = machine
            self.sockets = sockets
            for i in self.sockets.indices { self.sockets[i].id = i }
            nextSocketID = sockets.count
            interfaceList = interfaces.enumerated().map { Interface(slot: $0.offset, name: $0.element.name, spec: $0.element.spec) }
            nextSlot = interfaces.count
            self.ipv6Refused = ipv6Refused
            self.groups = groups
            self.followsLANDefault = followsLANDefault
            for socket in self.sockets {
                if let channel = socket.channel { watch(socket.id, channel) }
            }
            // Loopback given as 127.0.0.1 is always there as it is: nothing to look at.
            if followsLANDefault || !interfaceList.allSatisfy({ $0.spec == .loopback }) {
                watcher = InterfaceWatcher { [weak self] in
                    guard let self else { return }
                    loop.execute { self.interfacesChanged() }
                }
                lookAgain(after: Self.lookInterval)
            }
        }

        /// The kernel announced a change of interfaces or addresses: look soon rather than at
        /// the next second.
        private func interfacesChanged() {
            loop.preconditionInEventLoop()
            guard !closed else { return }
            if looking {
                lookAgainSoon = true
            } else if nextLookDue.map({ $0 > .now() + Self.lookAfterChange }) ?? true {
                looksOnChange += 1
                lookAgain(after: Self.lookAfterChange)
            }
        }

        /// Where socket `id` is in `sockets` now; nil once it is gone.
        private func position(_ id: Int) -> Int? { sockets.firstIndex { $0.id == id } }

        func channel(_ index: Int) -> Channel? {
            loop.preconditionInEventLoop()
            return sockets.indices.contains(index) ? sockets[index].channel : nil
        }

        /// When socket `id` closes and we did not close it, opens it again.
        private func watch(_ id: Int, _ channel: Channel) {
            channel.closeFuture.whenComplete { [self] _ in
                loop.execute { [self] in
                    guard !closed, let i = position(id), sockets[i].channel === channel else { return }
                    sockets[i].channel = nil
                    open(id, after: .milliseconds(50))
                }
            }
        }

        /// Opens socket `id` after `pause` on its interface as it is then, looked up again
        /// off the loop (`getifaddrs`): a socket that closed under us (or that the look closed
        /// because its interface changed), or one whose interface has the address it waited
        /// for. Without that address it waits, which is no failure: the next look that finds
        /// the address opens it. An open that fails is counted and tried again after twice the
        /// pause (at most 5 s). Sends meanwhile are dropped — counted as errors, except through
        /// a socket that waits — and announcements repeat. A socket that opens after waiting
        /// sends a query and an announcement at once. A socket removed meanwhile (its interface
        /// left the LAN default, or IPv6 was switched off there) is not opened.
        private func open(_ id: Int, after pause: TimeAmount) {
            guard let i = position(id) else { return }
            sockets[i].opening = true
            loop.scheduleTask(in: pause) { [self] in
                guard !closed, let i = position(id) else { return }
                let plan = sockets[i].plan
                Task { [self] in
                    let fresh = plan.refreshed()
                    let channel = fresh.isReady ? try? await fresh.open(core: self, loop: loop) : nil
                    loop.execute { [self] in
                        guard !closed, let index = position(id) else { channel?.close(promise: nil); return }
                        sockets[index].plan = fresh
                        sockets[index].waiting = !fresh.isReady
                        defer { notifyAddresses() }
                        guard fresh.isReady else {
                            sockets[index].late = true
                            sockets[index].opening = false
                            return
                        }
                        guard let channel else {
                            reopenFailures += 1
                            open(id, after: min(max(pause, .milliseconds(50)) * 2, .seconds(5)))
                            return
                        }
                        sockets[index].opening = false
                        sockets[index].channel = channel
                        watch(id, channel)
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

        // MARK: Following the interfaces

        /// Looks at the interfaces again after `pause` (off the loop: `getifaddrs`), follows
        /// what changed (`track` on the LAN default, `refresh` on each given interface), and
        /// looks again every `lookInterval` — or `lookAfterChange` after the kernel announced
        /// a change (`interfacesChanged`), which replaces the look planned later.
        private func lookAgain(after pause: TimeAmount) {
            nextLook?.cancel()
            let due = NIODeadline.now() + pause
            nextLookDue = due
            nextLook = loop.scheduleTask(deadline: due) { [self] in
                nextLook = nil
                nextLookDue = nil
                guard !closed else { return }
                looking = true
                let follows = followsLANDefault
                let given = follows ? [] : interfaceList.map { (slot: $0.slot, spec: $0.spec) }
                Task { [self] in
                    let all = NetworkInterface.all()
                    let wanted = follows
                        ? NetworkInterface.lanDefault(among: all).compactMap { try? InterfaceSpec.named($0.name).resolve(among: all) } : []
                    // A given interface that cannot be found (removed) is nil: its sockets wait.
                    let found = given.map { (slot: $0.slot, now: try? $0.spec.resolve(among: all)) }
                    loop.execute { [self] in
                        guard !closed else { return }
                        // An empty list is the kernel not answering (even `lo` is missing), not
                        // every interface gone: keep what runs.
                        if !all.isEmpty {
                            if follows {
                                track(wanted)
                            } else {
                                for (slot, now) in found { refresh(slot, to: now) }
                            }
                            notifyAddresses()
                        }
                        looking = false
                        let soon = lookAgainSoon
                        lookAgainSoon = false
                        if soon { looksOnChange += 1 }
                        lookAgain(after: soon ? Self.lookAfterChange : Self.lookInterval)
                    }
                }
            }
        }

        /// Makes discovery run on `wanted`, the LAN default as it is now. An interface that
        /// left it (down, its IPv4 address gone, removed) is dropped quietly: its sockets
        /// close, nothing is counted as an error. One that joined it is taken up: its sockets
        /// open (IPv6 too where it has, or gets, a link-local address) and send a query and
        /// an announcement at once. One that stays is followed as a given interface is
        /// (`refresh`).
        private func track(_ wanted: [InterfaceSpec.Resolved]) {
            loop.preconditionInEventLoop()
            let names = Set(wanted.map(\.name))
            for gone in interfaceList where !names.contains(gone.name) {
                for socket in sockets where socket.interface == gone.slot { socket.channel?.close(promise: nil) }
                sockets.removeAll { $0.interface == gone.slot }
                ipv6Refused[gone.name] = nil
                interfacesDropped += 1
            }
            interfaceList.removeAll { !names.contains($0.name) }
            for interface in wanted {
                let slot: Int
                if let known = interfaceList.first(where: { $0.name == interface.name }) {
                    slot = known.slot
                } else {
                    slot = nextSlot
                    nextSlot += 1
                    let at = interfaceList.firstIndex { $0.name > interface.name } ?? interfaceList.endIndex
                    interfaceList.insert(Interface(slot: slot, name: interface.name, spec: interface.spec), at: at)
                    add(.multicast4(interface, group: groups.group4), to: slot)
                    interfacesTakenUp += 1
                }
                refresh(slot, to: interface)
            }
        }

        /// Brings the sockets of interface `slot` in line with the interface as the look found
        /// it, `now` (nil: a given interface that cannot be found, removed for now):
        /// * IPv6 discovery comes and goes with IPv6 on the interface (`ipv6Capable`: IPv6
        ///   switched on or off, the MULTICAST flag): its socket is added, to open when the
        ///   link-local address is usable, or removed quietly. Not where it was refused at start.
        /// * An open socket whose address is gone or changed (a new IPv4 address, a new or lost
        ///   IPv6 link-local one, a new index: the interface removed and back, down) is closed;
        ///   it opens again on what the interface has now — at once, or when the address comes
        ///   — and then sends a query and an announcement at once.
        /// * A socket that waits opens once its address is there.
        /// Nothing else changes: a socket whose interface is as it was is left alone.
        private func refresh(_ slot: Int, to now: InterfaceSpec.Resolved?) {
            loop.preconditionInEventLoop()
            guard let at = interfaceList.firstIndex(where: { $0.slot == slot }) else { return }
            if let now {
                interfaceList[at].name = now.name
                let name = interfaceList[at].name
                let hasIPv6 = sockets.contains { $0.interface == slot && $0.plan.family == "IPv6" }
                if let group6 = groups.group6, now.ipv6Capable, !hasIPv6, ipv6Refused[name] == nil {
                    add(.multicast6(now, group: Endpoint(address: group6.address, port: group6.port, scopeID: now.index)), to: slot)
                } else if !now.ipv6Capable, hasIPv6 {
                    for socket in sockets where socket.interface == slot && socket.plan.family == "IPv6" { socket.channel?.close(promise: nil) }
                    sockets.removeAll { $0.interface == slot && $0.plan.family == "IPv6" }
                }
            }
            for i in sockets.indices where sockets[i].interface == slot {
                let fresh = now.map { sockets[i].plan.on($0) } ?? sockets[i].plan.lost()
                if let channel = sockets[i].channel {
                    let stale = sockets[i].plan.isStale(for: fresh)
                    sockets[i].plan = fresh
                    guard stale else { continue }
                    // `watch` opens it again, on the interface as it is then.
                    sockets[i].waiting = true
                    sockets[i].late = true
                    channel.close(promise: nil)
                } else if !sockets[i].opening {
                    sockets[i].plan = fresh
                    sockets[i].waiting = true
                    if fresh.isReady { open(sockets[i].id, after: .zero) }
                }
            }
        }

        /// A socket of `plan` for interface `slot`, waiting to be opened (`refresh` opens it),
        /// after the interface's other sockets (IPv4 before IPv6).
        private func add(_ plan: SocketPlan, to slot: Int) {
            let id = nextSocketID
            nextSocketID += 1
            let at = sockets.lastIndex { $0.interface == slot }.map { $0 + 1 } ?? sockets.endIndex
            sockets.insert(Socket(plan: plan, interface: slot, waiting: true, late: true, id: id), at: at)
        }

        // MARK: The addresses discovery runs on

        /// The IPv4 address of each interface discovery runs on (or is opening a socket on),
        /// as last looked up, loopback left out, in the order of the interfaces.
        var ipv4Addresses: [Endpoint.Address] {
            loop.preconditionInEventLoop()
            var out: [Endpoint.Address] = []
            for interface in interfaceList {
                for socket in sockets where socket.interface == interface.slot {
                    guard case let .multicast4(resolved, _) = socket.plan, !resolved.isLoopback, let address = resolved.ipv4,
                          !out.contains(address) else { continue }
                    out.append(address)
                }
            }
            return out
        }

        /// Calls `handler` with `ipv4Addresses` now, and again on the loop each time they change.
        func observeIPv4Addresses(_ handler: @escaping @Sendable ([Endpoint.Address]) -> Void) {
            loop.preconditionInEventLoop()
            guard !closed else { return }
            addressObserver = handler
            observedAddresses = ipv4Addresses
            handler(observedAddresses)
        }

        private func notifyAddresses() {
            guard let addressObserver else { return }
            let now = ipv4Addresses
            guard now != observedAddresses else { return }
            observedAddresses = now
            addressObserver(now)
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
                    switch continuation.yield(sighting) {
                    case .enqueued: sightingsDelivered.add(1, ordering: .relaxed)
                    case .dropped: sightingsDropped += 1
                    default: break
                    }
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
                            socketsOpenedLate: socketsOpenedLate, interfacesTakenUp: interfacesTakenUp,
                            interfacesDropped: interfacesDropped, looksOnChange: looksOnChange)
        }

        /// Each interface: the families whose socket is open, those whose socket is not (it
        /// waits for the address, or is being opened again), why IPv6 failed. Following the
        /// LAN default while it is empty: one entry, `DiscoveryInterface.anyLANWaiting`.
        var interfaces: [DiscoveryInterface] {
            loop.preconditionInEventLoop()
            if followsLANDefault && interfaceList.isEmpty { return [DiscoveryInterface.anyLANWaiting] }
            return interfaceList.map { interface in
                let own = sockets.filter { $0.interface == interface.slot }
                return DiscoveryInterface(name: interface.name, families: own.filter { $0.channel != nil }.compactMap(\.plan.family),
                                          waiting: own.filter { $0.channel == nil }.compactMap(\.plan.family),
                                          ipv6Failed: ipv6Refused[interface.name])
            }
        }

        /// Stops everything; returns the channels for the caller to close.
        func shutdown() -> [Channel] {
            loop.preconditionInEventLoop()
            guard !closed else { return [] }
            closed = true
            timer?.cancel()
            timer = nil
            nextLook?.cancel()
            nextLook = nil
            watcher?.stop()
            watcher = nil
            for promise in waiters.values.joined() { promise.succeed() }
            waiters = [:]
            continuation.finish()
            addressObserver = nil
            let channels = sockets.compactMap(\.channel)
            sockets = []
            return channels
        }
    }
}
