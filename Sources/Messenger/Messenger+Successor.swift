import Books
import Sodium
import Swarm

/// What `moveOn` made: the successor task, and the entry the old task's log shows.
public struct MoveResult: Codable, Hashable, Sendable {
    public var successor: TaskSummary
    public var entry: LogEntry
}

/// Moving a task on without some of its members (PROTOCOL.md §10.3, Successors). Books are
/// append-only and a task's topic comes from its invite, which every member holds: nobody
/// can be put out of a task. What a member can do is start a new task of its own and take
/// everyone else along: it writes a `successor` page into every book it writes in the old
/// task, with the new task's invite sealed to each member it takes along; their messengers
/// open it and join the new task by themselves. The members left out see the page, and
/// nothing they could join.
extension Messenger {
    /// Moves `task` on to a new task, created by this peer with the same title, without the
    /// members `removed` (at least one, never this peer): every other member this peer
    /// knows in the task is taken along. Returns the new task and the old task's entry.
    public func moveOn(_ task: TaskID, without removed: [PeerID]) async throws -> MoveResult {
        guard tasks[task] != nil else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        // Moving the old task on again would make a second successor beside the first (and
        // its title name two tasks): members are removed from the successor instead. One
        // that was left since does not count.
        if let moved = try taskLog(of: task).log.movedOn.last(where: { tasks[$0.task] != nil }) {
            let successor = moved.task.hex.prefix(8)
            let how = moved.creator == localPeer ? "you moved it on" : "you followed \(moved.creator.short) when it moved it on"
            throw MessengerError(.movedOn, "task \(task.hex.prefix(8)) was moved on already (\(how)) to \(successor): "
                                 + "remove members there (bookswarm task remove \(successor) …)")
        }
        let members = try members(of: task)
        let without = Set(removed).sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        guard !without.isEmpty else {
            throw MessengerError(.unknownMember, "name the members to leave out of the task's successor")
        }
        guard !without.contains(localPeer) else {
            throw MessengerError(.unknownMember, "you cannot leave yourself out; to leave the task, run: bookswarm task leave")
        }
        if let stranger = without.first(where: { !members.contains($0) }) {
            throw MessengerError(.unknownMember, "\(stranger.publicKey.hex.prefix(8)) is not a member of this task (see: bookswarm tasks)")
        }
        let with = members.subtracting(without).sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        guard without.count <= Successor.maxMembers, with.count <= Successor.maxMembers else {
            throw MessengerError(.unknownMember, "a task moves on with and without \(Successor.maxMembers) members at most")
        }
        let title = title(of: task) ?? "task \(task.hex.prefix(8))"
        let summary = try await newTask(title: title)
        guard let successor = TaskID(hex: summary.id) else { throw MessengerError(.storage, "the new task has no id") }
        let invite = InviteCode(creator: localPeer, task: successor)
        let id = SecureRandom.bytes(12).hexString
        let time = wallClock()
        // One page per book, the invite made for its reader; a pairwise book found forked is
        // passed over (its next generation starts with the journal's page, made for its reader).
        let written = try appendToBooksWritten(count: 1, in: task) { _, _, _, reader in
            let data = Successor(without: without, with: with,
                                 invite: try Successor.invite(invite, for: reader, author: localPeer, with: with)).encoded()
            return PageSpec(kind: .successor, data: data, fields: ["id": id], time: time)
        }
        notify(.changed(task))
        guard let journal = written else { throw MessengerError(.storage, "the journal of task \(task.hex) is missing") }
        record("task", "moved task \(task.hex.prefix(8)) on to \(successor.hex.prefix(8)) without "
               + without.map { String($0.publicKey.hex.prefix(8)) }.joined(separator: ", "))
        var entry = LogEntry(author: localPeer.publicKey.hex, id: id, time: time, text: "", book: journal.book.hex, index: journal.index,
                             kind: .successor, without: without.map(\.publicKey.hex), with: with.map(\.publicKey.hex))
        let names = (try? names(in: task)) ?? [:]
        entry.takeNames { names[$0] }
        return MoveResult(successor: summary, entry: entry)
    }

    /// The members `texts` name in the task (this peer among them): each a peer id, the
    /// beginning of one (8 hex digits or more), or a member's display name as shown.
    public func resolveMembers(_ texts: [String], in task: TaskID) throws -> [PeerID] {
        // This peer too: naming itself is an error `moveOn` explains.
        let members = try members(of: task).union([localPeer])
        let names = try names(in: task)
        return try texts.map { text in
            let typed = text.trimmingCharacters(in: .whitespaces).lowercased()
            let byID = Array(members.filter { $0.publicKey.hex.hasPrefix(typed) })
            if typed.count >= 8, typed.allSatisfy(\.isHexDigit) {
                guard byID.count == 1 else {
                    throw MessengerError(.unknownMember, byID.isEmpty ? "no member of this task has an id beginning \(typed) (see: bookswarm tasks)"
                                                                      : "\(byID.count) members' ids begin \(typed); type more of it")
                }
                return byID[0]
            }
            // The name as shown; else as typed in any case (and accents, and width), whole;
            // else the beginning of one name only, as titles are matched.
            let folded = Self.folded
            let key = folded(typed)
            var named = Array(members.filter { names[$0.publicKey.hex] == text })
            if named.isEmpty { named = members.filter { names[$0.publicKey.hex].map(folded) == key } }
            if named.isEmpty, !key.isEmpty { named = members.filter { names[$0.publicKey.hex].map(folded)?.hasPrefix(key) == true } }
            guard named.count == 1 else {
                throw MessengerError(.unknownMember, named.isEmpty ? "no member of this task is named \"\(text)\" (give a name as shown, or 8 hex digits of an id)"
                                                                   : "\(named.count) members' names match \"\(text)\"; give more of the name, or 8 hex digits of an id")
            }
            return named[0]
        }
    }

    /// Joins the successor of `task` that its first move (§10.3, Concurrent moves) took this
    /// peer along to: the `successor` page in its author's book for this peer, its invite
    /// sealed to it, if this peer did not follow it yet (its journal's `followed` pages).
    /// It is joined once, then recorded in the journal, so that leaving the new task later
    /// does not bring it back. A sealed invite that does not open is reported once and left.
    /// A later move, made by a member that had not seen the first (offline), is not
    /// followed; one followed before the first was seen, or made here, is superseded by it
    /// once the first is followed (`supersessions()`).
    func followSuccessors(of task: TaskID) async {
        guard tasks[task] != nil, !followingSuccessors.contains(task) else { return }
        followingSuccessors.insert(task)
        defer { followingSuccessors.remove(task) }
        guard let log = try? taskLog(of: task).log, let first = log.firstMove else { return }
        for copy in log.successors where copy.key == first.key && copy.reader == localPeer && log.followed[copy.key] == nil
            && !unopenedSuccessors.contains(copy.key) && copy.successor.with.contains(localPeer) {
            let invite: InviteCode
            do {
                invite = try copy.successor.openInvite(with: agreementKeys, author: copy.author)
            } catch {
                unopenedSuccessors.insert(copy.key)
                record("refused", "the successor of task \(task.hex.prefix(8)) from \(copy.author.short): \(error)")
                continue
            }
            do {
                if tasks[invite.task] == nil { _ = try await join(invite) }
                guard tasks[task] != nil else { return }  // left meanwhile
                let journal = try storage { try store.createOrOpen(name: TaskBookName.journal(of: localPeer, task: task).text) }
                try append([PageSpec(kind: .followed, data: copy.author.bytes + invite.creator.bytes + invite.task.bytes,
                                     fields: ["id": copy.id])], to: journal)
                record("task", "followed \(copy.author.short) from task \(task.hex.prefix(8)) to its successor \(invite.task.hex.prefix(8))")
                notify(.changed(task))
            } catch {
                record("error", "cannot follow \(copy.author.short) to the successor of task \(task.hex.prefix(8)): \(error)")
            }
        }
    }

    /// Every superseded task held here (§10.3, Concurrent moves) → the task that supersedes
    /// it: a task this peer moved a task on to or followed a member to, which it has since
    /// followed that task's first move away from, to a task held here. One look at each
    /// task's moves.
    func supersessions() -> [TaskID: TaskID] {
        var superseding: [TaskID: TaskID] = [:]
        for task in tasks.keys {
            guard let moved = try? taskLog(of: task).log.movedOn, moved.count > 1,
                  let last = moved.last?.task, tasks[last] != nil else { continue }
            for earlier in moved.dropLast() where earlier.task != last { superseding[earlier.task] = last }
        }
        return superseding
    }

    /// A `successor` page of this peer's journal as its pairwise book for `reader` carries it
    /// (§10.3: a book made after the move starts with it): the invite sealed to the reader if
    /// it was taken along, else none.
    func successorData(_ journalData: [UInt8], for reader: PeerID) throws -> [UInt8] {
        guard let successor = Successor(data: journalData, author: localPeer, reader: localPeer),
              let task = TaskID(bytes: Array(successor.invite.suffix(TaskID.length))) else {
            throw MessengerError(.storage, "a successor page of this vault's journal is malformed")
        }
        let invite = try Successor.invite(InviteCode(creator: localPeer, task: task), for: reader, author: localPeer, with: successor.with)
        return Successor(without: successor.without, with: successor.with, invite: invite).encoded()
    }
}
