import Foundation
import Messenger

/// What the messenger's refusals leave a person to work out, said in the control layer
/// (which both the daemon and a command without one go through): the ids of the tasks a
/// title names, the join an invite code asks for, sizes and paths as a person reads them.
extension Control {
    /// The characters of a bsw1 invite code after its `bsw1-`, without the dashes: its 53
    /// bytes (version, creator, task, checksum) in base32. `CLIUsageTests` checks a real
    /// code against it.
    static let inviteCharacters = 85

    /// `Messenger.resolveTask`, whose refusals say more here: the ids of the tasks one title
    /// names (`2 tasks are titled "X"; use the id: 0e6f2a85 or 1ccfde7a`), and, for an invite
    /// code of a task not joined here, how to join it.
    public static func resolveTask(_ text: String, in messenger: Messenger) async throws -> TaskID {
        let typed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try await messenger.resolveTask(text)
        } catch let error as MessengerError where error.code == .unknownTask && typed.lowercased().hasPrefix("bsw1") {
            throw MessengerError(.unknownTask, "unknown task \"\(typed)\" (to join it: bookswarm join CODE)")
        } catch let error as MessengerError where error.code == .ambiguousTask {
            // The messenger's rule for a whole title (`resolveTask`): the tasks titled so, but
            // those moved on to another of them. Its message names only their number: where
            // the number here is the same, their ids are added; else it stands as it is.
            let titled = try await messenger.summaries().filter { $0.title == typed }
            let ids = Set(titled.map(\.id))
            let current = titled.filter { $0.successor.map { !ids.contains($0) } ?? true }
            let candidates = current.isEmpty ? titled : current
            guard candidates.count > 1, error.message == "\(candidates.count) tasks are titled \"\(typed)\"; use the id" else { throw error }
            let shown = candidates.map { String($0.id.prefix(8)) }.sorted()
            throw MessengerError(.ambiguousTask, error.message + ": " + shown.dropLast().joined(separator: ", ") + " or " + shown.last!)
        }
    }

    /// A wrong length said in characters, which a person can count, not in the bytes they
    /// decode to.
    static func inviteLengthMessage(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let body = trimmed.dropFirst(4).filter { !"- \t\r\n".contains($0) }
        let missing = body.count < inviteCharacters
        return "invalid invite code: it has \(counted(body.count, "character")) after bsw1- instead of \(inviteCharacters): "
            + "part of it is \(missing ? "missing" : "repeated")"
    }

    /// An attachment over the limit, refused before it is read: its size as a person reads
    /// it (`is 65.0 MiB; files of at most 64 MiB can be attached`).
    static func refuseOversizedAttachment(_ path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_size > Attachments.maxSize else { return }
        let limit = Attachments.maxSize / (1024 * 1024)
        var size = String(format: "%.1f MiB", Double(status.st_size) / (1024 * 1024))
        // Just over the limit, rounded, would read as the limit itself.
        if size == String(format: "%.1f MiB", Double(limit)) { size = "\(limit) MiB and \(counted(Int(status.st_size) - Attachments.maxSize, "byte"))" }
        throw MessengerError(.invalidFile, "\(path) is \(size); files of at most \(limit) MiB can be attached")
    }

    /// A destination written as a directory (`…/sub/`) that is not one, refused before the
    /// file is looked for: it does not exist, or is a file.
    static func refuseMissingDirectory(_ path: String) throws {
        guard path.hasSuffix("/") else { return }
        let target = (path as NSString).standardizingPath
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) {
            throw MessengerError(.invalidFile, "\(target)/ does not exist: create it first, or choose another destination")
        }
        if !isDirectory.boolValue {
            throw MessengerError(.invalidFile, "\(target) is not a directory: choose another destination")
        }
    }
}
