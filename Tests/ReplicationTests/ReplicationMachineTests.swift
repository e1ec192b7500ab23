import Books
import Foundation
import Sodium
import Swarm
import Testing
@testable import Replication

/// The sans-I/O machine, two of them against each other in memory with a virtual clock,
/// over real book stores.
@Suite("ReplicationMachine")
struct ReplicationMachineTests {
    let dir = TemporaryDirectory("repl-machine")

    func pair(author: any ReplicatedBook, reader: any ReplicatedBook, interest: Interest = .all,
              conditions: Simulation.Conditions = .init(), configuration: ReplicationConfiguration = .init(),
              readerPolicy: ReplicationPolicy = Fixtures.policy, authorPolicy: ReplicationPolicy = Fixtures.policy,
              seed: UInt64 = 1) -> Simulation {
        let (ba, bb) = Fixtures.bindings()
        let a = ReplicationMachine(book: author, binding: ba, policy: authorPolicy, interest: .none, configuration: configuration)
        let b = ReplicationMachine(book: reader, binding: bb, policy: readerPolicy, interest: interest, configuration: configuration)
        var sim = Simulation(a: a, b: b, conditions: conditions, seed: seed)
        sim.start()
        return sim
    }

    @Test("a whole book travels, identical and verified")
    func wholeBook() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 3000)
        let readerStore = try Fixtures.store(dir.sub("b"), seed: 2)
        let reader = try readerStore.open(id: author.id)
        var sim = pair(author: author, reader: reader)
        let done1 = sim.run { _ in reader.contiguousLength == 3000 }
        #expect(done1)
        #expect(try Fixtures.checkIdentical(reader, count: 3000))
        #expect(sim.b.stats.pagesStored == 3000)
        #expect(sim.b.stats.retransmissions == 0)
    }

    @Test("20 % loss, reordering and duplication: complete, nothing stored twice", arguments: [1024, 16 * 1024])
    func lossyPath(pageSize: Int) throws {
        let count: UInt64 = pageSize > 4096 ? 300 : 2000
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: count, size: pageSize)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        let conditions = Simulation.Conditions(latency: .milliseconds(2), jitter: .milliseconds(3), loss: 0.2, duplication: 0.05)
        var sim = pair(author: author, reader: reader, conditions: conditions, seed: UInt64(pageSize))
        let done2 = sim.run { _ in reader.contiguousLength == count }
        #expect(done2)
        #expect(try Fixtures.checkIdentical(reader, count: count, size: pageSize))
        #expect(sim.b.stats.pagesStored == count)
        #expect(sim.b.stats.retransmissions > 0)
        #expect(sim.actionsB.allSatisfy { if case .refused = $0 { false } else { true } })
    }

    @Test("sparse: just the newest page, or any one page, without the history")
    func sparse() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 5000)
        let store = try Fixtures.store(dir.sub("b"), seed: 2)
        let reader = try store.open(id: author.id)
        var sim = pair(author: author, reader: reader, interest: .latest(1))
        let done3 = sim.run { _ in reader.has(4999) }
        #expect(done3)
        sim.advance(.seconds(2))
        #expect(reader.heldRanges().ranges == [4999..<5000])
        #expect(reader.length == 5000)
        #expect(try reader.get(4999) == Fixtures.page(4999))

        sim.b.setInterest(.pages(PageRanges([1234..<1235])), now: sim.now)
        let done4 = sim.run { _ in reader.has(1234) }
        #expect(done4)
        sim.advance(.seconds(2))
        #expect(reader.heldRanges().ranges == [1234..<1235, 4999..<5000])
        #expect(sim.b.stats.pagesStored == 2)
    }

    @Test("the reader follows appends: each new length is pushed and fetched")
    func followsAppends() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 100)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        var sim = pair(author: author, reader: reader)
        let done5 = sim.run { _ in reader.contiguousLength == 100 }
        #expect(done5)
        for i in UInt64(100)..<UInt64(150) {
            try author.append(Fixtures.page(i))
            sim.authorChanged()
            let done6 = sim.run(for: .seconds(1)) { _ in reader.contiguousLength == i + 1 }
            #expect(done6)
        }
        #expect(try Fixtures.checkIdentical(reader, count: 150))
        #expect(sim.b.stats.pagesStored == 150)
    }

    @Test("resume after a reconnect: no gap, no duplicate, no re-download")
    func resume() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 4000)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        var first = pair(author: author, reader: reader, conditions: .init(loss: 0.1))
        first.run { _ in reader.heldRanges().count >= 1500 }
        let held = reader.heldRanges().count
        #expect(held >= 1500 && held < 4000)
        // The session is lost: new machines, in a new session, from what the store holds.
        var second = pair(author: author, reader: reader, conditions: .init(loss: 0.1), seed: 9)
        let done7 = second.run { _ in reader.contiguousLength == 4000 }
        #expect(done7)
        #expect(second.b.stats.pagesStored == 4000 - held)
        #expect(try Fixtures.checkIdentical(reader, count: 4000))
    }

    @Test("any holder serves: C gets A's book from B while A is away, and verifies it")
    func anyHolderServes() throws {
        let a = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 1000)
        let b = try Fixtures.store(dir.sub("b"), seed: 2).open(id: a.id)
        var ab = pair(author: a, reader: b)
        let done8 = ab.run { _ in b.contiguousLength == 1000 }
        #expect(done8)
        let c = try Fixtures.store(dir.sub("c"), seed: 3).open(id: a.id)
        // B is not the author: it serves as a holder and wants nothing more.
        var bc = pair(author: b, reader: c)
        let done9 = bc.run { _ in c.contiguousLength == 1000 }
        #expect(done9)
        #expect(try Fixtures.checkIdentical(c, count: 1000))
    }

    @Test("forged pages, wrong proofs, a forged root: refused, nothing stored",
          arguments: [TamperingBook.Lie.forgedPage, .wrongProof, .forgedRoot])
    func liars(lie: TamperingBook.Lie) throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 500)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        var sim = pair(author: TamperingBook(author, lie: lie), reader: reader)
        sim.run(for: .seconds(10)) { $0.a.isClosed && $0.b.isClosed }
        #expect(sim.b.isClosed)
        #expect(sim.actionsB.contains { if case .refused(.invalidData, _, _) = $0 { true } else { false } })
        #expect(sim.actionsA.contains(.refusedByRemote(.invalidData)))
        #expect(reader.length == 0)
        #expect(reader.heldRanges().isEmpty)
    }

    /// A re-request names the fragments it lacks (§9.2.3); a reader may name ones beyond the
    /// answer's count (§9.2.4 numbers them up to 65 535). The holder built the range
    /// `first..<min(end, count)` for each, which traps when `first > count`: one request of
    /// any member crashed every holder. Fragments beyond the answer are sent as none.
    @Test("a request for fragments beyond the answer gets the ones that exist, and the holder lives")
    func fragmentsBeyondTheAnswer() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 20)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        var sim = pair(author: author, reader: reader)
        #expect(sim.run { _ in reader.contiguousLength == 20 })
        let now = Timestamp(nanoseconds: 10_000_000_000)
        func ask(_ id: UInt32, pages: Range<UInt64>, fragments: [Range<UInt16>]) -> [ReplicationMessage.DataFragment] {
            let request = ReplicationMessage.Request(id: id, pages: pages, atLength: 20, fromLength: 0, maxBytes: 1 << 20,
                                                     fragments: fragments)
            sim.a.receive(ReplicationMessage.request(request).encoded(), now: now)
            return sim.a.takeMessages().compactMap {
                if case let .success(.data(fragment)) = ReplicationMessage.decode($0), fragment.requestID == id { fragment } else { nil }
            }
        }
        // Pages 0..<5 of 1 KiB: an answer of 5 fragments.
        #expect(ask(1, pages: 0..<5, fragments: [1000..<1001]).isEmpty)
        #expect(ask(2, pages: 0..<5, fragments: [6..<9, 65_000..<65_535]).isEmpty)
        #expect(ask(3, pages: 0..<5, fragments: [3..<65_535]).map(\.index) == [3, 4])
        #expect(ask(4, pages: 0..<5, fragments: [65_534..<65_535, 0..<1]).map(\.index) == [0])
        #expect(!sim.a.isClosed)
    }

    /// A page of 75 MB (a store file edited on disk) would be an answer of more fragments
    /// than a u16 numbers: serving it trapped the holder (`ResponseBody.fragments`). It is
    /// answered `no data` instead, and both sides carry on.
    @Test("a holder handed an answer too large to number its fragments answers no data, and lives")
    func oversizedAnswer() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 20)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        var sim = pair(author: TamperingBook(author, lie: .oversizedPage), reader: reader)
        sim.run(for: .seconds(3)) { _ in false }
        #expect(!sim.a.isClosed && !sim.b.isClosed)
        #expect(sim.b.stats.requestsSent > 0 && sim.a.stats.requestsServed == 0, "\(sim.a.stats)")
        #expect(reader.heldRanges().isEmpty)
    }

    @Test("a forked root (two valid signatures, one length): refused, the fork proof kept")
    func forkedRoot() throws {
        // The same master secret and name in two stores: one key pair, two different trees.
        let honest = try Fixtures.authorBook(Fixtures.store(dir.sub("a1"), seed: 1), count: 50)
        let forkStore = try Fixtures.store(dir.sub("a2"), seed: 1)
        let forked = try forkStore.createOrOpen(name: "ana-bob-task")
        try forked.append(contentsOf: (0..<50).map { Fixtures.page($0 + 1_000_000) })
        #expect(forked.id == honest.id)

        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: honest.id)
        var first = pair(author: honest, reader: reader)
        let done10 = first.run { _ in reader.contiguousLength == 50 }
        #expect(done10)
        let before = try reader.pages(in: 0..<50)

        var second = pair(author: forked, reader: reader)
        second.run(for: .seconds(10)) { $0.b.isClosed }
        #expect(second.actionsB.contains { if case .refused(.forked, _, .some) = $0 { true } else { false } })
        #expect(reader.forkProof?.isSelfEvident == true)
        #expect(reader.length == 50)
        #expect(try reader.pages(in: 0..<50) == before)
    }

    @Test("a holder announcing two roots of one length: refused, and the fork proof kept in the store")
    func twoRootsFromOneHolderAreKept() throws {
        let honest = try Fixtures.authorBook(Fixtures.store(dir.sub("a1"), seed: 1), count: 5)
        let forkStore = try Fixtures.store(dir.sub("a2"), seed: 1)
        let forked = try forkStore.createOrOpen(name: "ana-bob-task")
        try forked.append(contentsOf: (0..<5).map { Fixtures.page($0 + 1_000_000) })
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: honest.id)
        func status(_ sequence: UInt32, _ root: SignedRoot) -> ReplicationMessage.Status {
            ReplicationMessage.Status(sequence: sequence, acknowledged: 0, needsAck: false, rangesTruncated: false,
                                      length: root.length, root: (root.rootHash, root.signature), held: [0..<root.length])
        }
        var fetcher = Fetcher(interest: .all, configuration: ReplicationConfiguration())
        let first = try #require(honest.signedRoot), second = try #require(forked.signedRoot)
        #expect(fetcher.remoteStatus(status(1, first), book: reader) == .nothing)
        // Seen again (a remote alternating between statuses): nothing to do.
        #expect(fetcher.remoteStatus(status(2, first), book: reader) == .nothing)
        let outcome = fetcher.remoteStatus(status(3, second), book: reader)
        let fork = ForkProof(first: first, second: second)
        #expect(outcome == .refuse(.forked, "the remote announced two roots at length 5", fork))
        // Kept like a fork found by the store itself: the book is refused from now on.
        #expect(reader.forkProof == fork)
        #expect(throws: BooksError(.forked, "")) { try reader.proof(for: 0..<0) }
        // A proof that proves nothing is not kept.
        let other = try Fixtures.store(dir.sub("c"), seed: 3).open(id: honest.id)
        #expect(throws: BooksError(.invalidProof, "")) { try other.keep(ForkProof(first: first, second: first)) }
        #expect(other.forkProof == nil)
    }

    /// PROTOCOL.md §3.6, §9.6, §10.3: a vault restored from its key alone writes its book
    /// again from page 0; the reader, holding the old pages, refuses it as forked. The
    /// author gives its book up (`becomeReader`) and fetches the old version from that
    /// reader, which serves it — to the book's author only — from the history it verified.
    @Test("a restored author takes back its book's old version from the reader that refuses the book as forked")
    func restoredAuthorTakesBackItsBook() throws {
        let honest = try Fixtures.authorBook(Fixtures.store(dir.sub("a1"), seed: 1), count: 300)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: honest.id)
        var first = pair(author: honest, reader: reader)
        #expect(first.run { _ in reader.contiguousLength == 300 })
        // The store is lost; the key is not. Three new pages under the same key.
        let restoredStore = try Fixtures.store(dir.sub("a2"), seed: 1)
        let restored = try restoredStore.createOrOpen(name: "ana-bob-task")
        try restored.append(contentsOf: (0..<3).map { Fixtures.page($0 + 1_000_000) })
        var fork = pair(author: restored, reader: reader)
        fork.run(for: .seconds(10)) { $0.a.isClosed && $0.b.isClosed }
        #expect(reader.forkProof != nil || restored.forkProof != nil)
        // Make sure the reader refuses the book itself, the harder case.
        if reader.forkProof == nil {
            #expect(throws: BooksError(.forked, "")) { try reader.check(signedRoot: #require(restored.signedRoot)) }
        }
        #expect(throws: BooksError(.forked, "")) { try reader.proof(for: 0..<1) }

        try restored.becomeReader()
        // The reader is machine A (the holder); its remote, peer 2, is the restored author.
        // Not known as the book's author: a forked book is served to nobody.
        var stranger = pair(author: reader, reader: restored)
        stranger.run(for: .seconds(5)) { _ in restored.length > 0 }
        #expect(restored.heldRanges().isEmpty)
        #expect(stranger.b.stats.pagesStored == 0)
        // Known as the author: served, verified against the author's signature, stored.
        let knowsTheAuthor = ReplicationPolicy(secret: { _ in Fixtures.secret },
                                               authorize: { _, _, check in check.proves(secret: Fixtures.secret) },
                                               author: { _ in Fixtures.peer(2) })
        var back = pair(author: reader, reader: restored, authorPolicy: knowsTheAuthor)
        let done = back.run { _ in restored.contiguousLength == 300 }
        #expect(done)
        #expect(try Fixtures.checkIdentical(restored, count: 300))
        #expect(!restored.isWritable && restored.forkProof == nil)
        #expect((back.actionsA + back.actionsB).allSatisfy { if case .refused = $0 { false } else { true } })
        // The reader still refuses the book for everything else.
        #expect(reader.forkProof != nil && reader.length == 300)
    }

    @Test("a reader without the right secret is refused")
    func notAuthorized() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 10)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        let wrong = ReplicationPolicy.sharedSecret([UInt8](repeating: 9, count: 32))
        var sim = pair(author: author, reader: reader, readerPolicy: wrong)
        sim.run(for: .seconds(10)) { $0.a.isClosed && $0.b.isClosed }
        // Each side checks the other's capability: whichever checks first refuses.
        let refusals = (sim.actionsA + sim.actionsB).filter { if case .refused(.notAuthorized, _, _) = $0 { true } else { false } }
        #expect(!refusals.isEmpty)
        #expect(sim.a.isClosed && sim.b.isClosed)
        #expect(reader.heldRanges().isEmpty)
    }

    @Test("a request flood is bounded, then refused")
    func flood() throws {
        var configuration = ReplicationConfiguration()
        configuration.maxQueuedServes = 8
        configuration.floodLimit = 100
        let (sent, refusal) = try requestsUntilClosed(configuration, opened: true)
        #expect(sent == 8 + 101)
        #expect(refusal == .flood)
    }

    @Test("requests without an accepted open are answered not-authorized, then refused as a flood")
    func unauthorizedFlood() throws {
        var configuration = ReplicationConfiguration()
        configuration.floodLimit = 50
        let (sent, refusal) = try requestsUntilClosed(configuration, opened: false)
        #expect(sent == 51)
        // §9.6: whatever kind of refused request crosses the limit, the refusal is a flood.
        #expect(refusal == .flood)
    }

    /// Sends an author's machine requests (after the reader's open, or without one) until it
    /// closes the channel, 1000 at most: how many it took, and the refusal it reported.
    private func requestsUntilClosed(_ configuration: ReplicationConfiguration, opened: Bool) throws -> (Int, RefuseReason?) {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 100)
        let (binding, _) = Fixtures.bindings()
        var machine = ReplicationMachine(book: author, binding: binding, policy: Fixtures.policy, interest: .none,
                                         configuration: configuration)
        let now = Timestamp(nanoseconds: 1)
        machine.start(now: now)
        if opened {
            let capability = ReadCapability.make(secret: Fixtures.secret, book: author.id, handshakeHash: Fixtures.handshakeHash,
                                                 sender: .responder)
            machine.receive(ReplicationMessage.open(.init(book: author.id, capability: capability)).encoded(), now: now)
        }
        _ = machine.takeMessages(serveLimit: 0)
        var sent = 0
        while !machine.isClosed, sent < 1000 {
            let request = ReplicationMessage.Request(id: UInt32(sent + 1), pages: 0..<10, atLength: 100, fromLength: 0,
                                                     maxBytes: 1 << 20, fragments: [])
            machine.receive(ReplicationMessage.request(request).encoded(), now: now)
            sent += 1
        }
        let refusal = machine.takeActions().lazy.compactMap { action -> RefuseReason? in
            if case let .refused(reason, _, _) = action { reason } else { nil }
        }.first
        return (sent, refusal)
    }

    @Test("garbage on the channel closes it; an unknown message type is ignored")
    func garbage() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 1)
        let (binding, _) = Fixtures.bindings()
        var machine = ReplicationMachine(book: author, binding: binding, policy: Fixtures.policy, interest: .none)
        let now = Timestamp(nanoseconds: 1)
        machine.start(now: now)
        machine.receive([ReplicationWire.version, 0xEE, 1, 2, 3], now: now)
        #expect(!machine.isClosed)
        machine.receive([ReplicationWire.version, ReplicationWire.MessageType.status.rawValue, 1], now: now)
        #expect(machine.isClosed)
        #expect(machine.takeActions().contains { if case .refused(.malformed, _, _) = $0 { true } else { false } })
    }

    /// Found by fuzz-replication: a status whose root its author signed for more pages than
    /// a book holds (§3.1) is refused as invalid data, as a status with a bad signature is;
    /// the reader never asks for those pages, and nothing is stored.
    @Test("a validly signed root of more pages than a book holds is refused")
    func rootBeyondAnyBook() throws {
        let author = try Fixtures.authorBook(Fixtures.store(dir.sub("a"), seed: 1), count: 1)
        let reader = try Fixtures.store(dir.sub("b"), seed: 2).open(id: author.id)
        let keys = try BookName.keyPair(masterSecret: SecretBytes(copying: [UInt8](repeating: 1, count: 32)), name: "ana-bob-task")
        let length = Book.maximumLength + 1
        let rootHash = try PageHash(bytes: [UInt8](repeating: 5, count: 32))
        let signature = keys.sign(SignedRoot.signable(book: author.id, length: length, rootHash: rootHash))
        let (_, binding) = Fixtures.bindings()
        var machine = ReplicationMachine(book: reader, binding: binding, policy: Fixtures.policy, interest: .all)
        let now = Timestamp(nanoseconds: 1)
        machine.start(now: now)
        let status = ReplicationMessage.status(.init(sequence: 1, acknowledged: 0, needsAck: true, rangesTruncated: false,
                                                     length: length, root: (rootHash, signature), held: [0..<length]))
        machine.receive(status.encoded(), now: now)
        let closed = machine.isClosed
        #expect(closed)
        #expect(machine.takeActions().contains { if case .refused(.invalidData, _, _) = $0 { true } else { false } })
        #expect(!machine.takeMessages().contains { if case .request? = try? ReplicationMessage.decode($0).get() { true } else { false } })
        #expect(reader.length == 0 && reader.heldRanges().isEmpty)
    }

    /// Found by fuzz-replication: a holder counted a request's pages with `Range.count`, an
    /// `Int`, which traps for more than 2^63 pages; a book that long was reachable while
    /// readers stored roots of any length (see the test above). The bound is now compared
    /// in `UInt64`: such a request is out of range, whatever book answers it.
    @Test("a request for more than 2^63 pages is out of range, not a trap")
    func requestBeyondInt() throws {
        let book = EndlessBook()
        let (binding, _) = Fixtures.bindings()
        var machine = ReplicationMachine(book: book, binding: binding, policy: Fixtures.policy, interest: .none)
        let now = Timestamp(nanoseconds: 1)
        machine.start(now: now)
        let capability = ReadCapability.make(secret: Fixtures.secret, book: book.id, handshakeHash: Fixtures.handshakeHash,
                                             sender: .responder)
        machine.receive(ReplicationMessage.open(.init(book: book.id, capability: capability)).encoded(), now: now)
        _ = machine.takeMessages()
        let request = ReplicationMessage.Request(id: 7, pages: 0..<(UInt64.max - 1), atLength: UInt64.max, fromLength: 0,
                                                 maxBytes: 1 << 20, fragments: [])
        machine.receive(ReplicationMessage.request(request).encoded(), now: now)
        #expect(machine.takeMessages() == [ReplicationMessage.noData(requestID: 7, reason: .outOfRange).encoded()])
        #expect(!machine.isClosed)
    }
}

/// A book that claims 2^64 − 1 pages and holds none: what a holder would be asked to serve if
/// a reader had stored a root of any length.
private final class EndlessBook: ReplicatedBook, @unchecked Sendable {
    let id = BookID(Ed25519.KeyPair.generate().publicKey)
    let isWritable = false
    let forkProof: ForkProof? = nil
    var signedRoot: SignedRoot? {
        SignedRoot(book: id, length: .max, rootHash: try! PageHash(bytes: [UInt8](repeating: 1, count: 32)),
                   signature: [UInt8](repeating: 0, count: 64))
    }

    func signedRoot(atLength length: UInt64) throws -> SignedRoot? { length == .max ? signedRoot : nil }
    func heldRanges() -> PageRanges { PageRanges() }
    func applyAnswer(signedRoot: SignedRoot, proof: MerkleProof, pages: [ArraySlice<UInt8>]) throws {
        throw BooksError(.notHeld, "nothing is stored here")
    }
    func check(signedRoot: SignedRoot) throws {}
    func keep(_ fork: ForkProof) throws {}
    func answer(pages: Range<UInt64>, atLength: UInt64, upgradingFrom fromLength: UInt64, maxBytes: Int,
                page: (UnsafeRawBufferPointer) throws -> Void) throws -> MerkleProof {
        throw BooksError(.notHeld, "nothing is held here")
    }
}
