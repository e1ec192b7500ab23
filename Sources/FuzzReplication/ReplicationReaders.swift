import Books
import FuzzSupport
import Replication

/// Every reader of bytes from another machine in Replication, and the Books code it hands
/// them to, behind a selector byte:
///
/// 0. replication messages (§9.1–9.2): `ReplicationMessage.decode`, and channel labels;
/// 1. answers (§9.3): `ResponseBody.decode` against a request the first bytes describe;
/// 2. a reader's and a holder's `ReplicationMachine` over real book stores, poised with
///    requests in flight, driven by a script (`ChannelBed`): fragments, statuses, refusals,
///    reassembly, and the signed roots and Merkle proofs `Book.apply` checks;
/// 3. answers from a hostile author (`ForgedAnswers`): any tree, validly signed, stored by
///    a reader and then served by it.
///
/// Beyond "no crash": what decodes re-encodes to the same bytes; every message a machine
/// sends decodes and fits a channel message; a reader stores only what its author signed.
enum ReplicationReaders: FuzzTarget {
    static let name = "replication"

    static func fuzzOne(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let rest = Array(input.dropFirst())
        switch selector % 4 {
        case 0: message(rest)
        case 1: answer(rest)
        case 2: ChannelBed.run(FuzzInput(rest))
        default: ForgedAnswers.run(FuzzInput(rest))
        }
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        let bed = ChannelBed.poised()
        return bed.genuine.enumerated().map { ("message-\($0)-\($1.name)", [0] + $1.bytes) }
            + [("label", [0] + ChannelLabel.make(BookFixtures.shared.author.id))]
            + ChannelBed.answerSeeds.map { ("answer-\($0.name)", [1] + $0.bytes) }
            + ChannelBed.seedScripts.map { ("channel-\($0.name)", [2] + $0.bytes) }
            + ForgedAnswers.seedScripts.map { ("forged-\($0.name)", [3] + $0.bytes) }
    }

    /// §9.1: a message that decodes re-encodes to its bytes; so does a channel label.
    static func message(_ bytes: [UInt8]) {
        if case let .success(message) = ReplicationMessage.decode(bytes) {
            precondition(message.encoded() == bytes, "a replication message re-encodes to its bytes")
        }
        if let book = ChannelLabel.book(in: bytes) {
            precondition(ChannelLabel.make(book) == bytes, "a channel label re-encodes to its bytes")
        }
    }

    /// §9.3: an answer that decodes against the request re-encodes to its bytes and holds
    /// no more pages than asked for. The request: u64 start, u16 page count.
    static func answer(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let start = UInt64(input.u32()) | UInt64(input.u32()) << 32
        let count = UInt64(input.u16())
        let end = start &+ count < start ? UInt64.max : start + count
        guard let request = ChannelBed.request(id: 1, pages: start..<end, atLength: end, fromLength: 0) else { return }
        let body = input.rest()
        guard let decoded = ResponseBody.decode(body, for: request) else { return }
        let encoded = decoded.encoded()
        var out: [UInt8] = []
        encoded.append(0..<encoded.count, to: &out)
        precondition(out == body, "an answer re-encodes to its bytes")
        precondition(decoded.pages.lowerBound == start && decoded.pages.upperBound <= end, "an answer beyond its request")
    }
}
