import Books
import Foundation
import FuzzSupport
import Messenger
import Sodium
import Swarm

/// Every reader in Messenger of bytes that other people wrote, behind a selector byte:
///
/// 0. messenger pages (§10.2), which come from other members' books: `MessengerPage`, the
///    copy evidence of a `copy` page (`CopiedPage`, its authenticity checked), and the log
///    (`MessageLog.add`) they go into;
/// 1. invite codes (§10.1), which people paste: `InviteCode(parsing:)`;
/// 2. the messenger channel's messages and label (§10.5): `MessengerWire`;
/// 3. book titles naming a task's books (§10.3): `TaskBookName(parsing:)`;
/// 4. a task's log fed a script of pages (`MessageLog`): several books, any order, files
///    and their parts among them.
///
/// Beyond "no crash": a page that decodes re-encodes to exactly its bytes (the encoding is
/// canonical, §10.2) and decodes again to itself; a code that parses is parsed again from
/// its text and from a retyped form; a refused code's message is one line of printable
/// text naming what is wrong; the log keeps one entry per message, in a total order.
enum MessengerReaders: FuzzTarget {
    static let name = "messenger"

    static func fuzzOne(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let rest = Array(input.dropFirst())
        switch selector % 5 {
        case 0: page(rest)
        case 1: invite(rest)
        case 2: wire(rest)
        case 3: bookName(rest)
        default: log(FuzzInput(rest))
        }
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        seeds += Seeds.pages.map { ("page-\($0.name)", [0] + $0.bytes) }
        seeds += Seeds.invites.map { ("invite-\($0.name)", [1] + Array($0.text.utf8)) }
        seeds += Seeds.wire.map { ("wire-\($0.name)", [2] + $0.bytes) }
        seeds += Seeds.bookNames.map { ("name-\($0.name)", [3] + Array($0.text.utf8)) }
        seeds.append(("log", [4] + Seeds.logScript))
        return seeds
    }

    // MARK: - Pages

    static let author = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 1, count: 32))).publicKey)
    static let reader = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 2, count: 32))).publicKey)
    static let task = TaskID(bytes: [UInt8](repeating: 0x7A, count: TaskID.length))!
    static let book = BookID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 3, count: 32))).publicKey)
    static let bookName = TaskBookName(author: author, reader: reader, task: task)

    /// §10.2: canonical decoding, the copy evidence, and the log's reading of one page.
    static func page(_ bytes: [UInt8]) {
        var log = MessageLog()
        log.add(page: bytes, index: 0, book: book, name: bookName)
        precondition(log.entries.count + log.malformed <= 1, "one page, one entry at most")
        guard let page = try? MessengerPage(decoding: bytes) else {
            precondition(log.malformed == 1, "a page that does not decode is counted as malformed")
            return
        }
        let encoded = page.encoded()
        precondition(encoded == bytes, "a messenger page re-encodes to its bytes")
        precondition((try? MessengerPage(decoding: encoded)) == page, "decode(encode(x)) == x")
        if let copy = CopiedPage(page: page) {
            precondition(copy.encodedData() == page.data, "copy evidence re-encodes to its bytes")
            _ = copy.isAuthentic
        }
    }

    // MARK: - Invite codes

    /// §10.1: a pasted code parses, or is refused with one printable line.
    static func invite(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let code = try InviteCode(parsing: text)
            precondition((try? InviteCode(parsing: code.text)) == code, "a code parses from its own text")
            let retyped = " " + code.text.uppercased().replacingOccurrences(of: "-", with: " ") + "\n"
            precondition((try? InviteCode(parsing: retyped)) == code, "a code parses when retyped")
            _ = code.topic
        } catch {
            let message = error.description
            precondition(!message.isEmpty && message.unicodeScalars.allSatisfy { !$0.properties.generalCategory.isControlOrSeparatorLine },
                         "an invite code error is one printable line: \(message.debugDescription)")
            if case let .invalidCharacter(c) = error {
                precondition(text.contains(c), "the error names \(String(c).debugDescription), which the code does not contain")
            }
        }
    }

    // MARK: - The messenger channel and book titles

    /// §10.5: a message or label that decodes re-encodes to its bytes.
    static func wire(_ bytes: [UInt8]) {
        if let message = MessengerWire.decode(bytes) {
            precondition(MessengerWire.encode(message) == bytes, "a messenger channel message re-encodes to its bytes")
        }
        if let task = MessengerWire.task(inLabel: bytes) {
            precondition(MessengerWire.label(task) == bytes, "a messenger channel label re-encodes to its bytes")
        }
    }

    /// §10.3: a title that names a task's book names the same book again from its text.
    static func bookName(_ bytes: [UInt8]) {
        guard let name = TaskBookName(parsing: String(decoding: bytes, as: UTF8.self)) else { return }
        precondition(TaskBookName(parsing: name.text) == name, "a task book name parses from its own text")
    }

    // MARK: - The log

    /// Script: (book n, index, page bytes)*, the books being the pair's both ways and the
    /// author's journal. The log holds one entry per (kind, author, id), in a total order.
    static func log(_ script: FuzzInput) {
        var script = script
        var log = MessageLog()
        let names = [bookName, TaskBookName(author: reader, reader: author, task: task), TaskBookName.journal(of: author, task: task)]
        let books = [book, BookID(reader.publicKey), BookID(author.publicKey)]
        var added = 0
        while !script.isAtEnd, added < 64 {
            let which = Int(script.byte()) % names.count
            let index = UInt64(script.byte())
            log.add(page: script.chunk(), index: index, book: books[which], name: names[which])
            added += 1
        }
        precondition(log.entries.count + log.malformed <= added, "more entries than pages")
        let ordered = log.ordered(preferring: [books[2].hex])
        precondition(Set(ordered.map(\.key)).count == ordered.count, "a message twice in the log")
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            precondition(LogEntry.precedes(a, b), "the log out of order (or two entries tie)")
        }
        // A file's parts (§10.2 Files): only its own numbers, each from a chunk read.
        for entry in ordered where entry.kind == .file {
            guard let file = entry.file else { preconditionFailure("a file entry without its file") }
            precondition(Attachments.isValidName(file.name) && (file.parts == 0) == (file.size == 0), "a file entry breaks §10.2")
            let parts = log.parts(of: entry, preferring: [books[2].hex])
            precondition(parts.keys.allSatisfy { $0 < file.parts } && parts.values.allSatisfy { $0.length > 0 },
                         "a part that is not the file's")
        }
    }
}

extension Unicode.GeneralCategory {
    /// Control characters and line or paragraph separators: what breaks a line of text.
    var isControlOrSeparatorLine: Bool {
        switch self {
        case .control, .lineSeparator, .paragraphSeparator, .format: true
        default: false
        }
    }
}
