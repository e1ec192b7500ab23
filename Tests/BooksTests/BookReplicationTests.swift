import Books
import Foundation
import Sodium
import Synchronization
import Testing

/// Two stores, an author and a reader, exchanging signed roots, proofs and pages the way
/// replication will.
@Suite("Book replication") struct BookReplicationTests {
    final class Pair: @unchecked Sendable {  // immutable after init; stores and books are thread-safe
        let authorDir = TemporaryDirectory("author")
        let readerDir = TemporaryDirectory("reader")
        let authorStore: BookStore
        let readerStore: BookStore
        let author: Book
        let reader: Book

        init(pages: Int, batch: Int = 7) throws {
            authorStore = try openStore(authorDir, secret: 1)
            readerStore = try openStore(readerDir, secret: 2)
            author = try authorStore.createOrOpen(name: "bob-ana-task")
            var next: UInt64 = 0
            while next < UInt64(pages) {
                let end = min(UInt64(pages), next + UInt64(batch))
                try author.append(contentsOf: (next..<end).map { testPage($0) })
                next = end
            }
            reader = try readerStore.open(id: author.id, title: "bob-ana-task")
        }

        /// Sends pages `range` at the author's length, upgrading the reader from its length.
        func send(_ range: Range<UInt64>) throws {
            let root = try #require(author.signedRoot)
            let proof = try author.proof(for: range, atLength: root.length, upgradingFrom: reader.length)
            try reader.apply(signedRoot: root, proof: proof, pages: author.pages(in: range))
        }

        deinit {
            authorStore.close()
            readerStore.close()
            authorDir.remove()
            readerDir.remove()
        }
    }

    /// A subscriber's task cancelled while the store yields to it: the stream's termination
    /// handler runs under the task's status lock, which the yield needs. The store used to
    /// yield under its own lock, which the handler takes: the two threads deadlocked (seen
    /// as a hung test run). Many short-lived subscriptions against a stream of commits.
    @Test(.timeLimit(.minutes(1)))
    func subscribersCancelledWhileTheStoreNotifiesDoNotDeadlockIt() async throws {
        let pair = try Pair(pages: 1500, batch: 1500)
        let done = Atomic<Bool>(false)
        let failure = Mutex<String?>(nil)
        // Commits on a thread of their own, so a stuck pool cannot hide a stuck store.
        let applier = Thread {
            do {
                for i in UInt64(0)..<1500 { try pair.send(i..<(i + 1)) }
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            done.store(true, ordering: .releasing)
        }
        applier.start()
        var subscriptions = 0
        while !done.load(ordering: .acquiring) {
            let updates = pair.reader.lengthUpdates
            let waiter = Task { for await _ in updates {} }
            await Task.yield()
            waiter.cancel()
            await waiter.value
            subscriptions += 1
        }
        #expect(failure.withLock { $0 } == nil)
        #expect(pair.reader.length == 1500)
        #expect(subscriptions > 0)
    }

    @Test func everyRangeProofVerifiesAtEveryLength() throws {
        let pair = try Pair(pages: 0)
        // One page per batch so that a signed root exists at every length.
        for i in UInt64(0)..<33 { try pair.author.append(testPage(i)) }
        for length in UInt64(1)...33 {
            let root = try #require(try pair.author.signedRoot(atLength: length))
            for start in UInt64(0)..<length {
                for end in (start + 1)...length {
                    let proof = try pair.author.proof(for: start..<end, atLength: length)
                    #expect(proof.verifies(pages: try pair.author.pages(in: start..<end), against: root))
                }
            }
        }
        // And through a store, for a sample.
        for (length, range) in [(UInt64(1), UInt64(0)..<1), (13, 5..<9), (32, 31..<32), (33, 0..<33), (33, 32..<33)] {
            let dir = TemporaryDirectory("fresh")
            defer { dir.remove() }
            let fresh = try openStore(dir, secret: 3)
            let book = try fresh.open(id: pair.author.id)
            let root = try #require(try pair.author.signedRoot(atLength: length))
            try book.apply(signedRoot: root, proof: pair.author.proof(for: range, atLength: length), pages: pair.author.pages(in: range))
            #expect(book.length == length)
            for i in range { #expect(try book.get(i) == testPage(i)) }
            try book.verify()
            fresh.close()
        }
    }

    @Test func sparseReaderHoldsPage900WithoutTheOthers() throws {
        let pair = try Pair(pages: 1000, batch: 100)
        try pair.send(900..<901)
        #expect(pair.reader.length == 1000)
        #expect(pair.reader.has(900))
        #expect(!pair.reader.has(899) && !pair.reader.has(0))
        #expect(pair.reader.contiguousLength == 0)
        #expect(try pair.reader.get(900) == testPage(900))
        #expect(try pair.reader.get(899) == nil)
        #expect(pair.reader.missing(in: 0..<1000) == [0..<900, 901..<1000])
        try pair.reader.verify()
        // The sparse reader can prove its page to a third peer.
        let proof = try pair.reader.proof(for: 900)
        let thirdDir = TemporaryDirectory("third")
        defer { thirdDir.remove() }
        let third = try openStore(thirdDir, secret: 4)
        let copy = try third.open(id: pair.author.id)
        try copy.apply(signedRoot: #require(pair.reader.signedRoot), proof: proof, pages: [testPage(900)])
        #expect(try copy.get(900) == testPage(900))
        third.close()
        // More pages arrive, out of order; the reader fills in.
        try pair.send(0..<10)
        try pair.send(500..<600)
        #expect(pair.reader.contiguousLength == 10)
        #expect(pair.reader.heldRanges().ranges == [0..<10, 500..<600, 900..<901])
        try pair.reader.verify()
    }

    /// A reader's answers commit without an fsync, an author's appends with one: in a store
    /// that does both, interleaved, every one is there after close and reopen.
    @Test func appliedAnswersAndAppendsInterleavedSurviveReopen() throws {
        let pair = try Pair(pages: 60, batch: 10)
        let own = try pair.readerStore.createOrOpen(name: "ana-bob-task")
        for step in UInt64(0)..<6 {
            try pair.send((step * 10)..<(step * 10 + 10))
            try own.append(contentsOf: (step * 3..<(step * 3 + 3)).map { testPage($0, size: 100) })
        }
        try pair.reader.check(signedRoot: #require(pair.author.signedRoot))
        let ownID = own.id
        pair.readerStore.close()
        let reopened = try openStore(pair.readerDir, secret: 2)
        defer { reopened.close() }
        let reader = try reopened.open(id: pair.author.id)
        #expect(reader.length == 60 && reader.contiguousLength == 60)
        #expect(reader.heldRanges().ranges == [0..<60])
        for i in UInt64(0)..<60 { #expect(try reader.get(i) == testPage(i)) }
        try reader.verify()
        let mine = try reopened.open(id: ownID)
        #expect(mine.length == 18 && mine.isWritable)
        try mine.verify()
        withExtendedLifetime(pair) {}  // its directories hold the reopened store
    }

    @Test func readerFollowsTheAuthorWithUpgradeProofs() async throws {
        let pair = try Pair(pages: 5)
        var updates = pair.reader.lengthUpdates.makeAsyncIterator()
        try pair.send(0..<5)
        #expect(await updates.next()?.length == 5)
        for round in 0..<12 {
            let start = pair.author.length
            try pair.author.append(contentsOf: (start..<(start + UInt64(round % 4 + 1))).map { testPage($0) })
            // Upgrade alone, then the pages against the new length.
            let root = try #require(pair.author.signedRoot)
            try pair.reader.apply(signedRoot: root, proof: pair.author.upgradeProof(from: pair.reader.length), pages: [])
            #expect(pair.reader.length == root.length)
            try pair.send(start..<root.length)
            let update = await updates.next()
            #expect(update?.length == root.length)
            #expect(update?.contiguousLength == root.length)
        }
        try pair.reader.verify()
        #expect(try pair.reader.pages(in: 0..<pair.reader.length) == pair.author.pages(in: 0..<pair.author.length))
    }

    @Test func proofMustUpgradeFromTheVerifiedLength() throws {
        let pair = try Pair(pages: 10)
        try pair.send(0..<3)
        try pair.author.append(testPage(10))
        let root = try #require(pair.author.signedRoot)
        // A proof for the longer tree that ignores what the reader verified is refused.
        let unlinked = try pair.author.proof(for: 10..<11, atLength: root.length, upgradingFrom: 0)
        let error = #expect(throws: BooksError.self) { try pair.reader.apply(signedRoot: root, proof: unlinked, pages: [testPage(10)]) }
        #expect(error?.code == .staleProof)
        #expect(pair.reader.length == 10)
    }

    @Test func rootsSignedByAnotherKeyAreRejected() throws {
        let pair = try Pair(pages: 4)
        let root = try #require(pair.author.signedRoot)
        let proof = try pair.author.proof(for: 0..<4)
        let impostor = Ed25519.KeyPair.generate()
        let signable = SignedRoot.signable(book: root.book, length: root.length, rootHash: root.rootHash)
        let forged = SignedRoot(book: root.book, length: root.length, rootHash: root.rootHash, signature: impostor.sign(signable))
        let error = #expect(throws: BooksError.self) { try pair.reader.apply(signedRoot: forged, proof: proof, pages: pair.author.pages(in: 0..<4)) }
        #expect(error?.code == .invalidSignature)
        // A root of another book (validly signed by that book) is not this book's.
        let otherDir = TemporaryDirectory("other")
        defer { otherDir.remove() }
        let otherStore = try openStore(otherDir, secret: 9)
        let other = try otherStore.createOrOpen(name: "other")
        try other.append(contentsOf: (0..<4).map { testPage($0) })
        let otherError = #expect(throws: BooksError.self) {
            try pair.reader.apply(signedRoot: #require(other.signedRoot), proof: other.proof(for: 0..<4), pages: other.pages(in: 0..<4))
        }
        #expect(otherError?.code == .invalidSignature)
        otherStore.close()
        #expect(pair.reader.length == 0)
        #expect(!pair.reader.has(0))
    }

    @Test func twoRootsAtOneLengthAreAForkThatIsKeptAndRefused() throws {
        let pair = try Pair(pages: 6)
        try pair.send(0..<6)
        // The author's key signs a second, different tree of the same length.
        let secondDir = TemporaryDirectory("fork")
        defer { secondDir.remove() }
        let twin = try openStore(secondDir, secret: 1)  // same master secret, same name: same key
        let twinBook = try twin.createOrOpen(name: "bob-ana-task")
        #expect(twinBook.id == pair.author.id)
        try twinBook.append(contentsOf: (0..<6).map { testPage($0 + 100) })
        let forkedRoot = try #require(twinBook.signedRoot)
        let error = #expect(throws: BooksError.self) {
            try pair.reader.apply(signedRoot: forkedRoot, proof: twinBook.proof(for: 0..<1), pages: [testPage(100)])
        }
        #expect(error?.code == .forked)
        let fork = try #require(pair.reader.forkProof)
        #expect(fork.isSelfEvident)
        #expect(fork.first == pair.author.signedRoot)
        #expect(fork.second == forkedRoot)
        // The fork is persisted and the book stays refused after reopening.
        pair.readerStore.close()
        let reopened = try openStore(pair.readerDir, secret: 2)
        let again = try reopened.open(id: pair.author.id)
        #expect(again.forkProof == fork)
        #expect(try reopened.list().first?.isForked == true)
        #expect(throws: BooksError(.forked, "")) { try again.proof(for: 0..<1) }
        #expect(throws: BooksError(.forked, "")) {
            try again.apply(signedRoot: pair.author.signedRoot!, proof: pair.author.proof(for: 0..<1), pages: [testPage(0)])
        }
        #expect(try again.get(0) == testPage(0))  // what was verified stays readable
        reopened.close()
        twin.close()
    }

    @Test func anUpgradeThatDoesNotExtendTheVerifiedTreeIsAFork() throws {
        let pair = try Pair(pages: 5)
        try pair.send(0..<5)
        let twinDir = TemporaryDirectory("twin")
        defer { twinDir.remove() }
        let twin = try openStore(twinDir, secret: 1)
        let twinBook = try twin.createOrOpen(name: "bob-ana-task")
        // Same first 3 pages, then a different history, longer than the reader's.
        try twinBook.append(contentsOf: (0..<3).map { testPage($0) } + (3..<9).map { testPage($0 + 50) })
        let error = #expect(throws: BooksError.self) {
            try pair.reader.apply(signedRoot: #require(twinBook.signedRoot), proof: twinBook.upgradeProof(from: 5), pages: [])
        }
        #expect(error?.code == .forked)
        #expect(pair.reader.forkProof?.second == twinBook.signedRoot)
        #expect(pair.reader.length == 5)
        twin.close()
    }

    /// The author's key in a second store (same master secret, same name), writing
    /// `pages` — a vault restored from its key alone.
    func twin(_ dir: TemporaryDirectory, pages: [[UInt8]]) throws -> (BookStore, Book) {
        let store = try openStore(dir, secret: 1)
        let book = try store.createOrOpen(name: "bob-ana-task")
        if !pages.isEmpty { try book.append(contentsOf: pages) }
        return (store, book)
    }

    @Test func aShorterRootThatIsNoPrefixOfTheHeldTreeIsAFork() throws {
        // The reader fetched 8 pages in one answer: it holds the root of length 8 only.
        let pair = try Pair(pages: 8, batch: 8)
        try pair.send(0..<8)
        #expect(try pair.reader.signedRoot(atLength: 6) == nil)
        // The true prefix at length 6 (signed by the author when it was 6 long, elsewhere)
        // fits the held tree: no fork.
        let prefixDir = TemporaryDirectory("prefix")
        defer { prefixDir.remove() }
        let (prefixStore, prefix) = try twin(prefixDir, pages: (0..<6).map { testPage($0) })
        try pair.reader.check(signedRoot: #require(prefix.signedRoot))
        #expect(pair.reader.forkProof == nil)
        // A restored author's 6 new pages: a fork, found before its book is 8 long.
        let twinDir = TemporaryDirectory("twin")
        defer { twinDir.remove() }
        let (twinStore, restored) = try twin(twinDir, pages: (0..<6).map { testPage($0 + 100) })
        let error = #expect(throws: BooksError.self) { try pair.reader.check(signedRoot: #require(restored.signedRoot)) }
        #expect(error?.code == .forked)
        #expect(pair.reader.forkProof == ForkProof(first: pair.author.signedRoot!, second: restored.signedRoot!))
        #expect(pair.reader.length == 8)
        #expect(try pair.reader.get(7) == testPage(7))  // what was verified stays readable
        prefixStore.close()
        twinStore.close()
    }

    @Test func aSparseReaderWithoutThePeaksComparesNothing() throws {
        // Page 0 of 8 and its proof: the tree's nodes over 0..<4 and 4..<8, not 4..<6, a
        // peak at length 6. (Page 7's proof would bring both peaks of length 6.)
        let pair = try Pair(pages: 8, batch: 8)
        try pair.send(0..<1)
        let twinDir = TemporaryDirectory("twin")
        defer { twinDir.remove() }
        let (twinStore, restored) = try twin(twinDir, pages: (0..<6).map { testPage($0 + 100) })
        try pair.reader.check(signedRoot: #require(restored.signedRoot))
        #expect(pair.reader.forkProof == nil)
        twinStore.close()
    }

    @Test func anAuthorShownARootLongerThanItsBookLostItsStore() throws {
        // The reader holds 8 pages; the author's store is lost and written again, 3 pages.
        let pair = try Pair(pages: 8, batch: 8)
        try pair.send(0..<8)
        let twinDir = TemporaryDirectory("twin")
        defer { twinDir.remove() }
        let (twinStore, restored) = try twin(twinDir, pages: (0..<3).map { testPage($0 + 100) })
        let error = #expect(throws: BooksError.self) { try restored.check(signedRoot: #require(pair.reader.signedRoot)) }
        #expect(error?.code == .forked)
        #expect(error?.detail.contains("holds 3 pages, but its key signed a root of 8: this store lost pages") == true)
        #expect(restored.forkProof == ForkProof(first: restored.signedRoot!, second: pair.reader.signedRoot!))
        // A reader shown a longer root learns of news, nothing more.
        try pair.author.append(testPage(8))
        try pair.reader.check(signedRoot: #require(pair.author.signedRoot))
        #expect(pair.reader.forkProof == nil)
        twinStore.close()
    }

    /// Review 9: what an honest author signed never makes anyone record a fork, however it is
    /// shown to them: every root of the book's history, in any order, to the author itself,
    /// to a reader that followed every batch (every root held), to one that fetched the book
    /// in one answer (one root held: shorter roots are checked against its tree's peaks),
    /// and to a sparse one (peaks missing: nothing compared); a root of another book of the
    /// same author (not this book's: the Fetcher refuses it first, its signature does not
    /// verify for this id); and the author's own latest root while it keeps appending.
    @Test func noRootAnHonestAuthorSignedIsAForkAnywhere() throws {
        let pair = try Pair(pages: 0)
        var roots: [SignedRoot] = []
        var next: UInt64 = 0
        for batch in [1, 3, 2, 5, 1, 4, 7, 9, 1] as [UInt64] {
            try pair.author.append(contentsOf: (next..<(next + batch)).map { testPage($0) })
            next += batch
            roots.append(try #require(pair.author.signedRoot))
            try pair.send(pair.reader.length..<next)
        }
        let latest = try #require(pair.author.signedRoot)
        func reader(_ secret: UInt8, _ dir: TemporaryDirectory, pages: [Range<UInt64>]) throws -> (BookStore, Book) {
            let store = try openStore(dir, secret: secret)
            let book = try store.open(id: pair.author.id, title: "bob-ana-task")
            for range in pages {
                let proof = try pair.author.proof(for: range, atLength: latest.length, upgradingFrom: book.length)
                try book.apply(signedRoot: latest, proof: proof, pages: pair.author.pages(in: range))
            }
            return (store, book)
        }
        let oneDir = TemporaryDirectory("one-answer"), sparseDir = TemporaryDirectory("sparse")
        defer { oneDir.remove(); sparseDir.remove() }
        let (oneStore, oneAnswer) = try reader(3, oneDir, pages: [0..<next])
        let (sparseStore, sparse) = try reader(4, sparseDir, pages: [0..<1, 17..<18])
        defer { oneStore.close(); sparseStore.close() }
        #expect(try oneAnswer.signedRoot(atLength: 6) == nil, "the one-answer reader holds the latest root only")
        let holders = [pair.author, pair.reader, oneAnswer, sparse]
        let other = try pair.authorStore.createOrOpen(name: "bob-carol-task")
        try other.append(contentsOf: (0..<4).map { testPage($0 + 50) })
        let foreign = try #require(other.signedRoot)
        #expect(!SignedRoot(book: pair.author.id, length: foreign.length, rootHash: foreign.rootHash, signature: foreign.signature).isValid)
        var rng = SystemRandomNumberGenerator()
        for order in [roots, roots.reversed(), roots.shuffled(using: &rng)] {
            for root in order + [foreign] {
                for holder in holders { try holder.check(signedRoot: root) }
            }
        }
        for holder in holders { #expect(holder.forkProof == nil) }
        // The author appends on another thread while its latest root is shown to it and to
        // the readers, as statuses would be: never a fork.
        let done = Atomic<Bool>(false)
        let appended = next
        let appender = Thread {
            for i in appended..<(appended + 300) { _ = try? pair.author.append(testPage(i)) }
            done.store(true, ordering: .releasing)
        }
        appender.start()
        var shown = 0
        while !done.load(ordering: .acquiring) || shown == 0 {
            let root = try #require(pair.author.signedRoot)
            for holder in holders { try holder.check(signedRoot: root) }
            if root.length > pair.reader.length { try pair.send(pair.reader.length..<root.length) }
            try pair.reader.check(signedRoot: root)
            shown += 1
        }
        #expect(pair.author.length == next + 300 && pair.reader.length >= next)
        for holder in holders { #expect(holder.forkProof == nil) }
    }

    /// Found by fuzz-replication (a hostile author's answer): a validly signed root of more
    /// pages than a book holds (2^40, §3.1) was stored. Page 2^40 of book number 1 went to
    /// the row key of its page 0 (§4.3), and a page with more than 40 trailing one bits to a
    /// row with more tree nodes than a row holds, so the reader's own `verify()` then called
    /// its store corrupt. Now refused before anything is stored, by `apply` and `check`.
    @Test func rootsOfMorePagesThanABookHoldsAreRefusedHoweverSigned() throws {
        let pair = try Pair(pages: 1)
        let keys = try BookName.keyPair(masterSecret: masterSecret(1), name: "bob-ana-task")
        let page = Array("forged".utf8)
        // Length 2^40 + 1: a perfect tree of 2^40 pages, then page 2^40 alone.
        let length = Book.maximumLength + 1
        let peaks = FlatTree.roots(length: length)
        let left = TreeNode(index: peaks[0], hash: try PageHash(bytes: [UInt8](repeating: 7, count: 32)))
        let rootHash = PageHash.root(peaks: [left, TreeNode(index: peaks[1], hash: PageHash.leaf(page))])
        let signable = SignedRoot.signable(book: pair.author.id, length: length, rootHash: rootHash)
        let root = SignedRoot(book: pair.author.id, length: length, rootHash: rootHash, signature: keys.sign(signable))
        #expect(root.isValid)
        let proof = MerkleProof(pages: Book.maximumLength..<length, length: length, fromLength: 0, nodes: [left])
        let error = #expect(throws: BooksError.self) { try pair.reader.apply(signedRoot: root, proof: proof, pages: [page]) }
        #expect(error?.code == .invalidProof)
        #expect(error?.limit == Int(Book.maximumLength))
        #expect(throws: BooksError(.invalidProof, "")) { try pair.reader.check(signedRoot: root) }
        #expect(pair.reader.length == 0 && pair.reader.heldRanges().isEmpty)
        // The proof does not verify on its own either: no tree is that long.
        #expect(!proof.verifies(pages: [page], against: root))

        // Exactly 2^40 pages is a book's: its last page is stored and verifies after reopening.
        let full = Book.maximumLength
        let last = (full - 1)..<full
        let nodes = MerkleProof.nodeIndices(pages: last, length: full, fromLength: 0).map {
            TreeNode(index: $0, hash: PageHash.leaf(testPage($0)))
        }
        let fullProof = MerkleProof(pages: last, length: full, fromLength: 0, nodes: nodes)
        let fullHash = try fullProof.evaluate(pageHashes: [PageHash.leaf(page)], trusted: [:]).rootHash
        let fullRoot = SignedRoot(book: pair.author.id, length: full, rootHash: fullHash,
                                  signature: keys.sign(SignedRoot.signable(book: pair.author.id, length: full, rootHash: fullHash)))
        try pair.reader.apply(signedRoot: fullRoot, proof: fullProof, pages: [page])
        pair.readerStore.close()
        let reopened = try openStore(pair.readerDir, secret: 2)
        let again = try reopened.open(id: pair.author.id)
        #expect(again.heldRanges().ranges == [last])
        #expect(try again.get(full - 1) == page)
        #expect(try again.get(0) == nil)
        try again.verify()
        reopened.close()
    }

    /// A vault restored from its key alone writes its book again from page 0: a fork its
    /// store finds when shown the reader's root (§3.6). It gives the book up — pages, nodes,
    /// roots and fork proof dropped, the book kept read-only under its id and name — and
    /// takes back the reader's version, which the reader serves from the history it verified
    /// even though it refuses the book as forked itself (§4.7, §9.6).
    @Test func aRestoredAuthorGivesItsForkedBookUpAndTakesBackTheReadersVersion() throws {
        let pair = try Pair(pages: 8, batch: 3)
        try pair.send(0..<8)
        let twinDir = TemporaryDirectory("twin")
        defer { twinDir.remove() }
        var twinStore = try openStore(twinDir, secret: 1)
        // Books on either side of it, to show the drop keeps to its own book's rows.
        let before = try twinStore.createOrOpen(name: "aaa")
        try before.append(contentsOf: (0..<5).map { testPage($0 + 500) })
        let restored = try twinStore.createOrOpen(name: "bob-ana-task")
        try restored.append(contentsOf: (0..<3).map { testPage($0 + 100) })
        let after = try twinStore.createOrOpen(name: "zzz")
        try after.append(contentsOf: (0..<4).map { testPage($0 + 700) })
        // The fork, found on both sides.
        #expect(throws: BooksError(.forked, "")) { try restored.check(signedRoot: #require(pair.reader.signedRoot)) }
        #expect(throws: BooksError(.forked, "")) { try pair.reader.check(signedRoot: #require(restored.signedRoot)) }
        #expect(restored.forkProof != nil && pair.reader.forkProof != nil)

        try restored.becomeReader()
        #expect(!restored.isWritable && restored.name == "bob-ana-task" && restored.id == pair.author.id)
        #expect(restored.length == 0 && restored.signedRoot == nil && restored.heldRanges().isEmpty && restored.forkProof == nil)
        #expect(try restored.get(0) == nil)
        #expect(throws: BooksError(.readOnly, "")) { try restored.append(testPage(0)) }
        #expect(throws: BooksError(.readOnly, "")) { try restored.becomeReader() }
        try restored.verify()
        // Nothing of it is left on disk but its book row; its neighbours are untouched.
        let number = try RawSQLite.integer(twinDir.databaseFile, "SELECT id FROM book WHERE name = 'bob-ana-task'")
        for sql in ["SELECT count(*) FROM page WHERE key >= \(number << 40) AND key < \((number + 1) << 40)",
                    "SELECT count(*) FROM node WHERE book = \(number)", "SELECT count(*) FROM root WHERE book = \(number)",
                    "SELECT count(*) FROM fork WHERE book = \(number)",
                    "SELECT writable FROM book WHERE id = \(number)"] {
            #expect(try RawSQLite.integer(twinDir.databaseFile, sql) == 0, "\(sql)")
        }
        for neighbour in [before, after] {
            #expect(neighbour.isWritable && neighbour.contiguousLength == neighbour.length && neighbour.length > 0)
            try neighbour.verify()
        }

        // The reader refuses the book, yet serves its author the history it verified.
        #expect(throws: BooksError(.forked, "")) { try pair.reader.proof(for: 0..<8) }
        let root = try #require(pair.reader.signedRoot)
        try restored.apply(signedRoot: root, proof: pair.reader.historyProof(for: 0..<5, atLength: 8), pages: pair.reader.pages(in: 0..<5))
        try restored.apply(signedRoot: root, proof: pair.reader.historyProof(for: 5..<8, atLength: 8), pages: pair.reader.pages(in: 5..<8))
        #expect(try restored.pages(in: 0..<8) == (0..<8).map { testPage($0) })
        try restored.check(signedRoot: root)
        #expect(restored.forkProof == nil)
        twinStore.close()
        twinStore = try openStore(twinDir, secret: 1)
        let reopened = try #require(try twinStore.book(named: "bob-ana-task"))
        #expect(reopened.id == pair.author.id && !reopened.isWritable && reopened.length == 8 && reopened.contiguousLength == 8)
        try reopened.verify()
        #expect(try twinStore.list().first { $0.name == "bob-ana-task" }.map { !$0.isWritable && !$0.isForked } == true)
        #expect(try #require(try twinStore.book(named: "aaa")).length == 5)
        #expect(try #require(try twinStore.book(named: "zzz")).length == 4)
        twinStore.close()
    }
}
