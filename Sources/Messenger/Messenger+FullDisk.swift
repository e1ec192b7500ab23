import Books
import Foundation

/// A messenger whose store could not be written when it opened — a daemon started on a full
/// disk (PROTOCOL.md §10.6) — runs all the same: it serves the books it holds, shows its
/// tasks and logs, and every write fails with the store's `writeRefusal` before anything is
/// written (pages members send are asked for again after a pause, §9.5). Meanwhile:
/// 1. `run` tries to open the store for writing again (`BookStore.resumeWriting`) after
///    `resumeWritingFirst`, then at pauses that double up to `resumeWritingMax`; a request
///    that writes tries first too (`resumeWriting`, from the control server), so a send
///    right after space was freed works;
/// 2. once the store writes, the read markers are saved again, and the connection protocol
///    runs again for the members it failed for (a book for them could not be created);
///    the pages missed come at the replicator's next request, within its pause.
/// No restart: the same store, books, sessions and channels.
extension Messenger {
    /// The first pause before the store is tried for writing again, and the longest:
    /// a disk that had space again a moment later is noticed at once, and one that stays
    /// full costs an attempt to open a connection (milliseconds) every 10 s.
    static let resumeWritingFirst: Duration = .seconds(1)
    static let resumeWritingMax: Duration = .seconds(10)

    /// Why the vault cannot be written now, and what that means (`inspect`); nil when it can.
    var storageProblem: String? {
        guard let refusal = store.writeRefusal else { return nil }
        let until = refusal.code == .diskFull ? "there is space" : "it can be written"
        return refusal.detail + (refusal.file.map { " (\($0))" } ?? "") + "; nothing new can be stored or sent until \(until)"
            + (network != nil ? " (tried again every \(Self.resumeWritingMax.components.seconds) s at most, and at each command that writes)" : "")
    }

    /// Opens a store that could not be written for writing again, if it can be now
    /// (`BookStore.resumeWriting`); then saves the read markers again and runs the
    /// connection protocol where it failed. True when the store writes.
    @discardableResult
    public func resumeWriting() async -> Bool {
        guard let refusal = store.writeRefusal else { return true }
        do {
            guard try store.resumeWriting() else { return false }
        } catch {
            record("error", "cannot open the store for writing again: \(error)")
            return false
        }
        markers.resumeSaving()
        record("storage", "the store can be written again (it could not: \(refusal.detail)): storing and sending as before")
        if let network {
            for (peer, connection) in network.connections {
                for (task, record) in tasks where connection.topics.contains(record.invite.topic) {
                    await runConnectionProtocol(with: peer, task: task)
                }
            }
        }
        return true
    }

    /// Tries `resumeWriting` at growing pauses until the store writes or the task is
    /// cancelled (`run`, while the network is up).
    func resumeWritingWhenPossible() async {
        if let problem = storageProblem { record("storage", problem) }
        var pause = Self.resumeWritingFirst
        while store.writeRefusal != nil && !Task.isCancelled {
            try? await Task.sleep(for: pause)
            if Task.isCancelled { return }
            if await resumeWriting() { return }
            pause = min(pause * 2, Self.resumeWritingMax)
        }
    }
}
