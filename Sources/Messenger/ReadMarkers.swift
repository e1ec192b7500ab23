import Foundation

/// How many of each task's messages from others this peer has seen: unread = current count
/// minus the marker (messages only ever accumulate, so a count is enough). Kept in
/// `messenger-state.json` beside the store, replaced atomically; losing it only makes old
/// messages count as unread again. `saving: false` (a store opened for reading only, on a
/// full disk or a read-only file system) reads the file and keeps what is marked in memory,
/// writing nothing — until `resumeSaving` (the store writes again).
final class ReadMarkers: @unchecked Sendable {
    private let file: String?
    private var saving: Bool
    private var counts: [String: Int]
    private let lock = NSLock()

    init(file: String?, saving: Bool = true) {
        self.file = file
        self.saving = saving
        if let file, let data = FileManager.default.contents(atPath: file),
           let decoded = try? JSONDecoder().decode([String: Int].self, from: data) {
            // A count below zero is none the vault wrote (a hand edit, damage): no marker,
            // and nothing that could overflow the unread count (`count - marker`).
            counts = decoded.filter { $0.value >= 0 }
        } else {
            counts = [:]
        }
    }

    func seen(_ task: TaskID) -> Int { lock.withLock { counts[task.hex] ?? 0 } }

    /// Forgets a task's marker (the task was left).
    func forget(_ task: TaskID) {
        lock.withLock {
            guard counts.removeValue(forKey: task.hex) != nil else { return }
            save()
        }
    }

    func markSeen(_ task: TaskID, count: Int) {
        lock.withLock {
            guard counts[task.hex] != count else { return }
            counts[task.hex] = count
            save()
        }
    }

    /// Saves from now on, what was marked meanwhile first (the store that could not be
    /// written writes again).
    func resumeSaving() {
        lock.withLock {
            guard !saving else { return }
            saving = true
            save()
        }
    }

    /// Writes the markers; called with the lock held, so two writers' files cannot land in
    /// the other order (an older snapshot replacing a newer one). The file is small.
    private func save() {
        guard saving, let file, let data = try? JSONEncoder().encode(counts) else { return }
        try? data.write(to: URL(fileURLWithPath: file), options: .atomic)
    }
}
