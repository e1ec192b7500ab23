import Books
import Foundation
import Swarm
import Testing
@testable import Replication

/// A reader whose store cannot take verified pages (PROTOCOL.md §9.6): for a reason that may
/// pass — a full disk, a file system remounted read-only, an I/O error — the channel stays,
/// the pages are asked for again after a pause that doubles up to `storeRetryMax`, and they
/// arrive once the store takes them again; for any other (a damaged store) the channel ends.
@Suite("Replication when the store fails")
struct ReplicationStoreFailureTests {
    let dir = TemporaryDirectory("repl-store-failure")

    func pair(author: Book, reader: FailingStoreBook) -> Simulation {
        let (ba, bb) = Fixtures.bindings()
        let a = ReplicationMachine(book: author, binding: ba, policy: Fixtures.policy, interest: .none)
        let b = ReplicationMachine(book: reader, binding: bb, policy: Fixtures.policy, interest: .all)
        var sim = Simulation(a: a, b: b)
        sim.start()
        return sim
    }

    func storeFailures(_ actions: [ReplicationAction]) -> Int {
        actions.filter { if case .storeFailed = $0 { true } else { false } }.count
    }

    @Test("a full disk: the channel stays, pauses grow, and the pages come once there is space")
    func fullDiskThenSpace() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 3000)
        let reader = FailingStoreBook(try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id))
        reader.failure = BooksError(.diskFull, "the disk is full (a test)")
        var sim = pair(author: author, reader: reader)

        // 20 s with the disk full: nothing stored, the channel open, one report per pause.
        sim.advance(.seconds(20))
        #expect(reader.heldRanges().count == 0)
        let closed = sim.b.isClosed || sim.a.isClosed
        #expect(!closed)
        #expect(!sim.actionsB.contains { if case .localFailure = $0 { true } else { false } })
        // Pauses of 1, 2, 4, 8, 10, … s: 5 or 6 in 20 s, each after one window of requests.
        let reports = storeFailures(sim.actionsB)
        #expect(reports >= 4 && reports <= 7, "\(reports) reports")
        let requests = sim.b.stats.requestsSent
        #expect(requests <= UInt64(reports + 1) * 8, "\(requests) requests for \(reports) pauses")
        #expect(sim.b.stats.storeFailures == UInt64(reader.applied))

        // Space again: the next request after the pause (at most `storeRetryMax`) brings
        // them all, on the same channel.
        reader.failure = nil
        let start = sim.now
        #expect(sim.run(for: .seconds(30)) { _ in reader.inner.contiguousLength == 3000 })
        #expect(sim.now - start <= ReplicationConfiguration().storeRetryMax + .seconds(2), "\(sim.now - start)")
        #expect(try Fixtures.checkIdentical(reader.inner, count: 3000))
        let closedAfter = sim.b.isClosed
        #expect(!closedAfter)
    }

    @Test("a failure that passes after one pause costs one pause", arguments: [BooksError.Code.diskFull, .storageReadOnly, .storage])
    func oneFailure(code: BooksError.Code) throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 500)
        let reader = FailingStoreBook(try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id))
        reader.failure = BooksError(code, "a test")
        var sim = pair(author: author, reader: reader)
        #expect(sim.run(for: .seconds(5)) { _ in reader.applied > 0 })
        reader.failure = nil
        #expect(sim.run(for: .seconds(5)) { _ in reader.inner.contiguousLength == 500 })
        #expect(storeFailures(sim.actionsB) == 1)
        let closed = sim.b.isClosed
        #expect(!closed)
    }

    @Test("a damaged store ends the channel: not the remote's fault, nobody refused")
    func damagedStoreCloses() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 500)
        let reader = FailingStoreBook(try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id))
        reader.failure = BooksError(.corruptDatabase, "a test")
        var sim = pair(author: author, reader: reader)
        #expect(sim.run(for: .seconds(5)) { $0.b.isClosed })
        #expect(sim.actionsB.contains { if case .localFailure = $0 { true } else { false } })
        #expect(!sim.actionsB.contains { if case .refused = $0 { true } else { false } })
        #expect(storeFailures(sim.actionsB) == 0)
    }
}
