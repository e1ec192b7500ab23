import Testing
@testable import Swarm

@Suite("RetryPolicy")
struct RetryPolicyTests {
    @Test func delaysFollowTheListAndTheLastRepeats() {
        let policy = RetryPolicy(delays: [.seconds(1), .seconds(5)], jitter: 0)
        var rng = SeededRandom(seed: 1)
        #expect(policy.delay(afterFailures: 0, using: &rng) == .seconds(1))
        #expect(policy.delay(afterFailures: 1, using: &rng) == .seconds(5))
        #expect(policy.delay(afterFailures: 9, using: &rng) == .seconds(5))
    }

    @Test func jitterStaysWithinItsFraction() {
        let policy = RetryPolicy.standard
        var rng = SeededRandom(seed: 2)
        var seen = Set<Int64>()
        for _ in 0..<200 {
            let d = policy.delay(afterFailures: 0, using: &rng)
            #expect(d >= .seconds(1) && d < .milliseconds(1250))
            seen.insert(d.nanosecondsClamped)
        }
        #expect(seen.count > 100)
    }
}
