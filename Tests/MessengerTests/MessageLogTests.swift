import Books
import Sodium
import Swarm
import Testing
@testable import Messenger

@Suite struct MessageLogTests {
    static let task = TaskID(bytes: [UInt8](repeating: 7, count: 16))!
    static func peer(_ seed: UInt8) -> PeerID { PeerID(MessengerBed.identity(seed).publicKey) }
    static func bookID(_ seed: UInt8) -> BookID { BookID(MessengerBed.identity(seed &+ 50).publicKey) }

    static func page(author: PeerID, book: BookID, index: UInt64, text: String, id: String, time: UInt64,
                     kind: MessengerPage.Kind = .chat) -> [UInt8] {
        MessengerPage(head: .init(author: author.bytes, book: book.bytes, index: index, previous: index == 0 ? nil : [UInt8](repeating: 1, count: 32)),
                      kind: kind, data: Array(text.utf8), meta: .init(time: time, fields: ["id": id])).encoded()
    }

    @Test func ordersByTimeThenAuthorAndDeduplicatesByMessageID() {
        let (a, b) = (Self.peer(1), Self.peer(2))
        let journal = TaskBookName.journal(of: a, task: Self.task)
        let aToB = TaskBookName(author: a, reader: b, task: Self.task)
        let bToA = TaskBookName(author: b, reader: a, task: Self.task)
        var log = MessageLog()
        // The same message of a's in its journal and in its book for b: shown once, from the journal.
        log.add(page: Self.page(author: a, book: Self.bookID(1), index: 1, text: "hi", id: "m1", time: 100), index: 1, book: Self.bookID(1), name: journal)
        log.add(page: Self.page(author: a, book: Self.bookID(2), index: 3, text: "hi", id: "m1", time: 100), index: 3, book: Self.bookID(2), name: aToB)
        log.add(page: Self.page(author: b, book: Self.bookID(3), index: 2, text: "later", id: "m2", time: 200), index: 2, book: Self.bookID(3), name: bToA)
        log.add(page: Self.page(author: b, book: Self.bookID(3), index: 1, text: "earlier", id: "m3", time: 50), index: 1, book: Self.bookID(3), name: bToA)
        let ordered = log.ordered(preferring: [Self.bookID(1).hex])
        #expect(ordered.map(\.text) == ["earlier", "hi", "later"])
        #expect(ordered[1].book == Self.bookID(1).hex)
    }

    @Test("of copies outside the journal: the least reader id, then the least generation (2 before 10), in whatever order read")
    func copyChoiceIsByReaderThenGenerationNumber() {
        let (a, b, c) = (Self.peer(1), Self.peer(2), Self.peer(3))
        let (lowReader, highReader) = b.publicKey.hex < c.publicKey.hex ? (b, c) : (c, b)
        let copies: [(TaskBookName, BookID, UInt64)] = [
            (TaskBookName(author: a, reader: highReader, task: Self.task), Self.bookID(1), 4),
            (TaskBookName(author: a, reader: lowReader, task: Self.task).generation(10), Self.bookID(2), 7),
            (TaskBookName(author: a, reader: lowReader, task: Self.task).generation(2), Self.bookID(3), 5),
        ]
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
            var log = MessageLog()
            for i in order {
                let (name, book, index) = copies[i]
                log.add(page: Self.page(author: a, book: book, index: index, text: "hi", id: "m1", time: 100), index: index, book: book, name: name)
            }
            let ordered = log.ordered()
            #expect(ordered.count == 1 && ordered.first?.book == Self.bookID(3).hex && ordered.first?.index == 5, "\(order)")
        }
    }

    @Test("a log kept in order and given what was read since (names too) equals the log ordered anew, whatever arrives when")
    func orderTakenInStepsIsTheWholeOrder() {
        let (a, b, c) = (Self.peer(1), Self.peer(2), Self.peer(3))
        // Three members' books: a's journal, a's books for b and c (copies of a's messages),
        // b's and c's books for a, and a second generation of b's.
        let books: [(TaskBookName, BookID)] = [
            (TaskBookName.journal(of: a, task: Self.task), Self.bookID(1)),
            (TaskBookName(author: a, reader: b, task: Self.task), Self.bookID(2)),
            (TaskBookName(author: a, reader: c, task: Self.task), Self.bookID(3)),
            (TaskBookName(author: b, reader: a, task: Self.task), Self.bookID(4)),
            (TaskBookName(author: b, reader: a, task: Self.task).generation(1), Self.bookID(5)),
            (TaskBookName(author: c, reader: a, task: Self.task), Self.bookID(6)),
        ]
        var generator = SeededRandom(seed: 42)
        for round in 0..<40 {
            // Each book's pages: messages with times that collide, ids shared across the
            // author's books (copies), and a duplicate id within one book now and then.
            var pages: [(book: Int, index: UInt64, bytes: [UInt8])] = []
            for (number, (name, id)) in books.enumerated() {
                let count = UInt64.random(in: 0...30, using: &generator)
                for index in 0..<count {
                    let message = Int.random(in: 0..<25, using: &generator)
                    let time = UInt64.random(in: 0..<12, using: &generator) * 10
                    if message % 7 == 0 {
                        // Now and then a display name, which every entry of its author shows.
                        pages.append((number, index, MessengerPage(
                            head: .init(author: name.author.bytes, book: id.bytes, index: index, previous: index == 0 ? nil : [UInt8](repeating: 1, count: 32)),
                            kind: .name, data: Array("name \(message)".utf8), meta: .init(time: time)).encoded()))
                        continue
                    }
                    let kind: MessengerPage.Kind = message % 11 == 0 ? .join : .chat
                    let text = kind == .join ? "" : "m\(message)"
                    let bytes = kind == .join
                        ? MessengerPage(head: .init(author: name.author.bytes, book: id.bytes, index: index, previous: index == 0 ? nil : [UInt8](repeating: 1, count: 32)),
                                        kind: .join, data: name.author.bytes, meta: .init(time: time, fields: ["id": "j\(message)"])).encoded()
                        : Self.page(author: name.author, book: id, index: index, text: text, id: "m\(message)", time: time)
                    pages.append((number, index, bytes))
                }
            }
            pages.shuffle(using: &generator)
            let journals: Set<String> = [Self.bookID(1).hex]
            var whole = MessageLog()
            var order = OrderedLog(MessageLog(), preferring: journals)
            var start = 0
            while start < pages.count {
                let end = min(pages.count, start + Int.random(in: 1...40, using: &generator))
                var delta = MessageLog()
                for (book, index, bytes) in pages[start..<end] {
                    delta.add(page: bytes, index: index, book: books[book].1, name: books[book].0)
                }
                let names = whole.names
                whole.absorb(delta)
                if whole.names != names { order.name(by: whole.names) }
                order.take(delta.entries, of: whole, preferring: journals)
                let expected = whole.ordered(preferring: journals)
                #expect(order.entries == expected, "round \(round), pages \(start)..<\(end)")
                #expect(order.messagesByAuthor == Dictionary(grouping: expected.filter(\.kind.isMessage), by: \.author).mapValues(\.count))
                start = end
            }
        }
    }

    @Test func refusesPagesThatLieAboutTheirAuthorBookOrIndex() {
        let (a, b) = (Self.peer(1), Self.peer(2))
        let bToA = TaskBookName(author: b, reader: a, task: Self.task)
        var log = MessageLog()
        log.add(page: Self.page(author: a, book: Self.bookID(3), index: 1, text: "forged author", id: "x", time: 1), index: 1, book: Self.bookID(3), name: bToA)
        log.add(page: Self.page(author: b, book: Self.bookID(4), index: 1, text: "wrong book", id: "y", time: 1), index: 1, book: Self.bookID(3), name: bToA)
        log.add(page: Self.page(author: b, book: Self.bookID(3), index: 5, text: "wrong index", id: "z", time: 1), index: 1, book: Self.bookID(3), name: bToA)
        log.add(page: [1, 2, 3], index: 1, book: Self.bookID(3), name: bToA)
        log.add(page: Self.page(author: b, book: Self.bookID(3), index: 2, text: "addr", id: "w", time: 1, kind: .address), index: 2, book: Self.bookID(3), name: bToA)
        #expect(log.ordered().isEmpty)
        #expect(log.malformed == 4)
    }

    @Test func bookNamesRoundTrip() {
        let name = TaskBookName(author: Self.peer(1), reader: Self.peer(2), task: Self.task)
        #expect(TaskBookName(parsing: name.text) == name)
        #expect(!name.isJournal && TaskBookName.journal(of: Self.peer(1), task: Self.task).isJournal)
        #expect(TaskBookName(parsing: "compiled:notes") == nil)
        #expect(TaskBookName(parsing: "aa-bb-cc") == nil)
        // Generations: ".g" after the task id from 1 on, canonical decimal only.
        let second = name.generation(2)
        #expect(second.text == name.text + ".2" && TaskBookName(parsing: second.text) == second)
        #expect(TaskBookName(parsing: name.text + ".2")?.generation == 2)
        for bad in [".0", ".02", ".x", ".", ".2.3", ".-1"] { #expect(TaskBookName(parsing: name.text + bad) == nil, "\(bad)") }
    }

    @Test func messengerWireRoundTripsAndRefusesGarbage() {
        let id = Self.bookID(1)
        #expect(MessengerWire.decode(MessengerWire.encode(.book(id))) == .book(id))
        #expect(MessengerWire.decode(MessengerWire.encode(.ack(id))) == .ack(id))
        #expect(MessengerWire.decode([3] + id.bytes) == nil)
        #expect(MessengerWire.decode([1] + id.bytes.dropLast()) == nil)
        #expect(MessengerWire.task(inLabel: MessengerWire.label(Self.task)) == Self.task)
        #expect(MessengerWire.task(inLabel: Array("bsrepl/1".utf8) + id.bytes) == nil)
    }
}

@Suite struct MessageLogNameTests {
    @Test("an author's newest name (by their time, then generation, then index) is on each of their entries; a bad name is malformed")
    func newestNameWins() {
        let (a, b) = (MessageLogTests.peer(1), MessageLogTests.peer(2))
        let task = MessageLogTests.task
        let aToB = TaskBookName(author: a, reader: b, task: task)
        let aToB1 = aToB.generation(1)
        let (book0, book1) = (MessageLogTests.bookID(1), MessageLogTests.bookID(2))
        func name(_ text: String, book: BookID, index: UInt64, time: UInt64) -> [UInt8] {
            MessageLogTests.page(author: a, book: book, index: index, text: text, id: "n\(index)", time: time, kind: .name)
        }
        var log = MessageLog()
        log.add(page: MessageLogTests.page(author: a, book: book0, index: 1, text: "hi", id: "m1", time: 10), index: 1, book: book0, name: aToB)
        log.add(page: name("Ana", book: book0, index: 2, time: 20), index: 2, book: book0, name: aToB)
        #expect(log.ordered().map(\.name) == ["Ana"])
        // Later by the author's clock wins, wherever it sits.
        log.add(page: name("Ana B.", book: book1, index: 1, time: 30), index: 1, book: book1, name: aToB1)
        log.add(page: name("older", book: book0, index: 3, time: 25), index: 3, book: book0, name: aToB)
        #expect(log.names == [a.publicKey.hex: "Ana B."])
        // Same time: the later generation, then the later index.
        log.add(page: name("Ana C.", book: book1, index: 2, time: 30), index: 2, book: book1, name: aToB1)
        #expect(log.names[a.publicKey.hex] == "Ana C.")
        // Names that could pass for something else on a terminal are not shown.
        for (i, bad) in ["", " ", "two\nlines", "esc\u{1b}[2J", "rtl\u{202e}", String(repeating: "x", count: 65), " padded"].enumerated() {
            log.add(page: name(bad, book: book1, index: UInt64(10 + i), time: 40), index: UInt64(10 + i), book: book1, name: aToB1)
        }
        #expect(log.names[a.publicKey.hex] == "Ana C.")
        #expect(log.malformed == 7)
        #expect(log.ordered().map(\.text) == ["hi"], "a name page is not a message")
    }

    @Test("what makes a display name")
    func displayNames() {
        #expect(Messenger.displayName("  Ana  ") == "Ana")
        #expect(Messenger.displayName("Zoë Ångström-Łukasz") == "Zoë Ångström-Łukasz")
        #expect(Messenger.displayName(String(repeating: "é", count: 32)) != nil, "64 bytes")
        #expect(Messenger.displayName(String(repeating: "é", count: 32) + "e") == nil, "65 bytes")
        for bad in ["", "\n", "a\tb", "a\u{0}b", "a\u{7f}", "a\u{85}b", "a\u{200e}b", "a\u{2028}b", "a\u{e000}"] {
            #expect(Messenger.displayName(bad) == nil, "\(bad.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }
}

