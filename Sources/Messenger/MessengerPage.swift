/// The messenger's page: `{head, refs, type, data, meta}` (DESIGN "Messages of the
/// messenger"), one page of an author's book. The encoding is compact, versioned and
/// canonical; the decoder refuses anything malformed (PROTOCOL.md §10).
public struct MessengerPage: Hashable, Sendable {
    /// Where the page sits: who wrote it, in which book, at which index, after which page.
    public struct Head: Hashable, Sendable {
        public var author: [UInt8]        // peer id, 32 bytes
        public var book: [UInt8]          // book id, 32 bytes
        public var index: UInt64
        public var previous: [UInt8]?     // page hash of index − 1; nil exactly when index is 0

        public init(author: [UInt8], book: [UInt8], index: UInt64, previous: [UInt8]?) {
            self.author = author
            self.book = book
            self.index = index
            self.previous = previous
        }
    }

    /// A reference to a page of any book, pinned by its hash so that it stays verifiable.
    public struct Ref: Hashable, Sendable {
        public var book: [UInt8]          // 32 bytes
        public var index: UInt64
        public var pageHash: [UInt8]      // 32 bytes

        public init(book: [UInt8], index: UInt64, pageHash: [UInt8]) {
            self.book = book
            self.index = index
            self.pageHash = pageHash
        }
    }

    /// What the page means. Unknown codes from newer peers are kept, not refused, so an old
    /// reader can still store and forward a newer writer's pages.
    public enum Kind: Hashable, Sendable {
        /// `data` is UTF-8 text.
        case chat
        /// First page of a pairwise book: `data` is the reader's peer id ‖ task id.
        case address
        /// A member joined the task: `data` is their peer id.
        case join
        /// A page copied from another book: `refs[0]` is the original; `data` is its bytes
        /// with the evidence that it is the original author's (`CopiedPage`).
        case copy
        /// The task's title, written by its creator: `data` is UTF-8.
        case title
        /// First page of a peer's own journal of a task: `data` is the creator's peer id ‖
        /// task id (the invite), `meta.fields["title"]` the title when this peer created it.
        case task
        /// The author's display name, as it chose it: `data` is UTF-8 (PROTOCOL.md §10.2).
        /// The newest one in a book the author writes is the name shown for them.
        case name
        /// One part of an attached file's bytes: `data` is the part; `meta.fields` name the
        /// file (`id`) and the part's number (`part`) (PROTOCOL.md §10.2, Files).
        case chunk
        /// A file attached to the task, after its `chunk` pages in the same batch: `data` is
        /// the caption (UTF-8, maybe empty); `meta.fields` hold `hash`, `id`, `name`, `parts`
        /// and `size`.
        case file
        /// The author moved the task on to a successor task without some members
        /// (PROTOCOL.md §10.2, Successors): `data` is `Successor`'s encoding; meta `id`.
        case successor
        /// In a journal only: this peer followed a member's `successor` page (its author's
        /// peer id ‖ the successor's invite); meta `id`, the `successor` page's.
        case followed
        /// The author withdraws a file it attached (PROTOCOL.md §10.2, Withdrawn files):
        /// `data` is empty; meta `id` (the page's own) and `ref` (the file's id).
        case withdraw
        case unknown(UInt64)

        var code: UInt64 {
            switch self {
            case .chat: return 1
            case .address: return 2
            case .join: return 3
            case .copy: return 4
            case .title: return 5
            case .task: return 6
            case .name: return 7
            case .chunk: return 8
            case .file: return 9
            case .successor: return 10
            case .followed: return 11
            case .withdraw: return 12
            case let .unknown(code): return code
            }
        }

        init(code: UInt64) {
            switch code {
            case 1: self = .chat
            case 2: self = .address
            case 3: self = .join
            case 4: self = .copy
            case 5: self = .title
            case 6: self = .task
            case 7: self = .name
            case 8: self = .chunk
            case 9: self = .file
            case 10: self = .successor
            case 11: self = .followed
            case 12: self = .withdraw
            default: self = .unknown(code)
            }
        }
    }

    /// Time and the like. `time` is milliseconds since the Unix epoch, as the author's clock
    /// saw it; `fields` are optional key/value pairs, sorted by key, keys unique.
    public struct Meta: Hashable, Sendable {
        public var time: UInt64
        public var fields: [String: String]

        public init(time: UInt64, fields: [String: String] = [:]) {
            self.time = time
            self.fields = fields
        }
    }

    public var head: Head
    public var refs: [Ref]
    public var kind: Kind
    public var data: [UInt8]
    public var meta: Meta

    public init(head: Head, refs: [Ref] = [], kind: Kind, data: [UInt8], meta: Meta) {
        self.head = head
        self.refs = refs
        self.kind = kind
        self.data = data
        self.meta = meta
    }

    public static let formatVersion: UInt8 = 1
    public static let maxRefs = 64
    public static let maxMetaFields = 16
    public static let maxMetaFieldLength = 256
    /// A page must fit in a book page (Books' maximum); the messenger keeps well below it.
    public static let maxDataLength = 1 << 20

    public var text: String? {
        guard case .chat = kind else { return nil }
        return String(validating: data, as: UTF8.self)
    }

    public func encoded() -> [UInt8] {
        precondition(head.author.count == 32 && head.book.count == 32, "ids are 32 bytes")
        precondition((head.index == 0) == (head.previous == nil), "previous hash exactly when index > 0")
        precondition(refs.count <= MessengerPage.maxRefs && data.count <= MessengerPage.maxDataLength)
        var out: [UInt8] = [MessengerPage.formatVersion]
        out.reserveCapacity(80 + data.count + refs.count * 72)
        out += head.author
        out += head.book
        out.appendVarint(head.index)
        if let previous = head.previous {
            precondition(previous.count == 32)
            out += previous
        }
        out.appendVarint(UInt64(refs.count))
        for ref in refs {
            precondition(ref.book.count == 32 && ref.pageHash.count == 32)
            out += ref.book
            out.appendVarint(ref.index)
            out += ref.pageHash
        }
        out.appendVarint(kind.code)
        out.appendVarint(UInt64(data.count))
        out += data
        out.appendVarint(meta.time)
        precondition(meta.fields.count <= MessengerPage.maxMetaFields)
        out.appendVarint(UInt64(meta.fields.count))
        // §10.2: in byte order, the order the decoder checks (String's own order compares
        // Unicode-normalized text, and differs for keys that are not in NFC).
        for key in meta.fields.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let k = Array(key.utf8), v = Array(meta.fields[key]!.utf8)
            precondition(k.count <= MessengerPage.maxMetaFieldLength && v.count <= MessengerPage.maxMetaFieldLength)
            out.appendVarint(UInt64(k.count)); out += k
            out.appendVarint(UInt64(v.count)); out += v
        }
        return out
    }

    public init(decoding bytes: [UInt8]) throws(PageDecodingError) {
        var r = ByteReader(bytes)
        let version = try r.readByte()
        guard version == MessengerPage.formatVersion else { throw .unsupportedVersion(version) }
        let author = try r.readBytes(32)
        let book = try r.readBytes(32)
        let index = try r.readVarint()
        let previous: [UInt8]? = index == 0 ? nil : try r.readBytes(32)
        head = Head(author: author, book: book, index: index, previous: previous)

        let refCount = try r.readLength(limit: MessengerPage.maxRefs)
        var refs: [Ref] = []
        refs.reserveCapacity(refCount)
        for _ in 0..<refCount {
            let refBook = try r.readBytes(32)
            let refIndex = try r.readVarint()
            refs.append(Ref(book: refBook, index: refIndex, pageHash: try r.readBytes(32)))
        }
        self.refs = refs
        kind = Kind(code: try r.readVarint())
        data = try r.readBytes(try r.readLength(limit: MessengerPage.maxDataLength))

        let time = try r.readVarint()
        let fieldCount = try r.readLength(limit: MessengerPage.maxMetaFields)
        var fields: [String: String] = [:]
        var lastKey: [UInt8]?
        for _ in 0..<fieldCount {
            let k = try r.readBytes(try r.readLength(limit: MessengerPage.maxMetaFieldLength))
            let v = try r.readBytes(try r.readLength(limit: MessengerPage.maxMetaFieldLength))
            // Canonical form: keys strictly increasing, so no duplicates and one encoding.
            if let lastKey, !lastKey.lexicographicallyPrecedes(k) { throw .unsortedMeta }
            guard let key = String(validating: k, as: UTF8.self), let value = String(validating: v, as: UTF8.self) else {
                throw .invalidUTF8
            }
            // Different bytes can be the same text ("é" precomposed, or "e" and a combining
            // accent): as keys of `fields` they are one, and the page would lose a field.
            guard fields[key] == nil else { throw .unsortedMeta }
            fields[key] = value
            lastKey = k
        }
        meta = Meta(time: time, fields: fields)
        if case .copy = kind, refs.isEmpty { throw .copyWithoutOrigin }
        guard r.isAtEnd else { throw .trailingBytes(r.remaining) }
    }
}

/// Why bytes are not a messenger page. Pages come from other peers' books: a decoding
/// failure is reported (devtools) and the page shown as unreadable, never trusted.
public enum PageDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated
    case unsupportedVersion(UInt8)
    case malformedInteger
    case fieldTooLarge(limit: Int)
    case unsortedMeta
    case invalidUTF8
    case copyWithoutOrigin
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .truncated: return "page ends in the middle of a field"
        case let .unsupportedVersion(v): return "page format version \(v) is not supported"
        case .malformedInteger: return "page has a malformed or over-long integer"
        case let .fieldTooLarge(limit): return "page field exceeds its limit of \(limit)"
        case .unsortedMeta: return "page meta keys are not in canonical order (strictly increasing bytes, no two the same text)"
        case .invalidUTF8: return "page meta is not valid UTF-8"
        case .copyWithoutOrigin: return "copied page does not reference its original"
        case let .trailingBytes(n): return "page has \(n) unexpected trailing bytes"
        }
    }
}
