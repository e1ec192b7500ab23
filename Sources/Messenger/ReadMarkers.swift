import Foundation

/// How many of each task's messages from others this peer has seen: unread = current count
/// minus the marker (messages only ever accumulate, so a count is enough). Kept in
/// `messenger-state.json` beside the store, replaced atomically; losing it only makes old
/// messages count as unread again.
final class ReadMarkers: @unchecked Sendable {
    private let file: String?
    private var counts: [String: Int]
    private let lock = NSLock()

    init(file: String?) {
        self.file = file
        if let file, let data = FileManager.default.contents(atPath: file),
           let decoded = try? JSONDecoder().decode([String: Int].self, from: data) {
            counts = decoded
        } else {
            counts = [:]
        }
    }

    func seen(_ task: TaskID) -> Int { lock.withLock { counts[task.hex] ?? 0 } }

    /// Forgets a task's marker (the task was left).
    func forget(_ task: TaskID) {
        let snapshot: [String: Int]? = lock.withLock { counts.removeValue(forKey: task.hex).map { _ in counts } }
        guard let snapshot, let file, let data = try? JSONEncoder().encode(snapshot) else { return }
        try? data.write(to: URL(fileURLWithPath: file), options: .atomic)
    }

    func markSeen(_ task: TaskID, count: Int) {
        let snapshot: [String: Int]? = lock.withLock {
            guard counts[task.hex] != count else { return nil }
            counts[task.hex] = count
            return counts
        }
        guard let snapshot, let file, let data = try? JSONEncoder().encode(snapshot) else { return }
        try? data.write(to: URL(fileURLWithPath: file), options: .atomic)
    }
}
