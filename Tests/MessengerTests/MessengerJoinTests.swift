import Books
import Foundation
import Sodium
import Swarm
import Testing
@testable import Messenger

/// `join` pages (PROTOCOL.md §10.2 type 3, §10.3): a member who joins by invite writes one in
/// its journal, it travels into every pairwise book the member writes, and every member's log
/// shows it once, in order with the messages.
@Suite struct JoinLogTests {
    typealias T = MessageLogTests

    static func join(author: PeerID, book: BookID, index: UInt64, id: String?, time: UInt64, data: [UInt8]? = nil) -> [UInt8] {
        MessengerPage(head: .init(author: author.bytes, book: book.bytes, index: index, previous: index == 0 ? nil : [UInt8](repeating: 1, count: 32)),
                      kind: .join, data: data ?? author.bytes, meta: .init(time: time, fields: id.map { ["id": $0] } ?? [:])).encoded()
    }

    @Test("a join is an entry of its own kind, deduplicated across copies (the journal's wins), ordered with the messages")
    func joinEntries() {
        let (a, b, c) = (T.peer(1), T.peer(2), T.peer(3))
        let journal = TaskBookName.journal(of: a, task: T.task)
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let aToC = TaskBookName(author: a, reader: c, task: T.task)
        let bToA = TaskBookName(author: b, reader: a, task: T.task)
        let (journalID, aToBID, aToCID, bToAID) = (T.bookID(1), T.bookID(2), T.bookID(3), T.bookID(4))
        var log = MessageLog()
        // b's message before a joined, a's join in all three of a's books, a's message after.
        log.add(page: T.page(author: b, book: bToAID, index: 1, text: "before", id: "m1", time: 100), index: 1, book: bToAID, name: bToA)
        log.add(page: Self.join(author: a, book: aToCID, index: 1, id: "j1", time: 150), index: 1, book: aToCID, name: aToC)
        log.add(page: Self.join(author: a, book: aToBID, index: 1, id: "j1", time: 150), index: 1, book: aToBID, name: aToB)
        log.add(page: Self.join(author: a, book: journalID, index: 1, id: "j1", time: 150), index: 1, book: journalID, name: journal)
        log.add(page: T.page(author: a, book: journalID, index: 2, text: "after", id: "m2", time: 200), index: 2, book: journalID, name: journal)
        #expect(log.malformed == 0)
        let ordered = log.ordered(preferring: [journalID.hex])
        #expect(ordered.map(\.kind) == [.chat, .join, .chat])
        #expect(ordered[1].author == a.publicKey.hex && ordered[1].id == "j1" && ordered[1].time == 150 && ordered[1].text.isEmpty)
        #expect(ordered[1].book == journalID.hex, "the journal's copy wins")
        // Without the journal (another member's view): the copy in the book of the least reader id.
        let least = [(aToBID, b), (aToCID, c)].min { $0.1.publicKey.hex < $1.1.publicKey.hex }!.0
        var other = MessageLog()
        other.add(page: Self.join(author: a, book: aToCID, index: 1, id: "j1", time: 150), index: 1, book: aToCID, name: aToC)
        other.add(page: Self.join(author: a, book: aToBID, index: 1, id: "j1", time: 150), index: 1, book: aToBID, name: aToB)
        #expect(other.ordered().map(\.book) == [least.hex])

        // A chat and a join of one author with the same id are two entries; at the same time
        // and index (two books), the chat (type 1) comes before the join (type 3).
        var same = MessageLog()
        same.add(page: Self.join(author: a, book: aToBID, index: 3, id: "x", time: 300), index: 3, book: aToBID, name: aToB)
        same.add(page: T.page(author: a, book: aToCID, index: 3, text: "hi", id: "x", time: 300), index: 3, book: aToCID, name: aToC)
        #expect(same.ordered().map(\.kind) == [.chat, .join])
        // A join without an id is known by its book and index, like a chat.
        var bare = MessageLog()
        bare.add(page: Self.join(author: a, book: aToBID, index: 4, id: nil, time: 1), index: 4, book: aToBID, name: aToB)
        #expect(bare.ordered().map(\.id) == ["\(aToBID.hex.prefix(16)):4"])
    }

    @Test("a join whose data is not its author's peer id, or whose head lies, is malformed and hidden")
    func malformedJoins() {
        let (a, b) = (T.peer(1), T.peer(2))
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let book = T.bookID(2)
        var log = MessageLog()
        let bad: [[UInt8]] = [[], Array(a.bytes.dropLast()), a.bytes + [0], b.bytes, [UInt8](repeating: 0, count: 32)]
        for (i, data) in bad.enumerated() {
            let index = UInt64(i + 1)
            log.add(page: Self.join(author: a, book: book, index: index, id: "j\(i)", time: 1, data: data), index: index, book: book, name: aToB)
        }
        // b's id as author in a's book, and a wrong index: the head checks of every page.
        log.add(page: Self.join(author: b, book: book, index: 9, id: "jb", time: 1), index: 9, book: book, name: aToB)
        log.add(page: Self.join(author: a, book: book, index: 11, id: "ji", time: 1), index: 10, book: book, name: aToB)
        #expect(log.ordered().isEmpty)
        #expect(log.malformed == bad.count + 2)
        // A good one beside them is shown.
        log.add(page: Self.join(author: a, book: book, index: 12, id: "ok", time: 1), index: 12, book: book, name: aToB)
        #expect(log.ordered().map(\.id) == ["ok"])
    }

    @Test("JSON (§10.7): a chat entry is unchanged, a join has \"kind\":\"join\"; both read back")
    func json() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let chat = LogEntry(author: "aa", id: "m", time: 5, text: "hi", book: "bb", index: 2, name: "Ana")
        #expect(String(decoding: try encoder.encode(chat), as: UTF8.self)
                == #"{"author":"aa","book":"bb","id":"m","index":2,"name":"Ana","text":"hi","time":5}"#)
        let join = LogEntry(author: "aa", id: "j", time: 4, text: "", book: "bb", index: 1, kind: .join)
        #expect(String(decoding: try encoder.encode(join), as: UTF8.self)
                == #"{"author":"aa","book":"bb","id":"j","index":1,"kind":"join","text":"","time":4}"#)
        for entry in [chat, join] { #expect(try JSONDecoder().decode(LogEntry.self, from: encoder.encode(entry)) == entry) }
        #expect(chat.key != LogEntry(author: "aa", id: "m", time: 5, text: "", book: "bb", index: 2, kind: .join).key)
    }
}

/// Joins between messengers: offline, and over the in-memory network.
@Suite(.serialized) struct MessengerJoinTests {
    @Test("joining writes task, name, join in one batch; joining again writes nothing; the creator writes no join")
    func journalBatch() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let ana = try bed.offline(2)
        try await ana.messenger.setOwnName("Ana")
        let invite = InviteCode(creator: PeerID(MessengerBed.identity(1).publicKey), task: TaskID.random())
        _ = try await ana.messenger.join(invite)
        let journal = try #require(try ana.store.book(named: TaskBookName.journal(of: ana.id, task: invite.task).text))
        func pages(_ book: Book) throws -> [MessengerPage] {
            try (0..<book.length).map { try MessengerPage(decoding: try #require(try book.get($0))) }
        }
        let written = try pages(journal)
        #expect(written.map(\.kind) == [.task, .name, .join])
        #expect(journal.signedRoot?.length == 3, "one append: one signed root, at length 3")
        let join = try #require(written.last)
        #expect(join.data == ana.id.bytes && join.meta.fields["id"]?.count == 24 && join.meta.time == written[0].meta.time)
        // Ana's log shows her own join, which is no message: nothing counted, nothing unread.
        let log = try await ana.messenger.log(of: invite.task)
        #expect(log.map(\.kind) == [.join] && log[0].name == "Ana" && log[0].book == journal.id.hex && log[0].index == 2)
        let summary = try await ana.messenger.join(invite)
        #expect(summary.messages == 0 && summary.unread == 0)
        #expect(journal.length == 3, "joining again writes nothing")

        let bob = try bed.offline(1)
        let (task, _) = try await bob.newTask("t")
        let bobs = try #require(try bob.store.book(named: TaskBookName.journal(of: bob.id, task: task).text))
        #expect(try pages(bobs).map(\.kind) == [.task])
        #expect(try await bob.messenger.log(of: task).isEmpty)
        await ana.stop()
        await bob.stop()
    }

    @Test("a join shows at the creator and at members who joined before and after, once each, in order with the messages",
          .timeLimit(.minutes(1)))
    func joinsReachEveryMember() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try await bed.online(1)
        let ana = try await bed.online(2)
        let carol = try await bed.online(3)
        try await ana.messenger.setOwnName("Ana")
        let (task, invite) = try await bob.newTask("Fix the roof")
        try await bob.messenger.send("The roof leaks.", to: task)
        try await Task.sleep(for: .milliseconds(2))
        _ = try await ana.messenger.join(invite)
        #expect(try await eventually { try await bob.joins(task).count == 1 })
        try await Task.sleep(for: .milliseconds(2))
        try await bob.messenger.send("Welcome, Ana.", to: task)
        try await Task.sleep(for: .milliseconds(2))
        _ = try await carol.messenger.join(invite)

        // Everyone: Bob's message, Ana's join, Bob's second message, Carol's join — the same
        // entries (kind, author, id, time) in the same order.
        let (b, a, c) = (bob.id.publicKey.hex, ana.id.publicKey.hex, carol.id.publicKey.hex)
        let expected = [("chat", b), ("join", a), ("chat", b), ("join", c)]
        func shape(_ peer: Peer) async throws -> [String] { try await peer.messenger.log(of: task).map { "\($0.kind) \($0.author)" } }
        for peer in [bob, ana, carol] {
            let got = try await eventually { try await shape(peer) == expected.map { "\($0.0) \($0.1)" } }
            let shown = try await shape(peer)
            #expect(got, "\(peer.seed): \(shown)")
        }
        func entries(_ peer: Peer) async throws -> [[String]] {
            try await peer.messenger.log(of: task).map { [$0.key, "\($0.time)", $0.name ?? "-"] }
        }
        let bobs = try await entries(bob)
        let (anas, carols) = (try await entries(ana), try await entries(carol))
        #expect(anas == bobs && carols == bobs)
        #expect(bobs[1][2] == "Ana", "a join shows its author's name")

        // Each of Ana's copies of her join — journal, book for Bob, book for Carol (written
        // when Carol came, with the original time and id) — is one entry; each member keeps
        // the copy of the book it holds, Ana her journal's.
        let anaJoin = try #require(try await ana.joins(task).first)
        let journal = try #require(try ana.store.book(named: TaskBookName.journal(of: ana.id, task: task).text))
        #expect(anaJoin.book == journal.id.hex)
        for reader in [bob, carol] {
            let name = TaskBookName(author: ana.id, reader: reader.id, task: task).text
            let book = try #require(try ana.store.book(named: name))
            let seen = try #require(try await reader.joins(task).first)
            #expect(seen.book == book.id.hex && seen.id == anaJoin.id && seen.time == anaJoin.time)
            let page = try MessengerPage(decoding: try #require(try book.get(seen.index)))
            #expect(page.kind == .join && page.data == ana.id.bytes && page.meta.fields["id"] == anaJoin.id)
        }
        // Carol, who joined later, has Ana's join from Ana's book for her: address, name, join.
        let anaForCarol = try #require(try ana.store.book(named: TaskBookName(author: ana.id, reader: carol.id, task: task).text))
        let kinds = try (0..<anaForCarol.length).map { try MessengerPage(decoding: try #require(try anaForCarol.get($0))).kind }
        #expect(kinds == [.address, .name, .join])

        // Joins are neither counted as messages nor unread.
        let bobSummary = try await bob.messenger.summary(of: task)
        #expect(bobSummary.messages == 2 && bobSummary.unread == 0, "Bob: only his own messages, two joins")
        let carolSummary = try await carol.messenger.summary(of: task)
        #expect(carolSummary.messages == 2 && carolSummary.unread == 2)
        try await carol.messenger.markRead(task)
        #expect(try await carol.messenger.summary(of: task).unread == 0)
        for peer in [carol, ana, bob] { await peer.stop() }
    }

    @Test("leaving and joining again: a second join line everywhere, the first one kept", .timeLimit(.minutes(1)))
    func leaveAndJoinAgain() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, carol, task) = try await bed.threeInATask()
        let (a, c) = (ana.id.publicKey.hex, carol.id.publicKey.hex)
        for peer in [bob, ana, carol] {
            let both = try await eventually { Set(try await peer.joins(task).map(\.author)) == [a, c] }
            #expect(both, "\(peer.seed)")
        }
        let first = try #require(try await bob.joins(task).first { $0.author == a })
        _ = try await ana.messenger.leave(task)
        try await Task.sleep(for: .milliseconds(2))
        _ = try await ana.messenger.join(try await bob.messenger.invite(of: task))
        // Bob and Carol: Ana's first join and Carol's (one millisecond, maybe: then by author
        // id), then Ana's second, with a new id. Ana: the same, her first join back from the
        // books she took back from them.
        for peer in [bob, carol, ana] {
            let got = try await eventually {
                let joins = try await peer.joins(task)
                let anas = joins.filter { $0.author == a }
                return joins.count == 3 && joins.contains { $0.author == c } && anas.count == 2 && anas[0].id == first.id
                    && anas[1].id != first.id && joins.last == anas.last
            }
            let shown = try await peer.joins(task).map { "\($0.author.prefix(8)) \($0.id) \($0.time)" }
            #expect(got, "\(peer.seed): \(shown)")
        }
        for peer in [carol, ana, bob] { await peer.stop() }
    }
}
