import Books
import Sodium

/// The messages of the replication protocol on one book's channel (PROTOCOL.md §9.2).
///
/// Every message is `u8 version ‖ u8 type ‖ fields`, little-endian, and fits one channel
/// message (`ReplicationWire.maxMessage`): there is no byte stream (DESIGN decision 5), only
/// idempotent state (`open`, `status`) and requests with a timeout and retry, whose answers
/// travel as fragments that can be re-requested one by one. `package`, as `ResponseBody` and
/// `ChannelLabel`: the fuzz target (Sources/FuzzReplication) reads through them.
package enum ReplicationMessage: Equatable, Sendable {
    case open(Open)
    case status(Status)
    case request(Request)
    case data(DataFragment)
    case noData(requestID: UInt32, reason: NoDataReason)
    case cancel(requestID: UInt32)
    case refuse(RefuseReason)

    /// §9.2.1: the book this channel replicates and the sender's right to read it.
    package struct Open: Equatable, Sendable {
        var book: BookID
        var capability: [UInt8]
    }

    /// §9.2.2: the sender's verified length, signed root and held pages. Idempotent state:
    /// re-sent until acknowledged, and acknowledged by the other side's own status.
    package struct Status: Equatable, Sendable {
        /// Increases whenever the content changes.
        var sequence: UInt32
        /// The highest `sequence` of the other side received so far.
        var acknowledged: UInt32
        /// Set while the sender has not seen its `sequence` acknowledged: the receiver
        /// answers with its own status. Never set on a pure acknowledgement, so two sides
        /// in agreement fall silent.
        var needsAck: Bool
        /// Set when the sender holds more ranges than the message could list; the list is
        /// then the lowest ones, so it never claims a page that is not held.
        var rangesTruncated: Bool
        var length: UInt64
        /// The root hash and signature of the tree of `length` pages; nil iff length is 0.
        var root: (hash: PageHash, signature: [UInt8])?
        var held: [Range<UInt64>]

        package static func == (a: Status, b: Status) -> Bool {
            a.sequence == b.sequence && a.acknowledged == b.acknowledged && a.needsAck == b.needsAck
                && a.rangesTruncated == b.rangesTruncated && a.length == b.length && a.held == b.held
                && a.root?.hash == b.root?.hash && a.root?.signature == b.root?.signature
        }
    }

    /// §9.2.3: pages `pages` with their proof against the tree of `atLength` pages,
    /// upgrading the requester from `fromLength`. The answer holds at most `maxBytes` of
    /// pages (at least one page). `fragments` lists the fragments wanted (empty: all), so a
    /// lossy path re-asks only for what it lacks.
    package struct Request: Equatable, Sendable {
        var id: UInt32
        var pages: Range<UInt64>
        var atLength: UInt64
        var fromLength: UInt64
        var maxBytes: UInt32
        var fragments: [Range<UInt16>]
    }

    /// §9.2.4: one fragment of the answer to request `requestID`.
    package struct DataFragment: Equatable, Sendable {
        var requestID: UInt32
        var index: UInt16
        var count: UInt16
        /// A view of the received message's bytes (no copy).
        var chunk: ArraySlice<UInt8>
    }
}

/// §9.2.5: why a holder cannot answer a request.
package enum NoDataReason: UInt8, Sendable, Error {
    /// The pages or the tree nodes of the proof are not held here.
    case notHeld = 1
    /// The request reaches beyond this holder's length, or is malformed.
    case outOfRange = 2
    /// The requester has not proven its right to read the book.
    case notAuthorized = 3
    /// Too many requests are queued; ask again later.
    case busy = 4
    /// This holder refuses the book: its author signed two trees.
    case forked = 5
}

/// §9.2.7: why a side refuses the channel. The sender closes the channel after it.
public enum RefuseReason: UInt8, Sendable, CustomStringConvertible {
    /// The capability or the policy did not allow the book to this peer.
    case notAuthorized = 1
    /// A message did not parse, or broke the protocol.
    case malformed = 2
    /// A signed root, page or proof did not verify.
    case invalidData = 3
    /// The author signed two different trees.
    case forked = 4
    /// Requests beyond every bound.
    case flood = 5
    /// The side is shutting down the channel.
    case shutdown = 6

    public var description: String {
        switch self {
        case .notAuthorized: "not authorized"
        case .malformed: "malformed message"
        case .invalidData: "invalid data"
        case .forked: "forked book"
        case .flood: "request flood"
        case .shutdown: "shutdown"
        }
    }
}

/// Sizes of the replication wire format (PROTOCOL.md §9.1).
public enum ReplicationWire {
    /// §9.1: the protocol version in the first byte of every message.
    public static let version: UInt8 = 1
    /// §9.1: the largest message, the session's channel limit (PROTOCOL.md §8.2).
    public static let maxMessage = 1100
    /// §9.2.4: a data fragment's header: version, type, request id, index, count.
    static let dataHeader = 10
    /// §9.2.4: every fragment but the last carries exactly this many bytes of the answer,
    /// so that each data message fills a datagram.
    public static let fragmentPayload = maxMessage - dataHeader
    /// §9.2.2: held ranges listed in one status at most.
    static let maxStatusRanges = 60
    /// §9.2.3: fragment ranges listed in one request at most.
    static let maxFragmentRanges = 256
    static let capabilityLength = 32
    static let signatureLength = Ed25519.signatureLength

    enum MessageType: UInt8 {
        case open = 1
        case status = 2
        case request = 3
        case data = 4
        case noData = 5
        case cancel = 6
        case refuse = 7
    }
}

// MARK: - Codec

extension ReplicationMessage {
    /// Why a message did not decode. An unknown type or version is not an error of the
    /// peer (a newer peer may send it) and is ignored; a malformed known message is.
    package enum DecodeFailure: Error, Equatable {
        case unknown
        case malformed
    }

    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    func write(into out: inout [UInt8]) {
        out.append(ReplicationWire.version)
        switch self {
        case let .open(open):
            out.append(ReplicationWire.MessageType.open.rawValue)
            out += open.book.bytes
            out += open.capability
        case let .status(status):
            out.append(ReplicationWire.MessageType.status.rawValue)
            out.appendLE(status.sequence)
            out.appendLE(status.acknowledged)
            out.append((status.needsAck ? 1 : 0) | (status.rangesTruncated ? 2 : 0))
            out.appendLE(status.length)
            if let root = status.root {
                out += root.hash.bytes
                out += root.signature
            }
            out.appendLE(UInt16(status.held.count))
            for range in status.held {
                out.appendLE(range.lowerBound)
                out.appendLE(range.upperBound)
            }
        case let .request(request):
            out.append(ReplicationWire.MessageType.request.rawValue)
            out.appendLE(request.id)
            out.appendLE(request.pages.lowerBound)
            out.appendLE(request.pages.upperBound)
            out.appendLE(request.atLength)
            out.appendLE(request.fromLength)
            out.appendLE(request.maxBytes)
            out.appendLE(UInt16(request.fragments.count))
            for range in request.fragments {
                out.appendLE(range.lowerBound)
                out.appendLE(UInt16(range.count))
            }
        case let .data(fragment):
            out.append(ReplicationWire.MessageType.data.rawValue)
            out.appendLE(fragment.requestID)
            out.appendLE(fragment.index)
            out.appendLE(fragment.count)
            out += fragment.chunk
        case let .noData(requestID, reason):
            out.append(ReplicationWire.MessageType.noData.rawValue)
            out.appendLE(requestID)
            out.append(reason.rawValue)
        case let .cancel(requestID):
            out.append(ReplicationWire.MessageType.cancel.rawValue)
            out.appendLE(requestID)
        case let .refuse(reason):
            out.append(ReplicationWire.MessageType.refuse.rawValue)
            out.append(reason.rawValue)
        }
    }

    /// Decodes one channel message. Every field is checked here, so the machine only ever
    /// sees well-formed messages.
    package static func decode(_ bytes: [UInt8]) -> Result<ReplicationMessage, DecodeFailure> {
        guard bytes.count <= ReplicationWire.maxMessage else { return .failure(.malformed) }
        var cursor = WireCursor(bytes)
        guard let version = cursor.readUInt8(), let rawType = cursor.readUInt8() else { return .failure(.malformed) }
        guard version == ReplicationWire.version, let type = ReplicationWire.MessageType(rawValue: rawType) else {
            return .failure(.unknown)
        }
        let message: ReplicationMessage?
        switch type {
        case .open: message = decodeOpen(&cursor)
        case .status: message = decodeStatus(&cursor)
        case .request: message = decodeRequest(&cursor)
        case .data: message = decodeData(&cursor)
        case .noData:
            if let id = cursor.readUInt32(), let raw = cursor.readUInt8(), let reason = NoDataReason(rawValue: raw) {
                message = .noData(requestID: id, reason: reason)
            } else {
                message = nil
            }
        case .cancel: message = cursor.readUInt32().map { .cancel(requestID: $0) }
        case .refuse: message = cursor.readUInt8().flatMap(RefuseReason.init(rawValue:)).map { .refuse($0) }
        }
        guard let message, cursor.isAtEnd else { return .failure(.malformed) }
        return .success(message)
    }

    private static func decodeOpen(_ cursor: inout WireCursor) -> ReplicationMessage? {
        guard let key = cursor.readBytes(32), let book = try? BookID(bytes: key),
              let capability = cursor.readBytes(ReplicationWire.capabilityLength) else { return nil }
        return .open(Open(book: book, capability: capability))
    }

    private static func decodeStatus(_ cursor: inout WireCursor) -> ReplicationMessage? {
        guard let sequence = cursor.readUInt32(), let acknowledged = cursor.readUInt32(),
              let flags = cursor.readUInt8(), flags & ~3 == 0, let length = cursor.readUInt64() else { return nil }
        var root: (hash: PageHash, signature: [UInt8])?
        if length > 0 {
            guard let hashBytes = cursor.readBytes(PageHash.length), let hash = try? PageHash(bytes: hashBytes),
                  let signature = cursor.readBytes(ReplicationWire.signatureLength) else { return nil }
            root = (hash, signature)
        }
        guard let count = cursor.readUInt16(), Int(count) <= ReplicationWire.maxStatusRanges else { return nil }
        var held: [Range<UInt64>] = []
        var previousEnd: UInt64 = 0
        for i in 0..<Int(count) {
            guard let start = cursor.readUInt64(), let end = cursor.readUInt64(),
                  start < end, end <= length, i == 0 ? true : start > previousEnd else { return nil }
            held.append(start..<end)
            previousEnd = end
        }
        return .status(Status(sequence: sequence, acknowledged: acknowledged, needsAck: flags & 1 != 0,
                              rangesTruncated: flags & 2 != 0, length: length, root: root, held: held))
    }

    private static func decodeRequest(_ cursor: inout WireCursor) -> ReplicationMessage? {
        guard let id = cursor.readUInt32(), let start = cursor.readUInt64(), let end = cursor.readUInt64(), start <= end,
              let atLength = cursor.readUInt64(), let fromLength = cursor.readUInt64(),
              let maxBytes = cursor.readUInt32(), let count = cursor.readUInt16(),
              Int(count) <= ReplicationWire.maxFragmentRanges else { return nil }
        var fragments: [Range<UInt16>] = []
        for _ in 0..<Int(count) {
            guard let first = cursor.readUInt16(), let n = cursor.readUInt16(), n > 0,
                  Int(first) + Int(n) <= Int(UInt16.max) else { return nil }
            fragments.append(first..<(first + n))
        }
        return .request(Request(id: id, pages: start..<end, atLength: atLength, fromLength: fromLength,
                                maxBytes: maxBytes, fragments: fragments))
    }

    private static func decodeData(_ cursor: inout WireCursor) -> ReplicationMessage? {
        guard let id = cursor.readUInt32(), let index = cursor.readUInt16(), let count = cursor.readUInt16(),
              index < count else { return nil }
        let chunk = cursor.readRest()
        // Every fragment but the last is full; the last is not empty.
        let fits = index + 1 < count ? chunk.count == ReplicationWire.fragmentPayload
                                     : !chunk.isEmpty && chunk.count <= ReplicationWire.fragmentPayload
        guard fits else { return nil }
        return .data(DataFragment(requestID: id, index: index, count: count, chunk: chunk))
    }
}
