import Books
import Foundation
import Sodium
import Swarm
import Testing
@testable import Messenger

/// Withdrawn files (PROTOCOL.md §10.2 Withdrawn files): the `withdraw` page as the log reads
/// it — its author's file shown withdrawn in its place, whichever came first; another
/// member's withdrawal of it changes nothing; malformed pages counted — without a network.
@Suite struct WithdrawLogTests {
    typealias T = MessageLogTests
    typealias F = FileLogTests
    static let withdrawID = "fedcba9876543210fedcba98"

    static func withdrawPage(author: PeerID, book: BookID, index: UInt64, file: String = F.id, id: String = withdrawID,
                             data: [UInt8] = [], time: UInt64 = 200) -> [UInt8] {
        F.page(author: author, book: book, index: index, kind: .withdraw, data: data, fields: ["id": id, "ref": file], time: time)
    }

    /// Ana's file (1 part) and a chat in her book for Bob.
    static func anasFile(into log: inout MessageLog, book: BookID, name: TaskBookName) {
        let bytes = Array("abc".utf8)
        log.add(page: F.page(author: name.author, book: book, index: 1, kind: .chunk, data: bytes, fields: ["id": F.id, "part": "0"]),
                index: 1, book: book, name: name)
        log.add(page: F.page(author: name.author, book: book, index: 2, kind: .file, data: Array("the leak".utf8),
                             fields: F.fileFields(bytes, parts: 1)), index: 2, book: book, name: name)
        log.add(page: T.page(author: name.author, book: book, index: 3, text: "hi", id: "m1", time: 150), index: 3, book: book, name: name)
    }

    @Test("a file its author withdrew stays an entry in its place, without name and caption, and still a message; read before or after the file")
    func withdrawnInPlace() throws {
        let (a, b) = (T.peer(1), T.peer(2))
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let book = T.bookID(2)
        for withdrawFirst in [false, true] {
            var log = MessageLog()
            if withdrawFirst { log.add(page: Self.withdrawPage(author: a, book: book, index: 4), index: 4, book: book, name: aToB) }
            Self.anasFile(into: &log, book: book, name: aToB)
            if !withdrawFirst { log.add(page: Self.withdrawPage(author: a, book: book, index: 4), index: 4, book: book, name: aToB) }
            #expect(log.malformed == 0)
            let ordered = log.ordered()
            #expect(ordered.map(\.kind) == [.file, .chat], "the withdraw page makes no entry")
            let file = ordered[0]
            #expect(file.withdrawn && file.file == nil && file.text.isEmpty && file.id == F.id && file.index == 2)
            #expect(log.withdrawal(of: file) == MessageLog.Withdrawal(time: 200, id: Self.withdrawID))
            #expect(OrderedLog(log, preferring: []).messages == 2, "a withdrawn file is still a message")
        }
    }

    @Test("a withdrawal read after the log was ordered marks the entry kept in its place and hands it to followers again")
    func withdrawnLater() {
        let (a, b) = (T.peer(1), T.peer(2))
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let book = T.bookID(2)
        var log = MessageLog()
        Self.anasFile(into: &log, book: book, name: aToB)
        var order = OrderedLog(log, preferring: [])
        #expect(order.entries.first?.file?.name == "roof.jpg")
        var delta = MessageLog()
        delta.add(page: Self.withdrawPage(author: a, book: book, index: 4), index: 4, book: book, name: aToB)
        log.absorb(delta)
        order.take(delta.entries, withdrawn: Array(delta.withdrawals.keys), of: log, preferring: [])
        #expect(order.entries.map(\.kind) == [.file, .chat] && order.entries[0].withdrawn && order.entries[0].file == nil)
        #expect(order.arrivals.map(\.withdrawn) == [true], "followers get the entry again, withdrawn")
        #expect(order.entries == OrderedLog(log, preferring: []).entries, "the same as ordering the whole log anew")
        #expect(order.messages == 2)
        // The same withdrawal again (another book's copy) changes nothing.
        order.take([], withdrawn: Array(delta.withdrawals.keys), of: log, preferring: [])
        #expect(order.arrivals.count == 1)
    }

    @Test("a withdraw page of another member naming a file of Ana's changes nothing; malformed ones are counted")
    func othersAndMalformed() {
        let (a, b) = (T.peer(1), T.peer(2))
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let bToA = TaskBookName(author: b, reader: a, task: T.task)
        var log = MessageLog()
        Self.anasFile(into: &log, book: T.bookID(2), name: aToB)
        log.add(page: Self.withdrawPage(author: b, book: T.bookID(3), index: 1), index: 1, book: T.bookID(3), name: bToA)
        #expect(log.malformed == 0 && log.ordered().first?.withdrawn == false && log.ordered().first?.file?.name == "roof.jpg")
        let bad: [(data: [UInt8], fields: [String: String])] = [
            ([1], ["id": Self.withdrawID, "ref": F.id]), ([], ["ref": F.id]), ([], ["id": Self.withdrawID]),
            ([], ["id": Self.withdrawID, "ref": F.id.uppercased()]), ([], ["id": "x", "ref": F.id]), ([], ["id": Self.withdrawID, "ref": "abc"]),
        ]
        for (offset, page) in bad.enumerated() {
            let index = UInt64(4 + offset)
            log.add(page: F.page(author: a, book: T.bookID(2), index: index, kind: .withdraw, data: page.data, fields: page.fields),
                    index: index, book: T.bookID(2), name: aToB)
        }
        #expect(log.malformed == bad.count && log.ordered().first?.withdrawn == false)
    }

    @Test("JSON (§10.7): a withdrawn file entry has \"withdrawn\":true, no file and no caption; it reads back")
    func json() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var file = LogEntry(author: "aa", id: "f", time: 5, text: "the leak", book: "bb", index: 3, kind: .file,
                            file: AttachedFile(name: "roof.jpg", size: 10, parts: 1, hash: "cc"))
        #expect(!String(decoding: try encoder.encode(file), as: UTF8.self).contains("withdrawn"))
        file.withdraw()
        #expect(String(decoding: try encoder.encode(file), as: UTF8.self)
                == #"{"author":"aa","book":"bb","id":"f","index":3,"kind":"file","text":"","time":5,"withdrawn":true}"#)
        #expect(try JSONDecoder().decode(LogEntry.self, from: encoder.encode(file)) == file)
    }
}

/// Withdrawing files between messengers, offline and over the in-memory network.
@Suite(.serialized) struct MessengerWithdrawTests {
    typealias Files = MessengerFileTests

    @Test("withdraw by its author, offline: the log, files and compile show it withdrawn, save refuses it; twice or another's is refused")
    func withdrawOffline() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let ana = try bed.offline(2)
        let (task, _) = try await ana.newTask("t")
        let bytes = Files.randomBytes(300_000)
        let entry = try await ana.messenger.attach(try Attachments.read(path: try Files.file(bed, "roof.jpg", bytes)), caption: "the leak", to: task)
        let other = try await ana.messenger.attach(try Attachments.read(path: try Files.file(bed, "quote.pdf", [1, 2, 3])), to: task)
        let messages = try await ana.messenger.summary(of: task).messages
        let result = try await ana.messenger.withdraw("roof.jpg", in: task)
        #expect(result.file == entry.file && result.entry.withdrawn && result.entry.file == nil && result.entry.text.isEmpty)
        #expect(result.entry.id == entry.id && result.entry.book == entry.book && result.entry.index == entry.index)
        let log = try await ana.messenger.log(of: task)
        #expect(log.filter { $0.kind == .file }.map(\.withdrawn) == [true, false])
        #expect(log.first { $0.id == entry.id } == result.entry, "the entry in its place, as the result says")
        #expect(try await ana.messenger.summary(of: task).messages == messages, "still a message")
        let files = try await ana.messenger.files(of: task)
        #expect(files.map(\.entry.withdrawn) == [true, false] && files[0].held == 0 && !files[0].whole && files[1].whole)
        // save: by id or prefix, one line saying so; by name it is not found (the name is gone).
        for text in [entry.id, String(entry.id.prefix(6))] {
            await #expect(throws: MessengerError(.withdrawn, "")) { try await ana.messenger.save(text, in: task, to: try Files.directory(bed)) }
            do {
                _ = try await ana.messenger.save(text, in: task, to: try Files.directory(bed))
            } catch {
                #expect("\(error)".contains("was withdrawn by its author") && !"\(error)".contains("roof"), "\(error)")
            }
        }
        do {
            _ = try await ana.messenger.save("roof.jpg", in: task, to: try Files.directory(bed))
            Issue.record("a withdrawn file's name still finds it")
        } catch {
            #expect("\(error)".contains("known by its id only"), "\(error)")
        }
        // Twice: refused, nothing written.
        let length = try #require(try ana.store.book(named: TaskBookName.journal(of: ana.id, task: task).text)).length
        await #expect(throws: MessengerError(.withdrawn, "")) { try await ana.messenger.withdraw(entry.id, in: task) }
        #expect(try #require(try ana.store.book(named: TaskBookName.journal(of: ana.id, task: task).text)).length == length)
        // The other file still saves; a compile copies it, not the withdrawn one.
        let saved = try await ana.messenger.save(other.id, in: task, to: try Files.directory(bed))
        #expect(FileManager.default.contents(atPath: saved.path) == Data([1, 2, 3]))
        #expect(try await ana.messenger.compile(task, into: "record").copied == 1)
        await ana.stop()
    }

    @Test("Ana withdraws a file Bob saved: Bob's log and files show it withdrawn, his save is refused, his copy stays; Bob cannot withdraw it",
          .timeLimit(.minutes(1)))
    func withdrawnAtTheOthers() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, task, _) = try await bed.bobAndAnaInATask()
        let bytes = Files.randomBytes(600_000)
        let entry = try await ana.messenger.attach(try Attachments.read(path: try Files.file(bed, "roof.jpg", bytes)), caption: "the leak", to: task)
        #expect(try await eventually { try await bob.messenger.files(of: task).first?.whole == true })
        let saved = try await bob.messenger.save("roof.jpg", in: task, to: try Files.directory(bed))
        try await bob.messenger.markRead(task)
        // Bob cannot withdraw Ana's file: one line, nothing written.
        do {
            _ = try await bob.messenger.withdraw("roof.jpg", in: task)
            Issue.record("Bob withdrew Ana's file")
        } catch let error as MessengerError {
            #expect(error.code == .withdrawn && error.message.contains("only its author can withdraw"), "\(error)")
        }
        _ = try await ana.messenger.withdraw(String(entry.id.prefix(8)), in: task)
        #expect(try await eventually { try await bob.messenger.log(of: task).contains { $0.id == entry.id && $0.withdrawn } })
        let file = try #require(try await bob.messenger.log(of: task).first { $0.id == entry.id })
        #expect(file.file == nil && file.text.isEmpty && file.author == ana.id.publicKey.hex)
        #expect(try await bob.messenger.files(of: task).map(\.entry.withdrawn) == [true])
        await #expect(throws: MessengerError(.withdrawn, "")) { try await bob.messenger.save(entry.id, in: task, to: try Files.directory(bed)) }
        #expect(FileManager.default.contents(atPath: saved.path) == Data(bytes), "the copy saved before stays")
        let summary = try await bob.messenger.summary(of: task)
        #expect(summary.messages == 1 && summary.unread == 0, "the withdrawal is no new message")
        await ana.stop()
        await bob.stop()
    }

    @Test("a withdraw page Bob wrote naming Ana's file is ignored by every member (Ana, Carol); Ana's own counts",
          .timeLimit(.minutes(1)))
    func anotherMembersWithdrawIsIgnored() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, carol, task) = try await bed.threeInATask()
        let entry = try await ana.messenger.attach(try Attachments.read(path: try Files.file(bed, "roof.jpg", [1, 2, 3])), to: task)
        for p in [bob, carol] { #expect(try await eventually { try await p.messenger.files(of: task).first?.whole == true }) }
        // What a hostile client of Bob's could write: the page `withdraw` refuses to write.
        let forged = Messenger.PageSpec(kind: .withdraw, data: [], fields: ["id": SecureRandom.bytes(12).hexString, "ref": entry.id])
        try await bob.messenger.appendToBooksWritten([forged], in: task)
        try await bob.messenger.send("after the forged withdrawal", to: task)
        for p in [ana, carol] {
            #expect(try await eventually { try await p.texts(task) == ["after the forged withdrawal"] })
            let files = try await p.messenger.files(of: task)
            #expect(files.map(\.entry.withdrawn) == [false] && files.first?.whole == true)
        }
        // Ana's own withdrawal reaches both.
        _ = try await ana.messenger.withdraw(entry.id, in: task)
        for p in [bob, carol] {
            #expect(try await eventually { try await p.messenger.files(of: task).first?.entry.withdrawn == true })
        }
        for p in [ana, bob, carol] { await p.stop() }
    }

    @Test("withdrawn offline, replicated when Ana is back; a member who joins later sees it withdrawn", .timeLimit(.minutes(1)))
    func offlineWithdrawAndLateJoiner() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try await bed.online(1)
        let (task, invite) = try await bob.newTask("t")
        var ana = try await bed.online(2)
        _ = try await ana.messenger.join(invite)
        let entry = try await ana.messenger.attach(try Attachments.read(path: try Files.file(bed, "roof.jpg", Files.randomBytes(100_000))), to: task)
        #expect(try await eventually { try await bob.messenger.files(of: task).first?.whole == true })
        await ana.stop()
        let offline = try bed.offline(2)
        _ = try await offline.messenger.withdraw("roof.jpg", in: task)
        #expect(try await offline.messenger.files(of: task).first?.entry.withdrawn == true)
        offline.store.close()
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await bob.messenger.files(of: task).first?.entry.withdrawn == false)
        ana = try await bed.online(2)
        #expect(try await eventually { try await bob.messenger.files(of: task).first?.entry.withdrawn == true })
        // Carol joins after: Ana's new book for her carries the file and its withdrawal.
        let carol = try await bed.online(3)
        _ = try await carol.messenger.join(invite)
        #expect(try await eventually { try await carol.messenger.log(of: task).contains { $0.id == entry.id } })
        #expect(try await eventually { try await carol.messenger.files(of: task).first?.entry.withdrawn == true })
        for p in [ana, bob, carol] { await p.stop() }
    }
}
