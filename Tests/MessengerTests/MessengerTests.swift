import Books
import Foundation
import Sodium
import Swarm
import Testing
@testable import Messenger

/// The messenger without a network: tasks, offline send, log, unread counts, bookkeeping.
@Suite struct MessengerTests {
    @Test func taskSendLogAndReopen() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var bob = try bed.offline(1)
        let task = try await bob.messenger.newTask(title: "Fix the roof")
        let id = try #require(TaskID(hex: task.id))
        #expect(task.title == "Fix the roof")
        #expect(try InviteCode(parsing: task.invite) == InviteCode(creator: bob.id, task: id))
        try await bob.messenger.send("one", to: id)
        try await bob.messenger.send("two", to: id)
        #expect(try await bob.texts(id) == ["one", "two"])
        await bob.stop()
        // Everything is in the store: reopen and find the task, its title and messages.
        bob = try bed.offline(1)
        #expect(try await bob.messenger.summaries().map(\.title) == ["Fix the roof"])
        #expect(try await bob.texts(id) == ["one", "two"])
        #expect(try await bob.messenger.resolveTask(String(task.id.prefix(6))) == id)
        #expect(try await bob.messenger.resolveTask("Fix the roof") == id)
        #expect(try await bob.messenger.resolveTask(task.invite) == id)
        await bob.stop()
    }

    @Test("a follower's cursor: the whole log first, then only what each change added; the whole log again after a name change")
    func logEntriesAfterACursor() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let task = try #require(TaskID(hex: try await bob.messenger.newTask(title: "t").id))
        for n in 0..<5 { try await bob.messenger.send("m\(n)", to: task) }
        let (first, cursor) = try await bob.messenger.logEntries(of: task, after: nil)
        #expect(first.map(\.text) == ["m0", "m1", "m2", "m3", "m4"])
        let (none, same) = try await bob.messenger.logEntries(of: task, after: cursor)
        #expect(none.isEmpty && same == cursor, "nothing changed, nothing handed over")
        try await bob.messenger.send("m5", to: task)
        try await bob.messenger.send("m6", to: task)
        let (added, later) = try await bob.messenger.logEntries(of: task, after: cursor)
        #expect(added.map(\.text) == ["m5", "m6"])
        #expect(try await bob.messenger.log(of: task).map(\.text) == (0...6).map { "m\($0)" })
        // A new display name is on every entry of its author: the log is ordered anew and
        // handed over whole, with the name.
        _ = try await bob.messenger.setOwnName("Bob")
        let (whole, _) = try await bob.messenger.logEntries(of: task, after: later)
        #expect(whole.count == 7 && whole.allSatisfy { $0.name == "Bob" })
        #expect(try await bob.messenger.summary(of: task).messages == 7)
        await bob.stop()
    }

    @Test("a task by its title: exact, then in any case, then a unique beginning; ambiguity is an error naming the titles")
    func tasksByTitle() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let roof = try #require(TaskID(hex: try await bob.messenger.newTask(title: "Fix the roof").id))
        let fence = try #require(TaskID(hex: try await bob.messenger.newTask(title: "Fix the fence").id))
        let cafe = try #require(TaskID(hex: try await bob.messenger.newTask(title: "Café").id))
        let upper = try #require(TaskID(hex: try await bob.messenger.newTask(title: "FIX THE ROOF").id))
        #expect(try await bob.messenger.resolveTask("Fix the roof") == roof)
        #expect(try await bob.messenger.resolveTask("FIX THE ROOF") == upper)
        #expect(try await bob.messenger.resolveTask("fix the f") == fence)
        #expect(try await bob.messenger.resolveTask("CAFE") == cafe)
        #expect(try await bob.messenger.resolveTask("caf") == cafe)
        // Two titles equal but for case: typed in a third case, neither wins.
        await #expect(throws: MessengerError(.ambiguousTask, "")) { try await bob.messenger.resolveTask("fix the roof") }
        await #expect(throws: MessengerError(.ambiguousTask, "")) { try await bob.messenger.resolveTask("fix") }
        // Only the beginning: a word in the middle is no match.
        await #expect(throws: MessengerError(.unknownTask, "")) { try await bob.messenger.resolveTask("roof") }
        do {
            _ = try await bob.messenger.resolveTask("fix")
        } catch let error as MessengerError {
            #expect(error.message.contains("\"Fix the fence\"") && error.message.contains("3 tasks"), "\(error.message)")
        }
        await bob.stop()
    }

    @Test func unknownTasksAndBadInputAreClearErrors() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        await #expect(throws: MessengerError(.unknownTask, "")) { try await bob.messenger.resolveTask("nope") }
        await #expect(throws: MessengerError(.unknownTask, "")) { try await bob.messenger.send("x", to: TaskID.random()) }
        let task = try await bob.messenger.newTask(title: "t")
        await #expect(throws: MessengerError(.invalidMessage, "")) { try await bob.messenger.send("   ", to: TaskID(hex: task.id)!) }
        await #expect(throws: MessengerError(.invalidMessage, "")) { try await bob.messenger.newTask(title: "") }
        await bob.stop()
    }

    @Test func joiningOfflineRecordsTheTaskOnce() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let ana = try bed.offline(2)
        let invite = InviteCode(creator: PeerID(MessengerBed.identity(1).publicKey), task: TaskID.random())
        let first = try await ana.messenger.join(invite)
        let again = try await ana.messenger.join(invite)
        #expect(first == again)
        #expect(first.title == nil && first.members.map(\.peer) == [invite.creator.publicKey.hex])
        try await ana.messenger.send("written before meeting anyone", to: invite.task)
        #expect(try await ana.texts(invite.task) == ["written before meeting anyone"])
        await ana.stop()
    }

    @Test func compiledCopiesVerifyAgainstTheirAuthorAndTamperingShows() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let summary = try await bob.messenger.newTask(title: "notes")
        let task = TaskID(hex: summary.id)!
        for i in 0..<5 { try await bob.messenger.send("note \(i)", to: task) }
        let result = try await bob.messenger.compile(task, into: "minutes")
        #expect(result.copied == 5 && result.length == 5)
        #expect(try await bob.messenger.checkCompiled("minutes").allSatisfy { $0.authentic })
        // Compiling again adds only what is new.
        try await bob.messenger.send("note 5", to: task)
        #expect(try await bob.messenger.compile(task, into: "minutes").copied == 1)

        // A copy checks on its own: flip any byte of the original inside it and it fails.
        let book = try #require(try bob.store.book(named: "compiled:minutes"))
        let page = try MessengerPage(decoding: try #require(try book.get(0)))
        let copy = try #require(CopiedPage(page: page))
        #expect(copy.isAuthentic)
        #expect(try MessengerPage(decoding: copy.original).text == "note 0")
        var forged = copy.original
        forged[forged.count - 1] ^= 1
        #expect(!CopiedPage(original: forged, ref: copy.ref, signedRoot: copy.signedRoot, proof: copy.proof).isAuthentic)
        let wrongRoot = SignedRoot(book: copy.signedRoot.book, length: copy.signedRoot.length, rootHash: copy.signedRoot.rootHash,
                                   signature: copy.signedRoot.signature.map { $0 ^ 1 })
        #expect(!CopiedPage(original: copy.original, ref: copy.ref, signedRoot: wrongRoot, proof: copy.proof).isAuthentic)
        await bob.stop()
    }

    /// A member's chat page may hold up to `MessengerPage.maxDataLength` bytes of text (the
    /// decoder's limit; this client sends at most 64 KiB, another may send more). Its copy —
    /// the whole page plus its proof — is larger than a page's data may be: compiling it
    /// used to trap in `MessengerPage.encoded()`. It is skipped and counted instead.
    @Test func aMessageTooLargeToCopyIsSkippedWhenCompiling() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let ana = try bed.offline(2)
        let (task, invite) = try await bob.newTask("t")
        _ = try await ana.messenger.join(invite)
        try await bob.messenger.send("small", to: task)
        // Ana writes a chat page of the largest data a page may hold into her book for Bob…
        let anaBook = try await ana.messenger.createPairwiseBook(for: bob.id, task: task)
        let big = [UInt8](repeating: UInt8(ascii: "a"), count: MessengerPage.maxDataLength)
        try await ana.messenger.append([Messenger.PageSpec(kind: .chat, data: big, fields: ["id": "big"])], to: anaBook)
        // …and Bob holds it, verified, as replication would store it.
        let length = anaBook.length
        let held = try bob.store.open(id: anaBook.id, title: TaskBookName(author: ana.id, reader: bob.id, task: task).text)
        try held.apply(signedRoot: try #require(anaBook.signedRoot), proof: try anaBook.proof(for: 0..<length),
                       pages: try anaBook.pages(in: 0..<length))
        #expect(try await bob.texts(task).contains { $0.utf8.count == big.count })
        let result = try await bob.messenger.compile(task, into: "record")
        #expect(result.copied == 1 && result.skipped == 1, "\(result)")
        #expect(try await bob.messenger.checkCompiled("record").map(\.authentic) == [true])
        await ana.stop()
        await bob.stop()
    }

    /// The wall clock `meta.time` is read from: a system clock set before 1970 reads as 0
    /// (the default clock trapped on `UInt64` of a negative, at the first page or event).
    @Test func theWallClockBefore1970ReadsAsZero() {
        #expect(Messenger.milliseconds(since1970: Date(timeIntervalSince1970: -86_400)) == 0)
        #expect(Messenger.milliseconds(since1970: Date(timeIntervalSince1970: 0)) == 0)
        #expect(Messenger.milliseconds(since1970: Date(timeIntervalSince1970: 1_700_000_000.5)) == 1_700_000_000_500)
        #expect(Messenger.milliseconds(since1970: .distantFuture) > 1_700_000_000_000)
    }

    /// The read markers' file is the vault's to write, but it is a file on disk: a marker
    /// that no count can be (negative, as a hand edit or damage leaves it) is no marker.
    /// `Int.min` used to trap the unread count (`count - marker` overflowed).
    @Test func aMarkerFileWithImpossibleCountsIsNoMarker() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var bob = try bed.offline(1)
        let task = TaskID(hex: try await bob.messenger.newTask(title: "t").id)!
        await bob.stop()
        let file = bed.root + "/1/state.json"
        for marker in ["-9223372036854775808", "-9223372036854775807", "-1"] {
            try Data("{\"\(task.hex)\": \(marker), \"other\": 3}".utf8).write(to: URL(fileURLWithPath: file))
            bob = try bed.offline(1)
            #expect(try await bob.messenger.summary(of: task).unread == 0, "marker \(marker)")
            await bob.stop()
        }
    }

    @Test func unreadCountsMessagesFromOthersSinceLastRead() async throws {
        // Unread counts need messages from someone else: covered with two peers in
        // MessengerNetworkTests; here, own messages never count as unread.
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let task = TaskID(hex: try await bob.messenger.newTask(title: "t").id)!
        try await bob.messenger.send("mine", to: task)
        #expect(try await bob.messenger.summary(of: task).unread == 0)
        await bob.stop()
    }

    /// A messenger of a store opened for reading only (a full disk, a read-only file
    /// system): it reads as always, marks a task read in memory only — the markers' file is
    /// not written — and refuses to send with the store's refusal.
    @Test func aMessengerOfAStoreOpenedForReadingWritesNothing() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let task = TaskID(hex: try await bob.messenger.newTask(title: "t").id)!
        try await bob.messenger.send("kept", to: task)
        await bob.stop()
        let directory = bed.root + "/1", stateFile = bed.root + "/1/state.json"
        #expect(!FileManager.default.fileExists(atPath: stateFile))
        let refusal = BooksError(.diskFull, "the disk is full (a test)", file: directory + "/" + BookStore.fileName)
        let store = try BookStore.openForReading(directory: directory, masterSecret: SecretBytes(copying: [UInt8](repeating: 101, count: 32)),
                                                 refusal: refusal)
        defer { store.close() }
        let messenger = try Messenger(identity: MessengerBed.identity(1), store: store, stateFile: stateFile)
        #expect(try await messenger.log(of: task).map(\.text) == ["kept"])
        try await messenger.markRead(task)
        #expect(!FileManager.default.fileExists(atPath: stateFile), "the read markers were written")
        do {
            _ = try await messenger.send("lost", to: task)
            Issue.record("a message was sent on a store opened for reading")
        } catch let error as MessengerError {
            #expect(error.code == .storage && error.message.hasPrefix("the disk is full (a test)"), "\(error)")
        }
        #expect(try await messenger.log(of: task).map(\.text) == ["kept"])
    }
}
