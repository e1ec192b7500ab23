import Swarm
@testable import Replication

/// Two replication machines joined by a simulated channel with a virtual clock: latency,
/// loss, duplication and reordering from a seeded generator, so every run is reproducible.
struct Simulation {
    struct Conditions {
        var latency: Duration = .milliseconds(1)
        /// Extra random delay up to this much: reorders messages.
        var jitter: Duration = .zero
        var loss = 0.0
        var duplication = 0.0
    }

    private struct Flight {
        var at: Timestamp
        var order: Int
        var toB: Bool
        var bytes: [UInt8]
    }

    var a: ReplicationMachine
    var b: ReplicationMachine
    var conditions: Conditions
    private(set) var now = Timestamp(nanoseconds: 1_000_000_000)
    private var rng: SeededRandom
    private var flights: [Flight] = []
    private var order = 0
    private(set) var actionsA: [ReplicationAction] = []
    private(set) var actionsB: [ReplicationAction] = []
    private(set) var messagesSent = 0
    /// Lets a test rewrite or drop messages from A to B (a misbehaving peer).
    var tamperAtoB: ((inout [UInt8]) -> Bool)?

    init(a: ReplicationMachine, b: ReplicationMachine, conditions: Conditions = Conditions(), seed: UInt64 = 1) {
        self.a = a
        self.b = b
        self.conditions = conditions
        rng = SeededRandom(seed: seed)
    }

    mutating func start() {
        a.start(now: now)
        b.start(now: now)
        collect()
    }

    /// Runs until `done` holds or nothing is left to happen or `limit` of virtual time
    /// passed. Returns whether `done` held.
    @discardableResult
    mutating func run(for limit: Duration = .seconds(600), until done: (Simulation) -> Bool) -> Bool {
        let end = now + limit
        while !done(self) {
            collect()
            let deadlines = [flights.map(\.at).min(), a.nextDeadline, b.nextDeadline].compactMap { $0 }
            guard let next = deadlines.min(), next <= end else { break }
            now = max(now, next)
            let due = flights.filter { $0.at <= now }.sorted { ($0.at, $0.order) < ($1.at, $1.order) }
            flights.removeAll { $0.at <= now }
            for flight in due {
                if flight.toB { b.receive(flight.bytes, now: now) } else { a.receive(flight.bytes, now: now) }
            }
            if let d = a.nextDeadline, d <= now { a.tick(now: now) }
            if let d = b.nextDeadline, d <= now { b.tick(now: now) }
        }
        collect()
        return done(self)
    }

    /// Lets time pass with no condition.
    mutating func advance(_ duration: Duration) {
        let end = now + duration
        run(for: duration) { $0.now >= end }
    }

    private mutating func collect() {
        while a.hasPendingOutput || b.hasPendingOutput {
            for var bytes in a.takeMessages(serveLimit: 10_000) {
                if let tamper = tamperAtoB, !tamper(&bytes) { continue }
                schedule(bytes, toB: true)
            }
            for bytes in b.takeMessages(serveLimit: 10_000) { schedule(bytes, toB: false) }
        }
        actionsA += a.takeActions()
        actionsB += b.takeActions()
    }

    private mutating func schedule(_ bytes: [UInt8], toB: Bool) {
        messagesSent += 1
        precondition(bytes.count <= ReplicationWire.maxMessage, "message of \(bytes.count) bytes")
        if conditions.loss > 0, Double.random(in: 0..<1, using: &rng) < conditions.loss { return }
        let copies = conditions.duplication > 0 && Double.random(in: 0..<1, using: &rng) < conditions.duplication ? 2 : 1
        for _ in 0..<copies {
            var delay = conditions.latency
            if conditions.jitter > .zero {
                delay += .nanoseconds(Int64.random(in: 0...Int64(conditions.jitter.components.attoseconds / 1_000_000_000
                    + conditions.jitter.components.seconds * 1_000_000_000), using: &rng))
            }
            order += 1
            flights.append(Flight(at: now + delay, order: order, toB: toB, bytes: bytes))
        }
    }

    /// The author appended: its machine learns it as the glue would tell it.
    mutating func authorChanged() {
        a.localBookChanged(now: now)
    }
}
