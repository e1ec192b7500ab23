import Books
import Foundation
import FuzzSupport
import Messenger
import Sodium
import Swarm

/// Genuine encodings for the messenger target's corpus: pages of every type as the
/// messenger writes them (a `copy` with real evidence from a book in a temporary store),
/// invite codes, channel messages and book titles.
enum Seeds {
    typealias R = MessengerReaders

    static func page(_ index: UInt64, kind: MessengerPage.Kind, data: [UInt8], refs: [MessengerPage.Ref] = [],
                     fields: [String: String] = [:]) -> MessengerPage {
        MessengerPage(head: .init(author: R.author.bytes, book: R.book.bytes, index: index,
                                  previous: index == 0 ? nil : [UInt8](repeating: UInt8(index), count: 32)),
                      refs: refs, kind: kind, data: data, meta: .init(time: 1_764_000_000_000 + index, fields: fields))
    }

    static let fileID = "fedcba9876543210fedcba98"

    static var pages: [(name: String, bytes: [UInt8])] {
        var pages: [(String, MessengerPage)] = [
            ("address", page(0, kind: .address, data: R.reader.bytes + R.task.bytes)),
            ("title", page(1, kind: .title, data: Array("Fix the roof".utf8))),
            ("chat", page(2, kind: .chat, data: Array("The roof leaks above the kitchen. Who can help?".utf8),
                          fields: ["id": "0123456789abcdef01234567"])),
            ("task", page(0, kind: .task, data: R.author.bytes + R.task.bytes, fields: ["title": "Fix the roof"])),
            ("join", page(3, kind: .join, data: R.author.bytes, fields: ["id": "89abcdef0123456789abcdef"])),
            ("unknown", page(4, kind: .unknown(300), data: [1, 2, 3], fields: ["a": "1", "b": "2"])),
            // A file of two parts (§10.2 Files): its chunks, then the file page naming them.
            ("chunk-0", page(6, kind: .chunk, data: [UInt8](repeating: 0x61, count: 300), fields: ["id": fileID, "part": "0"])),
            ("chunk-1", page(7, kind: .chunk, data: Array("the rest".utf8), fields: ["id": fileID, "part": "1"])),
            ("file", page(8, kind: .file, data: Array("the leak, from above".utf8),
                          fields: ["hash": Attachments.hash([UInt8](repeating: 0x61, count: 300) + Array("the rest".utf8)),
                                   "id": fileID, "name": "roof.jpg", "parts": "2", "size": "308"])),
            // Its author withdraws it (§10.2 Withdrawn files).
            ("withdraw", page(11, kind: .withdraw, data: [], fields: ["id": "8899aabbccddeeff00112233", "ref": fileID])),
        ]
        // A move to a successor (§10.2 Successors), the invite sealed to the book's reader,
        // and the `followed` page a journal records.
        let leftOut = PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 0x5a, count: 32))).publicKey)
        let invite = R.author.bytes + [UInt8](repeating: 0x77, count: 16)
        if let sealed = try? SealedBox.seal(invite, to: R.reader.publicKey.x25519()) {
            pages.append(("successor", page(9, kind: .successor, data: Successor(without: [leftOut], with: [R.reader], invite: sealed).encoded(),
                                            fields: ["id": "00112233445566778899aabb"])))
        }
        pages.append(("followed", page(10, kind: .followed, data: R.author.bytes + invite, fields: ["id": "00112233445566778899aabb"])))
        if let copy = genuineCopy() {
            pages.append(("copy", page(5, kind: .copy, data: copy.encodedData(), refs: [copy.ref],
                                       fields: ["author": R.author.publicKey.hex, "task": R.task.hex])))
        }
        return pages.map { ($0, $1.encoded()) }
    }

    /// Page 2 of a real book with its evidence, from a store that lives only for this.
    static func genuineCopy() -> CopiedPage? {
        let directory = NSTemporaryDirectory() + "fuzz-messenger-seeds-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard let store = try? BookStore.open(directory: directory, masterSecret: SecretBytes(copying: [UInt8](repeating: 9, count: 32))),
              let book = try? store.createOrOpen(name: "original") else { return nil }
        defer { store.close() }
        _ = try? book.append(contentsOf: (0..<5).map { page(UInt64($0), kind: .chat, data: Array("message \($0)".utf8)).encoded() })
        return try? CopiedPage(from: book, index: 2)
    }

    static var invites: [(name: String, text: String)] {
        let code = InviteCode(creator: R.author, task: R.task)
        return [("canonical", code.text), ("retyped", code.text.uppercased().replacingOccurrences(of: "-", with: " ")),
                ("typo", String(code.text.dropLast()) + "x")]
    }

    static var wire: [(name: String, bytes: [UInt8])] {
        [("book", MessengerWire.encode(.book(R.book))), ("ack", MessengerWire.encode(.ack(R.book))),
         ("label", MessengerWire.label(R.task))]
    }

    static var bookNames: [(name: String, text: String)] {
        [("pairwise", R.bookName.text), ("generation", R.bookName.generation(3).text),
         ("journal", TaskBookName.journal(of: R.author, task: R.task).text)]
    }

    static var logScript: [UInt8] {
        var s = FuzzScript()
        for (i, (_, bytes)) in pages.enumerated() {
            s.byte(UInt8(i % 3)); s.byte(UInt8(i)); s.chunk(bytes)
        }
        return s.bytes
    }
}
