import Books
import Foundation
import Sodium
import Swarm
import Synchronization
import Testing
@testable import Messenger

/// Peers with a store, a messenger and a swarm over the in-memory network, found through
/// an in-memory discovery hub. A peer restarts with the same identity and directory.
final class MessengerBed: Sendable {
    let network = InMemoryNetwork()
    let hub = InMemoryDiscoveryHub()
    let root = NSTemporaryDirectory() + "bookswarm-messenger-\(UUID().uuidString)"

    static var configuration: SwarmConfiguration {
        var c = SwarmConfiguration()
        c.session.handshakeRetransmitBase = .milliseconds(100)
        c.session.handshakeRetransmitMax = .milliseconds(400)
        c.session.keepaliveInterval = .milliseconds(200)
        c.session.deadPeerTimeout = .milliseconds(1500)
        // The in-memory hub reports a peer once, when it joins (no periodic announcements as
        // on a LAN): a peer given up after its last retry is never dialled again. Retries
        // that span a few seconds keep a loaded machine (CI, two cores, other suites in
        // parallel), where handshakes time out, from stranding a scenario; a normal run
        // never waits for them.
        c.retry = RetryPolicy(delays: [.milliseconds(100), .milliseconds(300), .seconds(1), .seconds(2), .seconds(3)], jitter: 0.2)
        return c
    }

    static func identity(_ seed: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
    }

    /// An offline peer: store and messenger only.
    /// `refusing`: the store opened for reading only, every write failing with it (as on a
    /// full disk), until `BookStore.resumeWriting`.
    func offline(_ seed: UInt8, refusing refusal: BooksError? = nil,
                 clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }) throws -> Peer {
        let directory = root + "/\(seed)"
        let secret = SecretBytes(copying: [UInt8](repeating: seed &+ 100, count: 32))
        let store = try refusal.map { try BookStore.openForReading(directory: directory, masterSecret: secret, refusal: $0) }
            ?? BookStore.open(directory: directory, masterSecret: secret)
        let messenger = try Messenger(identity: Self.identity(seed), store: store, stateFile: directory + "/state.json", wallClock: clock)
        return Peer(seed: seed, store: store, messenger: messenger, swarm: nil)
    }

    /// An online peer: the swarm and the messenger run in tasks of their own.
    func online(_ seed: UInt8, refusing refusal: BooksError? = nil) async throws -> Peer {
        let peer = try offline(seed, refusing: refusal)
        let identity = Self.identity(seed)
        let transport = network.makeTransport()
        let discovery = hub.makeSource(peer: PeerID(identity.publicKey), endpoint: transport.localEndpoint)
        let clock = SystemSwarmClock()
        let swarm = try Swarm(identity: identity, transport: transport, discovery: [discovery],
                              configuration: Self.configuration, clock: clock)
        let online = Peer(seed: seed, store: peer.store, messenger: peer.messenger, swarm: swarm,
                          endpoint: transport.localEndpoint)
        online.keep(Task { try? await swarm.run() })
        let messenger = peer.messenger
        online.keep(Task { await messenger.run(swarm: swarm, clock: clock) })
        await expectOnline(messenger)
        return online
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: root) }

    /// Bob (1) creates a task that Ana (2) and Carol (3) join, all online.
    func threeInATask() async throws -> (bob: Peer, ana: Peer, carol: Peer, task: TaskID) {
        let bob = try await online(1)
        let ana = try await online(2)
        let carol = try await online(3)
        let (task, invite) = try await bob.newTask("t")
        _ = try await ana.messenger.join(invite)
        _ = try await carol.messenger.join(invite)
        return (bob, ana, carol, task)
    }

    /// Bob (1) creates a task, "t", that Ana (2) joins, both online.
    func bobAndAnaInATask() async throws -> (bob: Peer, ana: Peer, task: TaskID, invite: InviteCode) {
        let bob = try await online(1)
        let ana = try await online(2)
        let (task, invite) = try await bob.newTask("t")
        _ = try await ana.messenger.join(invite)
        return (bob, ana, task, invite)
    }

    /// Bob (1) creates a task that Ana (2) joins; Ana writes `before` and Bob receives it.
    /// Then Ana's store is lost and she comes back from her identity alone (`restore`).
    func anaRestoredFromHerKeyAlone(after before: [String]) async throws -> (bob: Peer, ana: Peer, task: TaskID, invite: InviteCode) {
        let (bob, ana, task, invite) = try await bobAndAnaInATask()
        for text in before { try await ana.messenger.send(text, to: task) }
        #expect(try await eventually { try await bob.texts(task) == before })
        return (bob, try await restore(ana, joining: invite), task, invite)
    }

    /// Stops `peer` and deletes its directory (the store is lost; the identity, the bed's
    /// seed, is not), then brings it online again and joins the task of `invite`.
    func restore(_ peer: Peer, joining invite: InviteCode) async throws -> Peer {
        await peer.stop()
        try FileManager.default.removeItem(atPath: root + "/\(peer.seed)")
        let restored = try await online(peer.seed)
        _ = try await restored.messenger.join(invite)
        return restored
    }
}

/// Waits (bounded) until the messenger's network is up.
func expectOnline(_ messenger: Messenger) async {
    for _ in 0..<200 where !(await messenger.isOnline) { try? await Task.sleep(for: .milliseconds(5)) }
}

final class Peer: Sendable {
    let seed: UInt8
    let store: BookStore
    let messenger: Messenger
    let swarm: Swarm?
    /// Where an online peer's transport sits on the in-memory network.
    let endpoint: Endpoint?
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(seed: UInt8, store: BookStore, messenger: Messenger, swarm: Swarm?, endpoint: Endpoint? = nil) {
        self.seed = seed
        self.store = store
        self.messenger = messenger
        self.swarm = swarm
        self.endpoint = endpoint
    }

    var id: PeerID { messenger.localPeer }

    func keep(_ task: Task<Void, Never>) { tasks.withLock { $0.append(task) } }

    /// Creates a task: its id and its invite code.
    func newTask(_ title: String) async throws -> (id: TaskID, invite: InviteCode) {
        let summary = try await messenger.newTask(title: title)
        return (try #require(TaskID(hex: summary.id)), try InviteCode(parsing: summary.invite))
    }

    /// Shuts the swarm down (telling peers), waits for the messenger, closes the store.
    func stop() async {
        if let swarm { await swarm.shutdown() }
        for task in tasks.withLock({ $0 }) { await task.value }
        store.close()
    }

    /// The task's messages (texts, in log order), without its joins.
    func texts(_ task: TaskID) async throws -> [String] { try await messenger.log(of: task).filter { $0.kind == .chat }.map(\.text) }

    /// The task's join entries as this peer shows them, in log order.
    func joins(_ task: TaskID) async throws -> [LogEntry] { try await messenger.log(of: task).filter { $0.kind == .join } }
}

/// Polls `condition` until it holds or `timeout` passes (20 s by default: durable appends
/// wait for fsyncs, which a disk busy with other suites can stretch to seconds).
func eventually(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
