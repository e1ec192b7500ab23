/// Time for the swarm runtime, injectable so tests and simulations control it.
public protocol SwarmClock: Sendable {
    func now() -> Timestamp
    /// Returns at `deadline` (or at once if it passed); throws when the task is cancelled.
    func sleep(until deadline: Timestamp) async throws
}

/// The monotonic clock of the process.
public struct SystemSwarmClock: SwarmClock {
    private let origin = ContinuousClock.now

    public init() {}

    public func now() -> Timestamp {
        Timestamp(nanoseconds: UInt64((ContinuousClock.now - origin).nanosecondsClamped))
    }

    public func sleep(until deadline: Timestamp) async throws {
        let wait = deadline - now()
        if wait > .zero { try await Task.sleep(for: wait) } else { try Task.checkCancellation() }
    }
}
