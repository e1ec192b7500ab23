import Books
import Foundation
import Swarm

/// Devtools: what this peer holds and sees, to catch an error quickly.
extension Messenger {
    /// Books, sessions, tasks, recent events and refusals. `verify` re-checks every book
    /// from the disk up (`Book.verify()`); without it a book counts as verified when its
    /// latest signed root verifies (checked at open and before any page is stored) and it
    /// has no fork — or its fork is one a later generation of its pair replaced (§10.3),
    /// which is then named in `problem` beside `verified`.
    public func inspect(verify: Bool = false, drops: [String: UInt64] = [:]) async throws -> InspectReport {
        var books: [BookReport] = []
        let entries = try storage { try store.list() }
        // The newest generation held of each pair (PROTOCOL.md §10.3).
        var newest: [TaskBookName: UInt32] = [:]
        for name in entries.compactMap({ $0.name.flatMap(TaskBookName.init(parsing:)) }) where !name.isJournal {
            newest[name.generation(0)] = max(newest[name.generation(0)] ?? 0, name.generation)
        }
        for entry in entries {
            let book = try storage { try store.open(id: entry.id) }
            var problem: String?
            // A forked generation that a later one of its pair replaced is what a vault
            // restored from its key alone leaves behind (§10.3): handled, not a failure. Its
            // held pages are checked like any book's; the fork is named as a note.
            var note: String?
            if entry.isForked {
                if let name = entry.name.flatMap(TaskBookName.init(parsing:)), !name.isJournal,
                   let later = newest[name.generation(0)], later > name.generation {
                    // Expected after a lost store, or a task left and joined again: said as
                    // what happened, not as an alarm ("signed two different trees").
                    let who = entry.isWritable ? "this vault" : "its author"
                    note = "an earlier generation, written again from page 0 when \(who) had lost its books "
                        + "(a store restored, or the task left and joined again); generation \(later) of the pair replaced it"
                        + (entry.isWritable ? "" : ", and the pages held here stay readable")
                } else {
                    problem = entry.isWritable
                        ? "forked: its key signed pages this store does not hold (the store lost or restored from an older copy, or the key used elsewhere)"
                        : "forked: the author signed two different trees"
                }
            }
            if problem == nil, let root = book.signedRoot, !root.isValid { problem = "latest signed root does not verify" }
            if verify, problem == nil {
                do { try book.verify() } catch let error as BooksError { problem = error.detail } catch { problem = "\(error)" }
            }
            let verified = problem == nil
            if verified, let note { problem = note }
            var peers: [String: UInt64] = [:]
            if let network, let progress = try? network.replicator.progress(of: entry.id) {
                for (peer, length) in progress.peers { peers[peer.publicKey.hex] = length }
            }
            books.append(BookReport(name: entry.name, id: entry.id.hex, role: entry.isWritable ? "author" : "reader",
                                    length: entry.length, held: book.heldRanges().count, verified: verified,
                                    problem: problem, peers: peers))
        }
        var sessions: [SessionReport] = []
        var endpoint: String?
        var drops = drops
        if let network {
            endpoint = network.swarm.transport.localEndpoint.description
            let now = network.clock.now()
            for stats in await network.swarm.allSessionStats {
                sessions.append(SessionReport(
                    peer: stats.peer.publicKey.hex, path: network.describePath(stats.endpoint), established: stats.isEstablished,
                    rttMilliseconds: stats.roundTripTime.map { Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1000 },
                    lastSeenSecondsAgo: Double((now - stats.lastReceived).components.seconds)
                        + Double((now - stats.lastReceived).components.attoseconds) / 1e18,
                    packetsSent: stats.packetsSent, packetsReceived: stats.packetsReceived))
            }
            let counters = await network.swarm.dropCounters
            for reason in DropReason.allCases where counters[reason] > 0 { drops["session." + reason.rawValue] = counters[reason] }
        }
        return InspectReport(peer: localPeer.publicKey.hex, online: network != nil, endpoint: endpoint, books: books,
                             sessions: sessions.sorted { $0.peer < $1.peer }, tasks: try summaries(),
                             events: recentEvents, refusals: refusals, drops: drops, storage: storageProblem)
    }
}
