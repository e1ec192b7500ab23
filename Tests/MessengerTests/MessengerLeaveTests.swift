import Books
import Foundation
import Swarm
import Testing
@testable import Messenger

/// Leaving a task (PROTOCOL.md §10.3), between messengers on the in-memory network.
@Suite(.serialized) struct MessengerLeaveTests {
    @Test("leave: the task and all its books go from this vault, the others keep theirs; joining again brings the history back",
          .timeLimit(.minutes(1)))
    func leaveAndComeBack() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, carol, task) = try await bed.threeInATask()
        try await bob.messenger.send("from Bob", to: task)
        try await ana.messenger.send("from Ana", to: task)
        let everything = ["from Bob", "from Ana"]
        // (Sets: two messages sent within one millisecond are ordered by author id.)
        for peer in [bob, ana, carol] { #expect(try await eventually { Set(try await peer.texts(task)) == Set(everything) }) }
        // Another task of Bob's and Ana's, which leaving this one must not disturb.
        let (other, otherInvite) = try await bob.newTask("other")
        _ = try await ana.messenger.join(otherInvite)
        try await bob.messenger.send("in the other task", to: other)
        #expect(try await eventually { try await ana.texts(other) == ["in the other task"] })

        let books = try await ana.messenger.books(of: task).map(\.book.id)
        #expect(books.count == 5, "journal, two written, two read")
        let left = try await ana.messenger.leave(task)
        #expect(left.books == 5 && left.messages == 2 && left.title == "t")
        #expect(await !ana.messenger.taskIDs().contains(task))
        await #expect(throws: MessengerError(.unknownTask, "")) { try await ana.messenger.log(of: task) }
        let held = Set(try ana.store.list().map(\.id))
        #expect(held.isDisjoint(with: books), "every book of the task is gone from the store")
        // Bob and Carol keep everything and go on; nothing of it reaches Ana any more.
        try await bob.messenger.send("after Ana left", to: task)
        #expect(try await eventually { Set(try await carol.texts(task)) == Set(everything + ["after Ana left"]) })
        #expect(Set(try ana.store.list().map(\.id)).isDisjoint(with: books))
        #expect(await !ana.messenger.taskIDs().contains(task))
        // The other task goes on.
        try await bob.messenger.send("still here", to: other)
        #expect(try await eventually { try await ana.texts(other) == ["in the other task", "still here"] })

        // Ana joins again: the messages come back from the members, her own included.
        let invite = try await bob.messenger.invite(of: task)
        _ = try await ana.messenger.join(invite)
        #expect(try await eventually { try await ana.texts(task) == (try await carol.texts(task)) })
        #expect(Set(try await ana.texts(task)) == Set(everything + ["after Ana left"]))
        try await ana.messenger.send("back", to: task)
        for peer in [bob, carol] {
            let got = try await eventually { try await peer.texts(task).last == "back" }
            if !got {
                let r = try await peer.messenger.inspect()
                print("DIAG \(peer.seed) texts=\(try await peer.texts(task)) books=\(r.books.map { "\($0.name?.suffix(40) ?? "-") \($0.length)/\($0.held) \($0.problem ?? "")" })")
                print("DIAG \(peer.seed) events=\(r.events.suffix(25).map { $0.kind + ": " + $0.detail }) refusals=\(r.refusals.map(\.detail))")
                let a = try await ana.messenger.inspect()
                print("DIAG ana books=\(a.books.map { "\($0.name?.suffix(40) ?? "-") \($0.length)/\($0.held) \($0.problem ?? "")" }) events=\(a.events.suffix(25).map { $0.kind + ": " + $0.detail })")
            }
            #expect(got)
        }
        await carol.stop()
        await ana.stop()
        await bob.stop()
    }

    @Test("leaving offline, and a task this vault does not have")
    func leaveOffline() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try bed.offline(1)
        let (task, _) = try await bob.newTask("alone")
        try await bob.messenger.send("note", to: task)
        let left = try await bob.messenger.leave(task)
        #expect(left.books == 1 && left.messages == 1)
        #expect(try await bob.messenger.summaries().isEmpty)
        await #expect(throws: MessengerError(.unknownTask, "")) { try await bob.messenger.leave(task) }
        await bob.stop()
        // Nothing of it after a restart either.
        let again = try bed.offline(1)
        #expect(try await again.messenger.summaries().isEmpty)
        await again.stop()
    }
}
