import Testing
@testable import Swarm

@Suite("ReplayWindow")
struct ReplayWindowTests {
    @Test func zeroValueAcceptsAnyFirstCounter() {
        let a = WindowBox()
        #expect(a.accept(0))
        let b = WindowBox()
        #expect(b.accept(123_456_789))
        let c = WindowBox()
        #expect(c.accept(UInt64.max - 1))
    }

    @Test func rejectsDuplicates() {
        let w = WindowBox()
        for i in 0..<100 as Range<UInt64> { #expect(w.accept(i)) }
        for i in 0..<100 as Range<UInt64> { #expect(!w.accept(i)) }
    }

    @Test func acceptsOutOfOrderWithinWindow() {
        let w = WindowBox()
        #expect(w.accept(5000))
        #expect(w.accept(4999))
        #expect(w.accept(5000 - ReplayWindow.windowSize + 1))
        #expect(!w.accept(5000 - ReplayWindow.windowSize))
        #expect(!w.accept(4999))
        #expect(w.accept(5001))
    }

    @Test func wouldAcceptDoesNotRecord() {
        let w = WindowBox()
        #expect(w.wouldAccept(5))
        #expect(w.wouldAccept(5))
        #expect(w.accept(5))
        #expect(!w.wouldAccept(5))
        #expect(w.wouldAccept(4))
    }

    @Test func largeJumpClearsTheRing() {
        let w = WindowBox()
        for i in 0..<2048 as Range<UInt64> { _ = w.accept(i) }
        let far: UInt64 = 1_000_000
        #expect(w.accept(far))
        // Counters just behind the new highest were never seen, though their ring bits
        // were set before the jump.
        for i in (far - 100)..<far { #expect(w.accept(i)) }
        #expect(!w.accept(10))
    }

    @Test func jumpOfExactlyOneRingIsHandled() {
        let w = WindowBox()
        #expect(w.accept(63))
        #expect(w.accept(63 + UInt64(ReplayWindow.ringBits)))
        #expect(!w.accept(63))
        #expect(w.accept(63 + UInt64(ReplayWindow.ringBits) - 1))
    }

    /// Against a model: a set of seen counters and the rule "accept iff unseen and within
    /// the window behind the highest".
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func matchesModelOnRandomSequences(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let w = WindowBox()
        var seen = Set<UInt64>()
        var highest: UInt64?
        var base: UInt64 = 0
        for _ in 0..<20_000 {
            let r = rng.next() % 100
            let counter: UInt64
            if r < 60 { counter = base + rng.next() % 64 }                       // near the front
            else if r < 90 { counter = base &- min(base, rng.next() % 2100) }     // behind, around the edge
            else { counter = base + rng.next() % 5000 }                           // jump ahead
            base = max(base, counter)
            let expected: Bool
            if let h = highest {
                expected = !seen.contains(counter) && (counter > h || h - counter < ReplayWindow.windowSize)
            } else {
                expected = true
            }
            #expect(w.accept(counter) == expected, "counter \(counter) highest \(highest ?? 0)")
            if expected {
                seen.insert(counter)
                highest = max(highest ?? counter, counter)
            }
        }
    }

    @Test func counterZeroAfterOthers() {
        let w = WindowBox()
        #expect(w.accept(1))
        #expect(w.accept(0))
        #expect(!w.accept(0))
    }
}

/// `#expect` cannot call a mutating method on a local value; a box can.
private final class WindowBox {
    var window = ReplayWindow()
    func accept(_ counter: UInt64) -> Bool { window.accept(counter) }
    func wouldAccept(_ counter: UInt64) -> Bool { window.wouldAccept(counter) }
}
