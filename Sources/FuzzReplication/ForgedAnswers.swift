import Books
import FuzzSupport
import Sodium
import Swarm
import Replication

/// Answers from a hostile author, who can sign any tree: the script picks a length, pages
/// and the hashes of every node the proof carries, and the bed signs the root they lead to
/// with the author's key (`BookFixtures.authorKeys`). Then, in turn:
///
/// 1. a reader's machine is told of the root by a status and asks for pages;
/// 2. the reader's book applies the answer (`Book.apply`): it stores it or throws a
///    `BooksError`, and if it stored it, it holds exactly those pages and verifies;
/// 3. the reader, a holder of that book now, serves a request the script describes.
///
/// Script: u64 length, u64 first page, n (0–3 pages), a salt for the node hashes, n page
/// byte strings, then the request: u64 start, u64 end, length selector, u64 from length.
enum ForgedAnswers {
    static var seedScripts: [(name: String, bytes: [UInt8])] {
        [(40, 3, 2), (1, 0, 1), (1 << 20, 1000, 3), (1 << 39, 77, 1)].map { length, first, count in
            var s = FuzzScript()
            s.u32(UInt32(length & 0xffff_ffff)); s.u32(UInt32(length >> 32))
            s.u32(UInt32(first)); s.u32(0)
            s.byte(UInt8(count)); s.byte(0x11)
            for i in 0..<count { s.chunk(Array("forged page \(i)".utf8)) }
            s.u32(UInt32(first)); s.u32(0); s.u32(UInt32(first + count)); s.u32(0)
            s.byte(0); s.u32(0); s.u32(0)
            return ("length-\(length)", s.bytes)
        }
    }

    static func u64(_ input: inout FuzzInput) -> UInt64 { UInt64(input.u32()) | UInt64(input.u32()) << 32 }

    static func run(_ script: FuzzInput) {
        var script = script
        let fixtures = BookFixtures.shared
        let length = max(1, u64(&script))
        let first = u64(&script) % length
        let count = UInt64(script.byte() % 4)
        let pages = first..<(first + min(count, length - first))
        let salt = script.byte()
        let data = pages.map { _ in Array(script.chunk().prefix(4096)) }
        guard MerkleProof.isWellFormed(pages: pages, length: length, fromLength: 0) else {
            return refuseTooLong(length: length, pages: pages, data: data, salt: salt)
        }
        let nodes = MerkleProof.nodeIndices(pages: pages, length: length, fromLength: 0).map { index in
            var message = [salt]
            ChannelBed.appendLE(index, 8, &message)
            return TreeNode(index: index, hash: try! PageHash(bytes: BLAKE2b.hash(message, outputLength: PageHash.length)))
        }
        let proof = MerkleProof(pages: pages, length: length, fromLength: 0, nodes: nodes)
        guard let outcome = try? proof.evaluate(pageHashes: data.map { PageHash.leaf($0) }, trusted: [:]) else {
            preconditionFailure("the walk rejected the proof it defines")
        }
        let book = fixtures.author.id
        let root = signed(length: length, rootHash: outcome.rootHash)

        // 1. A reader told of the root asks for pages it may then get.
        var reader = ChannelBed.poised().reader
        reader.receive(status(root), now: .seconds(2))
        for message in reader.takeMessages() {
            guard case .success = ReplicationMessage.decode(message) else { preconditionFailure("the reader sent garbage") }
        }

        // 2. The reader's book stores the answer, or refuses it with a typed error.
        var stored = false
        do {
            try fixtures.reader.apply(signedRoot: root, proof: proof, pages: data)
            stored = true
        } catch is BooksError {
        } catch {
            preconditionFailure("Book.apply threw an untyped error: \(error)")
        }
        if stored {
            precondition(fixtures.reader.signedRoot == root, "the stored root is not the one applied")
            let forged = Dictionary(uniqueKeysWithValues: zip(pages, data))
            fixtures.checkReader(expected: { forged[$0] })

            // 3. The reader serves the book to a peer that proved its right to it.
            var holder = ReplicationMachine(book: fixtures.reader, binding: ChannelBed.holderBinding, policy: ChannelBed.policy,
                                            interest: .none)
            let now = Timestamp.seconds(3)
            holder.start(now: now)
            holder.receive(open(book), now: now)
            let start = u64(&script), end = u64(&script)
            let atLength = script.byte() & 1 == 0 ? length : u64(&script)
            holder.receive(ChannelBed.requestBytes(id: 1, start: start, end: end, atLength: atLength, fromLength: u64(&script)),
                           now: now)
            for message in holder.takeMessages() {
                precondition(message.count <= ReplicationWire.maxMessage, "a message over the channel limit")
                guard case .success = ReplicationMessage.decode(message) else { preconditionFailure("the holder sent garbage") }
            }
        }
        if !fixtures.readerIsPristine { fixtures.resetReader() }
    }

    /// The author's signed root of `length` pages with `rootHash`.
    static func signed(length: UInt64, rootHash: PageHash) -> SignedRoot {
        let fixtures = BookFixtures.shared
        let signable = SignedRoot.signable(book: fixtures.author.id, length: length, rootHash: rootHash)
        return SignedRoot(book: fixtures.author.id, length: length, rootHash: rootHash, signature: fixtures.authorKeys.sign(signable))
    }

    /// A tree of more pages than any book holds (§3.1): validly signed, it is refused all
    /// the same, by a reader's machine that is told of it and by the book, which stores
    /// nothing.
    static func refuseTooLong(length: UInt64, pages: Range<UInt64>, data: [[UInt8]], salt: UInt8) {
        let fixtures = BookFixtures.shared
        let root = signed(length: length, rootHash: try! PageHash(bytes: BLAKE2b.hash([salt], outputLength: PageHash.length)))
        var reader = ChannelBed.poised().reader
        reader.receive(status(root), now: .seconds(2))
        precondition(reader.takeActions().contains { if case .refused(.invalidData, _, _) = $0 { true } else { false } },
                     "a reader took a root of \(length) pages")
        do {
            try fixtures.reader.check(signedRoot: root)
            preconditionFailure("a root of \(length) pages passed the check")
        } catch {
            precondition((error as? BooksError)?.code == .invalidProof, "a root of \(length) pages: \(error)")
        }
        do {
            try fixtures.reader.apply(signedRoot: root, proof: MerkleProof(pages: pages, length: length, fromLength: 0, nodes: []),
                                      pages: data)
            preconditionFailure("a root of \(length) pages was stored")
        } catch {
            precondition(error is BooksError && fixtures.readerIsPristine, "a root of \(length) pages: \(error)")
        }
    }

    /// §9.2.2: a status announcing `root` and every page of it, newer than the holder's.
    static func status(_ root: SignedRoot) -> [UInt8] {
        var out: [UInt8] = [ReplicationWire.version, 2]
        ChannelBed.appendLE(1000, 4, &out)
        ChannelBed.appendLE(0, 4, &out)
        out.append(1)
        ChannelBed.appendLE(root.length, 8, &out)
        out += root.rootHash.bytes + root.signature
        ChannelBed.appendLE(1, 2, &out)
        ChannelBed.appendLE(0, 8, &out)
        ChannelBed.appendLE(root.length, 8, &out)
        return out
    }

    /// §9.2.1: the reader's open, with the capability the holder's policy accepts.
    static func open(_ book: BookID) -> [UInt8] {
        let capability = ReadCapability.make(secret: ChannelBed.secret, book: book, handshakeHash: ChannelBed.handshakeHash,
                                             sender: ChannelBed.holderBinding.localRole.peer)
        return [ReplicationWire.version, 1] + book.bytes + capability
    }
}
