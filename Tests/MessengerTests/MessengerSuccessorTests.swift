import Books
import Foundation
import Swarm
import Testing
@testable import Messenger

/// Moving a task on without some members (PROTOCOL.md §10.3, Successors), between
/// messengers on the in-memory network.
@Suite(.serialized) struct MessengerSuccessorTests {
    @Test("Bob moves the task on without Carol: Ana follows by herself, Carol sees the move and cannot follow; leaving the new task sticks",
          .timeLimit(.minutes(1)))
    func moveOnWithoutAMember() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var (bob, ana, carol, task) = try await bed.threeInATask()
        try await bob.messenger.send("before", to: task)
        for peer in [ana, carol] { #expect(try await eventually { try await peer.texts(task) == ["before"] }) }

        let moved = try await bob.messenger.moveOn(task, without: [carol.id])
        let successor = try #require(TaskID(hex: moved.successor.id))
        #expect(moved.successor.title == "t" && moved.successor.creator == bob.id.publicKey.hex)
        #expect(moved.entry.kind == .successor && moved.entry.without == [carol.id.publicKey.hex]
                && moved.entry.with == [ana.id.publicKey.hex])
        #expect(try await bob.messenger.summary(of: task).successor == successor.hex)

        // Ana's messenger opens the invite sealed to her and joins the new task by itself.
        #expect(try await eventually { await ana.messenger.taskIDs().contains(successor) })
        #expect(try await eventually { try await ana.messenger.summary(of: task).successor == successor.hex })
        try await bob.messenger.send("in the new task", to: successor)
        #expect(try await eventually { try await ana.texts(successor) == ["in the new task"] })
        try await ana.messenger.send("here too", to: successor)
        #expect(try await eventually { try await bob.texts(successor) == ["in the new task", "here too"] })
        #expect(try await ana.messenger.summary(of: successor).members.map(\.peer) == [bob.id.publicKey.hex])
        // The title now names the new task; the old one by its id.
        #expect(try await bob.messenger.resolveTask("t") == successor)
        #expect(try await ana.messenger.resolveTask("T") == successor)
        // The old task is not moved on a second time, by its mover or by one who followed:
        // members are removed from the successor.
        for peer in [bob, ana] {
            do {
                _ = try await peer.messenger.moveOn(task, without: [carol.id])
                Issue.record("the task was moved on twice")
            } catch let error as MessengerError {
                #expect(error.code == .movedOn && error.message.contains("to \(successor.hex.prefix(8)): remove members there"), "\(error)")
            }
        }
        #expect(await bob.messenger.taskIDs().count == 2, "nothing created by the refusal")

        // Carol sees that the task moved on without her, and has nothing to join.
        #expect(try await eventually {
            try await carol.messenger.log(of: task).contains { $0.kind == .successor && $0.without == [carol.id.publicKey.hex] }
        })
        #expect(await !carol.messenger.taskIDs().contains(successor))
        #expect(try await carol.messenger.summary(of: task).successor == nil)
        #expect(try await carol.messenger.summary(of: task).messages == 1, "a move is no message")
        #expect(try await carol.messenger.resolveTask("t") == task)

        // Ana leaves the new task: it does not come back, not even after a restart.
        _ = try await ana.messenger.leave(successor)
        await ana.stop()
        ana = try await bed.online(2)
        try await bob.messenger.send("after", to: task)
        #expect(try await eventually { try await ana.texts(task).last == "after" })
        try await Task.sleep(for: .milliseconds(300))
        #expect(await !ana.messenger.taskIDs().contains(successor))
        _ = carol
        for peer in [bob, ana, carol] { await peer.stop() }
    }

    @Test("two members move the task on at once, offline: the first move wins everywhere; the later one's task is superseded",
          .timeLimit(.minutes(1)))
    func concurrentMoves() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var (bob, ana, carol, task) = try await bed.threeInATask()
        let dave = try await bed.online(4)
        _ = try await dave.messenger.join(try await bob.messenger.invite(of: task))
        for peer in [bob, ana, carol, dave] {
            #expect(try await eventually { try await peer.messenger.summary(of: task).members.count == 3 })
        }
        // Ana moves the task on without Carol while offline; then Bob does the same, later,
        // offline too and without having seen Ana's move.
        await ana.stop()
        ana = try bed.offline(2)
        let first = try #require(TaskID(hex: try await ana.messenger.moveOn(task, without: [carol.id]).successor.id))
        await ana.stop()
        try await Task.sleep(for: .milliseconds(5))
        await bob.stop()
        bob = try bed.offline(1)
        let later = try #require(TaskID(hex: try await bob.messenger.moveOn(task, without: [carol.id]).successor.id))
        await bob.stop()
        // Bob comes back first: Dave, who sees only Bob's move, follows it.
        bob = try await bed.online(1)
        #expect(try await eventually { await dave.messenger.taskIDs().contains(later) })
        // Then Ana: Bob and Dave follow her move, the first; Bob's task is superseded by hers.
        ana = try await bed.online(2)
        for peer in [bob, dave] {
            #expect(try await eventually { await peer.messenger.taskIDs().contains(first) })
            #expect(try await eventually { try await peer.messenger.summary(of: later).supersededBy == first.hex })
            #expect(try await peer.messenger.summary(of: task).successor == first.hex)
            let named = try await peer.messenger.resolveTask("t")
            #expect(named == first, "the title names the first move's task: \(named.hex) (first \(first.hex), later \(later.hex), old \(task.hex))")
        }
        // Ana never follows Bob's move, though it takes her along.
        #expect(try await eventually { try await ana.messenger.log(of: task).filter { $0.kind == .successor }.count == 2 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(await !ana.messenger.taskIDs().contains(later))
        let named = try await ana.messenger.resolveTask("t")
        #expect(named == first, "\(named.hex) (first \(first.hex), later \(later.hex), old \(task.hex))")
        #expect(try await ana.messenger.summary(of: first).supersededBy == nil)
        // The three talk in Ana's task; Carol is in neither.
        try await bob.messenger.send("in the first", to: first)
        for peer in [ana, dave] { #expect(try await eventually { try await peer.texts(first) == ["in the first"] }) }
        #expect(await carol.messenger.taskIDs() == [task])
        // Bob cannot move the old task on again: he followed Ana to hers.
        do {
            _ = try await bob.messenger.moveOn(task, without: [carol.id])
            Issue.record("the task was moved on again")
        } catch let error as MessengerError {
            #expect(error.code == .movedOn && error.message.contains("you followed"), "\(error)")
        }
        for peer in [bob, ana, carol, dave] { await peer.stop() }
    }

    @Test("a member left out cannot undo the move with a move of its own dated earlier", .timeLimit(.minutes(1)))
    func aMemberLeftOutCannotUndoTheMove() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var (bob, ana, carol, task) = try await bed.threeInATask()
        for peer in [bob, ana, carol] {
            #expect(try await eventually { try await peer.messenger.summary(of: task).members.count == 2 })
        }
        // Bob moves the task on without Carol; Ana follows.
        let first = try #require(TaskID(hex: try await bob.messenger.moveOn(task, without: [carol.id]).successor.id))
        #expect(try await eventually { await ana.messenger.taskIDs().contains(first) })
        // Carol, with her clock set an hour back, moves the task on without Bob.
        #expect(try await eventually { try await carol.messenger.log(of: task).contains { $0.kind == .successor } })
        await carol.stop()
        let hourAgo = UInt64(Date().timeIntervalSince1970 * 1000) - 3_600_000
        carol = try bed.offline(3, clock: { hourAgo })
        let undone = try #require(TaskID(hex: try await carol.messenger.moveOn(task, without: [bob.id]).successor.id))
        await carol.stop()
        carol = try await bed.online(3)
        // Ana holds both moves; Bob's stays the first: she follows Carol's nowhere.
        #expect(try await eventually { try await ana.messenger.log(of: task).filter { $0.kind == .successor }.count == 2 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(await !ana.messenger.taskIDs().contains(undone))
        #expect(try await ana.messenger.resolveTask("t") == first)
        #expect(try await ana.messenger.summary(of: first).supersededBy == nil)
        for peer in [bob, ana, carol] { await peer.stop() }
    }

    @Test("a member met only after the move gets the invite in the first pages of its book, if it was taken along")
    func memberMetAfterTheMove() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, carol, task) = try await bed.threeInATask()
        #expect(try await eventually { try await bob.messenger.summary(of: task).members.count == 2 })
        // Bob writes his books for Ana and Carol again from his journal, as for a member
        // met later (the journal's successor page made for each reader).
        _ = try await bob.messenger.moveOn(task, without: [carol.id])
        let forAna = try await bob.messenger.successorData(try Self.journalSuccessor(bob, task), for: ana.id)
        let forCarol = try await bob.messenger.successorData(try Self.journalSuccessor(bob, task), for: carol.id)
        let lists = 1 + 32 + 1 + 32
        #expect(forAna.count == lists + 96)
        #expect(forCarol.count == lists)
        #expect(Successor(data: forAna, author: bob.id, reader: ana.id) != nil)
        #expect(Successor(data: forCarol, author: bob.id, reader: carol.id) != nil)
        #expect(Successor(data: forAna, author: bob.id, reader: carol.id) == nil, "a sealed invite in a book for one left out")
        for peer in [bob, ana, carol] { await peer.stop() }
    }

    @Test("moving on: one's own id, a stranger, nobody, and a typed member")
    func refusals() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, carol, task) = try await bed.threeInATask()
        #expect(try await eventually { try await bob.messenger.summary(of: task).members.count == 2 })
        await #expect(throws: MessengerError(.unknownMember, "")) { try await bob.messenger.moveOn(task, without: []) }
        await #expect(throws: MessengerError(.unknownMember, "")) { try await bob.messenger.moveOn(task, without: [bob.id]) }
        let stranger = PeerID(MessengerBed.identity(77).publicKey)
        await #expect(throws: MessengerError(.unknownMember, "")) { try await bob.messenger.moveOn(task, without: [stranger]) }
        #expect(await bob.messenger.taskIDs().count == 1, "nothing created by a refusal")
        #expect(try await bob.messenger.resolveMembers([String(carol.id.publicKey.hex.prefix(8))], in: task) == [carol.id])
        await #expect(throws: MessengerError(.unknownMember, "")) { try await bob.messenger.resolveMembers(["nobody"], in: task) }
        _ = try await ana.messenger.setOwnName("Ana")
        #expect(try await eventually { (try? await bob.messenger.resolveMembers(["Ana"], in: task)) == [ana.id] })
        // Typed in another case, or its beginning only, as titles are: one member named so.
        _ = try await carol.messenger.setOwnName("Carol 🦊")
        #expect(try await eventually { (try? await bob.messenger.resolveMembers(["carol"], in: task)) == [carol.id] })
        #expect(try await bob.messenger.resolveMembers(["ANA", "Carol 🦊"], in: task) == [ana.id, carol.id])
        for peer in [bob, ana, carol] { await peer.stop() }
    }

    static func journalSuccessor(_ peer: Peer, _ task: TaskID) throws -> [UInt8] {
        let journal = try #require(try peer.store.book(named: TaskBookName.journal(of: peer.id, task: task).text))
        for index in 0..<journal.length {
            let page = try MessengerPage(decoding: try #require(try journal.get(index)))
            if case .successor = page.kind { return page.data }
        }
        throw MessengerError(.storage, "no successor page")
    }

    @Test("successor data: lists sorted, disjoint, without the author; the invite's size fits the book")
    func successorData() throws {
        let (a, b, c) = (PeerID(MessengerBed.identity(1).publicKey), PeerID(MessengerBed.identity(2).publicKey),
                         PeerID(MessengerBed.identity(3).publicKey))
        let sorted = [b, c].sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        let clear = a.bytes + [UInt8](repeating: 9, count: 16)
        let journal = Successor(without: [sorted[0]], with: [sorted[1]], invite: clear).encoded()
        #expect(Successor(data: journal, author: a, reader: a)?.invite == clear)
        #expect(Successor(data: journal, author: b, reader: b) == nil, "the clear invite names its author")
        let unsorted = Successor(without: [sorted[1], sorted[0]], with: [], invite: clear).encoded()
        #expect(Successor(data: unsorted, author: a, reader: a) == nil)
        let overlapping = Successor(without: [b], with: [b], invite: clear).encoded()
        #expect(Successor(data: overlapping, author: a, reader: a) == nil)
        let selfOut = Successor(without: [a], with: [], invite: clear).encoded()
        #expect(Successor(data: selfOut, author: a, reader: a) == nil)
        #expect(Successor(data: [0], author: a, reader: a) == nil, "nobody left out")
        #expect(Successor(data: Array(journal.dropLast()), author: a, reader: a) == nil)
    }
}
