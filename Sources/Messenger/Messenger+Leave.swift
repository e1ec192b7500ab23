import Books
import Foundation
import Swarm

/// What leaving a task removed.
public struct LeaveResult: Codable, Hashable, Sendable {
    public var task: String
    public var title: String?
    /// Books deleted: the journal and the pairwise books written and read.
    public var books: Int
    /// Messages and files the task's log held here (joins not counted).
    public var messages: Int
}

extension Messenger {
    /// Leaves a task on this peer: stops looking for its members and replicating its books,
    /// and deletes its books — journal, the pairwise books this peer writes and those it
    /// reads — from the store in one transaction (PROTOCOL.md §10.3). The other members
    /// are not told: they keep what they hold, and this peer no longer proves the task's
    /// topic, so none of them reads from it or serves it any more. Joining again with the
    /// invite starts afresh, as a vault restored without its store does (its books for the
    /// others fork, and their pre-leave history comes back from them).
    public func leave(_ task: TaskID) async throws -> LeaveResult {
        guard let left = tasks[task] else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        let books = try books(of: task)
        let result = LeaveResult(task: task.hex, title: title(of: task), books: books.count,
                                 messages: try log(of: task).filter(\.kind.isMessage).count)
        // First: nothing the network does from here on finds the task and makes its books
        // again, and no join of it starts a journal that the delete below would take.
        tasks[task] = nil
        leaving.insert(task)
        defer { leaving.remove(task) }
        if let network {
            for (_, book) in books {
                await network.replicator.stopReplicating(book.id)
                self.network?.watchers.removeValue(forKey: book.id)?.cancel()
                bookTopics?.remove(book.id)
            }
            // Read, then written: one access to `network` at a time.
            let started: Set<PeerTask> = self.network?.started.filter { $0.task != task } ?? []
            let acknowledged: Set<PeerTask> = self.network?.acknowledged.filter { $0.task != task } ?? []
            self.network?.started = started
            self.network?.acknowledged = acknowledged
            await network.swarm.leave(left.invite.topic)
            if left.creator != localPeer, !tasks.values.contains(where: { $0.creator == left.creator }) {
                await network.swarm.leavePeer(left.creator)
            }
            // Sessions with the task's members end: their state of the task (book ids sent and
            // acknowledged on this session) is stale now, and a later join must find them
            // running the connection protocol afresh.
            let stillMembers = Set(tasks.keys.flatMap { (try? members(of: $0)) ?? [] })
            for connection in network.connections.values where connection.topics.contains(left.invite.topic) {
                await connection.close()
                // A member of another task too is dialled again at once (it waits for no
                // discovery round), and both sides run the connection protocol of the tasks
                // they still share.
                if stillMembers.contains(connection.remotePeer) { await network.swarm.connect(to: connection.endpoint) }
            }
        }
        do {
            try storage { try store.delete(books.map(\.book.id)) }
        } catch {
            // Nothing was deleted (one transaction): the task is still this vault's, and the
            // network takes it up again.
            tasks[task] = left
            if network != nil { await startTask(task) }
            throw error
        }
        for (_, book) in books {
            logCache[book.id] = nil
            refusedAsForked.remove(book.id)
        }
        markers.forget(task)
        foundTitles[task] = nil
        taskLogs[task] = nil
        self.record("task", "left task \(task.hex): \(books.count) books deleted")
        notify(.changed(task))
        return result
    }
}
