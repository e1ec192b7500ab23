import Books
import Foundation
import Swarm
import Testing
@testable import Messenger

/// Display names (PROTOCOL.md §10.2 type 7, §10.3) between messengers on the in-memory network.
@Suite(.serialized) struct MessengerNameTests {
    @Test("a name chosen before a task travels in the pairwise books' first batch; a name chosen or changed later reaches every member",
          .timeLimit(.minutes(1)))
    func namesTravelWithTheBooks() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try await bed.online(1)
        let ana = try await bed.online(2)
        #expect(try await bob.messenger.ownName() == nil)
        #expect(try await bob.messenger.setOwnName("  Bob  ") == "Bob")
        #expect(try await bob.messenger.ownName() == "Bob")
        let (task, invite) = try await bob.newTask("Fix the roof")
        try await bob.messenger.send("who can help?", to: task)
        _ = try await ana.messenger.join(invite)
        let bobHex = bob.id.publicKey.hex, anaHex = ana.id.publicKey.hex
        // Bob's message, then Ana's join (she has no name yet).
        #expect(try await eventually { try await ana.messenger.log(of: task).map(\.name) == ["Bob", nil] })
        #expect(try await ana.messenger.summary(of: task).members.first { $0.peer == bobHex }?.name == "Bob")
        // Bob's book for Ana: address, title, name, then the journal's history — one batch.
        let name = TaskBookName(author: bob.id, reader: ana.id, task: task).text
        let book = try #require(try bob.store.book(named: name))
        let kinds = try (0..<book.length).map { try MessengerPage(decoding: try #require(try book.get($0))).kind }
        #expect(kinds == [.address, .title, .name, .chat])
        // Ana chooses one after joining: Bob learns it by replication, on her messages too.
        try await ana.messenger.send("me", to: task)
        #expect(try await eventually { try await bob.messenger.summary(of: task).members.first { $0.peer == anaHex }?.name == nil })
        try await ana.messenger.setOwnName("Ana")
        #expect(try await eventually { try await bob.messenger.names(in: task)[anaHex] == "Ana" })
        // Her newest name is on all her entries: her join and her message.
        #expect(try await bob.messenger.log(of: task).map { "\($0.kind) \($0.name ?? "-")" } == ["chat Bob", "join Ana", "chat Ana"])
        try await ana.messenger.setOwnName("Ana B.")
        #expect(try await eventually { try await bob.messenger.summary(of: task).members.first { $0.peer == anaHex }?.name == "Ana B." })
        // The same name again writes nothing.
        let anaBook = try #require(try ana.store.book(named: TaskBookName(author: ana.id, reader: bob.id, task: task).text))
        let length = anaBook.length
        try await ana.messenger.setOwnName("Ana B.")
        #expect(anaBook.length == length)
        await ana.stop()
        await bob.stop()
    }

    @Test("a bad name is refused with a one-line reason and nothing is written")
    func badNamesAreRefused() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let (task, _) = try await bob.newTask("t")
        let journal = try #require(try bob.store.book(named: TaskBookName.journal(of: bob.id, task: task).text))
        let length = journal.length
        for bad in ["", "   ", "a\nb", "\u{1b}[31mred", String(repeating: "x", count: 65)] {
            await #expect(throws: MessengerError(.invalidName, "")) { try await bob.messenger.setOwnName(bad) }
        }
        #expect(journal.length == length)
        #expect(try await bob.messenger.ownName() == nil)
        // A name set offline goes into the journal at once (and into pairwise books as they come).
        try await bob.messenger.setOwnName("Bob")
        #expect(journal.length == length + 1)
        await bob.stop()
    }
}
