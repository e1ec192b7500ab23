import Books
import Sodium

/// What `withdraw` did: the file's entry as the log shows it from now on (withdrawn: no
/// name, no caption), and the file as it was, so that its author sees which one it was.
public struct WithdrawResult: Codable, Hashable, Sendable {
    public var entry: LogEntry
    public var file: AttachedFile

    public init(entry: LogEntry, file: AttachedFile) {
        self.entry = entry
        self.file = file
    }
}

/// Withdrawing a file (PROTOCOL.md §10.2, Withdrawn files). Books are append-only and
/// signed, and every member holds copies of them: nothing can be erased from the others'
/// vaults. What the author can do is say, in every book it writes in the task, that it
/// withdraws the file: a `withdraw` page naming the file's id. Every member's log (the
/// author's too) then shows the file's entry in its place without its name and caption,
/// `files` lists it as withdrawn, and `save` refuses it. A copy saved before stays where it
/// was saved, and the file's parts stay in the books, which replicate whole.
extension Messenger {
    /// Withdraws the file of this peer's that `text` names in the task — its id, its exact
    /// name, or the beginning of its id (4 hex digits or more), as `save` takes it, among
    /// this peer's own files — with one `withdraw` page appended to every book this peer
    /// writes in the task, the journal first. Works offline: readers get it by replication,
    /// now or later. Another member's file, or a file withdrawn already, is an error, and
    /// nothing is written.
    @discardableResult
    public func withdraw(_ text: String, in task: TaskID) throws -> WithdrawResult {
        let me = localPeer.publicKey.hex
        let files = try taskLog(of: task).order.entries.filter { $0.kind == .file }
        let entry: LogEntry
        do {
            entry = try Self.resolveFile(text, among: files.filter { $0.author == me })
        } catch {
            // Another member's file, named as `save` would find it, and none of this peer's:
            // said as such rather than as no file at all.
            if let theirs = try? Self.resolveFile(text, among: files), theirs.author != me {
                throw MessengerError(.withdrawn, "file \(theirs.id.prefix(8)) is \(theirs.author.prefix(8))'s: "
                                     + "only its author can withdraw a file")
            }
            throw error
        }
        guard !entry.withdrawn, let file = entry.file else {
            throw MessengerError(.withdrawn, "file \(entry.id.prefix(8)) was withdrawn already: nothing written")
        }
        let page = PageSpec(kind: .withdraw, data: [], fields: ["id": SecureRandom.bytes(12).hexString, "ref": entry.id],
                            time: wallClock())
        guard try appendToBooksWritten([page], in: task) != nil else {
            throw MessengerError(.storage, "the journal of task \(task.hex) is missing")
        }
        notify(.changed(task))
        record("file", "withdrew \(file.name) (file \(entry.id.prefix(8))) from task \(task.hex.prefix(8))")
        var withdrawn = entry
        withdrawn.withdraw()
        return WithdrawResult(entry: withdrawn, file: file)
    }
}
