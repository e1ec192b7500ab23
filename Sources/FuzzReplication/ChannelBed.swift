import Books
import FuzzSupport
import Sodium
import Swarm
import Replication

/// Two `ReplicationMachine`s over one channel, the author's book on the holder's side and
/// the reader's unread copy on the other (`BookFixtures`), poised where the reader has
/// requests in flight: opens and statuses exchanged, the holder's answers to the requests
/// made but held back (`genuine`). A script drives copies of both:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | bytes | a message to the reader |
/// | 1 | u16 ms | time passes; both run their timers |
/// | 2 | | what each sent the other is delivered |
/// | 3 | n | genuine message n (an open, a status, a fragment of an answer) to the reader |
/// | 4 | call, operands | the reader's application: its book changed, or its interest |
/// | 5 | bytes | a message to the holder |
/// | 6 | n, u16 bit | genuine message n with one bit flipped, to the reader |
///
/// Invariants: every message either side sends decodes, re-encodes to itself and fits a
/// channel message (§9.1); a closed machine sends nothing more; every page the reader stores
/// is the author's and its book verifies. An input that stored anything resets the reader.
struct ChannelBed {
    static let secret = [UInt8](repeating: 7, count: 32)
    static let policy = ReplicationPolicy.sharedSecret(secret)
    static let handshakeHash = [UInt8](repeating: 0xAB, count: 64)
    static let holderPeer = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 1, count: 32))).publicKey)
    static let readerPeer = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 2, count: 32))).publicKey)
    static let holderBinding = SessionBinding(remote: readerPeer, handshakeHash: handshakeHash, localRole: .initiator)
    static let readerBinding = SessionBinding(remote: holderPeer, handshakeHash: handshakeHash, localRole: .responder)

    var reader: ReplicationMachine
    var holder: ReplicationMachine
    var now = Timestamp.seconds(1)
    /// What the holder sent during the set-up: open, statuses (delivered), and the data
    /// messages answering the reader's requests (held back).
    var genuine: [(name: String, bytes: [UInt8])] = []
    var toReader: [[UInt8]] = []
    var toHolder: [[UInt8]] = []

    /// The poised bed over the reader's store as it is now. After a reset only the reader's
    /// machine is made again, over the new store, fed what the holder sent it the first time
    /// (the holder's side, its answers made, is kept).
    static func poised() -> ChannelBed {
        let fixtures = BookFixtures.shared
        if let cached, cached.generation == fixtures.generation { return cached.bed }
        guard var bed = cached?.bed else {
            let bed = setUp()
            cached = (fixtures.generation, bed)
            return bed
        }
        bed.reader = ReplicationMachine(book: fixtures.reader, binding: readerBinding, policy: policy, interest: .all)
        bed.reader.start(now: bed.now)
        for message in bed.genuine.map(\.bytes) where (try? ReplicationMessage.decode(message).get()).map(isData) == false {
            bed.reader.receive(message, now: bed.now)
        }
        _ = bed.reader.takeMessages()
        _ = bed.reader.takeActions()
        cached = (fixtures.generation, bed)
        return bed
    }

    private static func isData(_ message: ReplicationMessage) -> Bool {
        if case .data = message { true } else { false }
    }

    /// Opens and statuses exchanged, requests made and answered, the answers held back.
    private static func setUp() -> ChannelBed {
        let fixtures = BookFixtures.shared
        var bed = ChannelBed(
            reader: ReplicationMachine(book: fixtures.reader, binding: readerBinding, policy: policy, interest: .all),
            holder: ReplicationMachine(book: fixtures.author, binding: holderBinding, policy: policy, interest: .none))
        bed.holder.start(now: bed.now)
        bed.reader.start(now: bed.now)
        var answered = false
        for _ in 0..<8 {
            let fromHolder = bed.holder.takeMessages()
            let fromReader = bed.reader.takeMessages()
            if fromHolder.isEmpty && fromReader.isEmpty { break }
            for message in fromHolder {
                guard case let .success(decoded) = ReplicationMessage.decode(message) else { preconditionFailure("the holder sent garbage") }
                if case .data = decoded {
                    bed.genuine.append(("data", message))
                    answered = true
                } else {
                    bed.genuine.append(("\(decoded)".prefix { $0 != "(" }.description, message))
                    bed.reader.receive(message, now: bed.now)
                }
            }
            for message in fromReader { bed.holder.receive(message, now: bed.now) }
        }
        precondition(answered && fixtures.readerIsPristine, "the bed is poised with answers held back")
        _ = bed.reader.takeActions()
        _ = bed.holder.takeActions()
        return bed
    }

    // The fuzzer runs one input at a time on one thread.
    nonisolated(unsafe) private static var cached: (generation: Int, bed: ChannelBed)?

    /// A request as the wire has it (§9.2.3), for beds that need one; nil when it does not
    /// decode (`start > end`).
    static func request(id: UInt32, pages: Range<UInt64>, atLength: UInt64, fromLength: UInt64,
                        maxBytes: UInt32 = 256 << 10) -> ReplicationMessage.Request? {
        guard case let .success(.request(request)) = ReplicationMessage.decode(
            requestBytes(id: id, start: pages.lowerBound, end: pages.upperBound, atLength: atLength, fromLength: fromLength,
                         maxBytes: maxBytes)) else { return nil }
        return request
    }

    /// `fragments`: the (first, count) pairs of a re-request (§9.2.3).
    static func requestBytes(id: UInt32, start: UInt64, end: UInt64, atLength: UInt64, fromLength: UInt64,
                             maxBytes: UInt32 = 256 << 10, fragments: [(UInt16, UInt16)] = []) -> [UInt8] {
        var out: [UInt8] = [ReplicationWire.version, 3]
        for value in [UInt64(id)] { appendLE(value, 4, &out) }
        for value in [start, end, atLength, fromLength] { appendLE(value, 8, &out) }
        appendLE(UInt64(maxBytes), 4, &out)
        appendLE(UInt64(fragments.count), 2, &out)
        for (first, count) in fragments {
            appendLE(UInt64(first), 2, &out)
            appendLE(UInt64(count), 2, &out)
        }
        return out
    }

    static func appendLE(_ value: UInt64, _ bytes: Int, _ out: inout [UInt8]) {
        for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i))) }
    }

    /// Answers as the holder encodes them, with the requests they answer (selector 1).
    static var answerSeeds: [(name: String, bytes: [UInt8])] {
        let author = BookFixtures.shared.author
        let requests: [(Range<UInt64>, UInt64)] = [(0..<3, 40), (5..<9, 40), (39..<40, 40)]
        return requests.compactMap { pages, length in
            guard let proof = try? author.proof(for: pages, atLength: length), let data = try? author.pages(in: pages) else { return nil }
            // The request (start, page count), then §9.3's answer.
            var out: [UInt8] = []
            appendLE(pages.lowerBound, 8, &out)
            appendLE(UInt64(pages.count), 2, &out)
            appendLE(pages.lowerBound, 8, &out)
            appendLE(pages.upperBound, 8, &out)
            appendLE(UInt64(proof.nodes.count), 2, &out)
            for node in proof.nodes {
                appendLE(node.index, 8, &out)
                out += node.hash.bytes
            }
            for page in data {
                appendLE(UInt64(page.count), 4, &out)
                out += page
            }
            return ("pages-\(pages.lowerBound)-\(pages.upperBound)", out)
        }
    }

    static var seedScripts: [(name: String, bytes: [UInt8])] {
        let bed = poised()
        var scripts: [(String, [UInt8])] = []
        var all = FuzzScript()
        for i in bed.genuine.indices { all.byte(3); all.byte(UInt8(i)) }
        all.byte(2); all.byte(1); all.u16(300); all.byte(2)
        scripts.append(("all-genuine", all.bytes))
        var reversed = FuzzScript()
        for i in bed.genuine.indices.reversed() { reversed.byte(3); reversed.byte(UInt8(i)) }
        scripts.append(("genuine-reversed", reversed.bytes))
        for (i, message) in bed.genuine.enumerated() {
            var s = FuzzScript()
            s.byte(0); s.chunk(message.bytes)
            s.byte(6); s.byte(UInt8(i)); s.u16(UInt16(i * 37))
            scripts.append(("\(message.name)-\(i)", s.bytes))
        }
        var exchange = FuzzScript()
        for _ in 0..<6 { exchange.byte(2); exchange.byte(1); exchange.u16(100) }
        exchange.byte(4); exchange.byte(1); exchange.byte(3)
        scripts.append(("exchange", exchange.bytes))
        var hostile = FuzzScript()
        hostile.byte(5); hostile.chunk(requestBytes(id: 9, start: 0, end: 40, atLength: 40, fromLength: 0))
        hostile.byte(5); hostile.chunk(requestBytes(id: 10, start: 30, end: 40, atLength: 40, fromLength: 25))
        hostile.byte(2)
        scripts.append(("holder-requests", hostile.bytes))
        // Re-requests naming fragments beyond the answer's count (§9.2.4 numbers them to
        // 65 535): the holder used to build a range `first..<count` with first > count.
        var beyond = FuzzScript()
        beyond.byte(5); beyond.chunk(requestBytes(id: 11, start: 0, end: 3, atLength: 40, fromLength: 0, fragments: [(1000, 1)]))
        beyond.byte(5); beyond.chunk(requestBytes(id: 12, start: 0, end: 40, atLength: 40, fromLength: 0,
                                                   fragments: [(2, 65_533), (60_000, 5)]))
        beyond.byte(2)
        scripts.append(("holder-fragments-beyond", beyond.bytes))
        return scripts
    }

    static func run(_ script: FuzzInput) {
        var script = script
        var bed = poised()
        var steps = 0
        while !script.isAtEnd, steps < 64 {
            steps += 1
            let closed = (bed.reader.isClosed, bed.holder.isClosed)
            bed.step(&script)
            bed.collect(readerWasClosed: closed.0, holderWasClosed: closed.1)
        }
        if !BookFixtures.shared.readerIsPristine { BookFixtures.shared.resetReader() }
    }

    mutating func step(_ script: inout FuzzInput) {
        switch script.byte() % 7 {
        case 0: reader.receive(script.chunk(), now: now)
        case 1:
            now = now + .milliseconds(Int64(script.u16()))
            reader.tick(now: now)
            holder.tick(now: now)
        case 2:
            let forHolder = toHolder, forReader = toReader
            toHolder = []
            toReader = []
            for message in forHolder { holder.receive(message, now: now) }
            for message in forReader { reader.receive(message, now: now) }
        case 3:
            reader.receive(genuine[Int(script.byte()) % genuine.count].bytes, now: now)
        case 4:
            switch script.byte() % 3 {
            case 0: reader.localBookChanged(now: now)
            case 1: reader.setInterest(.latest(UInt64(script.byte())), now: now)
            default:
                let start = UInt64(script.byte())
                reader.setInterest(.pages(PageRanges([start..<start + UInt64(script.byte())])), now: now)
            }
        case 5: holder.receive(script.chunk(), now: now)
        default:
            var message = genuine[Int(script.byte()) % genuine.count].bytes
            let bit = Int(script.u16())
            message[(bit / 8) % message.count] ^= 1 << UInt8(bit % 8)
            reader.receive(message, now: now)
        }
    }

    /// Takes both sides' output, checks it, and queues it for the other side.
    mutating func collect(readerWasClosed: Bool, holderWasClosed: Bool) {
        let fromReader = reader.takeMessages(serveLimit: 64)
        let fromHolder = holder.takeMessages(serveLimit: 64)
        precondition(!readerWasClosed || fromReader.isEmpty, "a closed reader sent a message")
        precondition(!holderWasClosed || fromHolder.isEmpty, "a closed holder sent a message")
        for message in fromReader + fromHolder {
            precondition(message.count <= ReplicationWire.maxMessage, "a message over the channel limit")
            guard case let .success(decoded) = ReplicationMessage.decode(message), decoded.encoded() == message else {
                preconditionFailure("a machine sent a message that does not decode to itself")
            }
        }
        toHolder = Array((toHolder + fromReader).suffix(512))
        toReader = Array((toReader + fromHolder).suffix(512))
        var stored = false
        for action in reader.takeActions() {
            if case .stored = action { stored = true }
        }
        _ = holder.takeActions()
        if stored { BookFixtures.shared.checkReader() }
    }
}
