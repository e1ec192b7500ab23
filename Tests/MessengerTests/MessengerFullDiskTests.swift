import Books
import Foundation
import Swarm
import Testing
@testable import Messenger

/// A messenger that comes online on a store it cannot write (a daemon started on a full
/// disk, PROTOCOL.md §10.6), on the in-memory network.
@Suite(.serialized) struct MessengerFullDiskTests {
    @Test("online on a store it cannot write: shows what it holds; writing again by itself, it takes the member met meanwhile",
          .timeLimit(.minutes(1)))
    func writesAgainAndTakesTheMemberMetMeanwhile() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var (bob, ana, task, invite) = try await bed.bobAndAnaInATask()
        try await bob.messenger.send("before", to: task)
        #expect(try await eventually { try await ana.texts(task) == ["before"] })
        // Ana comes back on a store that refuses every write, as on a full disk; Carol joins
        // and meets her at once: Ana cannot make her book for Carol yet.
        await ana.stop()
        ana = try await bed.online(2, refusing: BooksError(.diskFull, "the disk is full", file: bed.root + "/2/books.sqlite"))
        #expect(try await ana.texts(task) == ["before"])
        let carol = try await bed.online(3)
        _ = try await carol.messenger.join(invite)
        try await carol.messenger.send("from carol", to: task)
        // The store is tried again after a pause (1 s; the disk here is not really full):
        // Ana writes again, gets what Carol wrote, and Carol gets what Ana writes now.
        #expect(try await eventually { ana.store.writeRefusal == nil })
        #expect(try await ana.messenger.inspect().storage == nil)
        #expect(try await eventually { try await ana.texts(task).contains("from carol") })
        try await ana.messenger.send("back", to: task)
        #expect(try await eventually { try await carol.texts(task).contains("back") })
        #expect(try await eventually { try await bob.texts(task) == ["before", "from carol", "back"] })
        for peer in [bob, ana, carol] { await peer.stop() }
    }
}
