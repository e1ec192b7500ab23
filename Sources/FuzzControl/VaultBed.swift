import Books
import Foundation
import Messenger
import Sodium
import Swarm

/// The vault the control requests run against, as a daemon has it, offline: a store and a
/// messenger (read markers in a state file) under a directory of this process (removed at
/// exit). It holds a task this peer created ("Fix the roof", two messages, compiled into
/// `compiled:record`, and a file attached, `roof.txt`) and one it joined (fixed ids, one
/// message). `attach` may read and `save` may write only inside `files`, which holds the
/// file to attach and an empty `out` directory to save into.
///
/// A request that may write (`VaultBed.mayWrite`) is followed by `reset()`, which puts the
/// vault back as the template has it, so every input starts from the same state.
final class VaultBed: @unchecked Sendable {
    static let shared = VaultBed()

    static let identity = keyPair(0x11)
    static let masterSecret = SecretBytes(copying: [UInt8](repeating: 0x12, count: 32))
    static let title = "Fix the roof"
    static let fileName = "roof.txt"
    /// A task joined from another peer's invite (its title is in the creator's book, which
    /// this vault does not hold).
    static let joined = InviteCode(creator: PeerID(keyPair(0x22).publicKey), task: TaskID(bytes: [UInt8](repeating: 0x5A, count: TaskID.length))!)
    /// An invite not joined yet.
    static let other = InviteCode(creator: PeerID(keyPair(0x33).publicKey), task: TaskID(bytes: [UInt8](repeating: 0x6B, count: TaskID.length))!)

    static func keyPair(_ byte: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: byte, count: 32)))
    }

    let directory: String
    /// Where `attach` and `save` requests may read and write (`Control.execute`'s `fileRoot`).
    let files: String
    private let template: String
    private let working: String
    private(set) var store: BookStore
    private(set) var messenger: Messenger

    private init() {
        VaultBed.removeStaleDirectories()
        directory = NSTemporaryDirectory() + "fuzz-control-\(getpid())"
        template = (directory as NSString).appendingPathComponent("template")
        working = (directory as NSString).appendingPathComponent("vault")
        files = (directory as NSString).appendingPathComponent("files")
        try? FileManager.default.removeItem(atPath: directory)
        bedDirectory = directory
        atexit { if let path = bedDirectory { try? FileManager.default.removeItem(atPath: path) } }
        do {
            try FileManager.default.createDirectory(atPath: files + "/out", withIntermediateDirectories: true)
            let attached = files + "/" + VaultBed.fileName
            try Data((0..<3000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: attached))
            let (store, messenger) = try VaultBed.open(template)
            VaultBed.wait {
                let created = try await messenger.newTask(title: VaultBed.title)
                let task = try await messenger.resolveTask(created.id)
                try await messenger.send("The roof leaks above the kitchen.", to: task)
                try await messenger.send("Who can help?\nI have a ladder.", to: task)
                try await messenger.attach(try Attachments.read(path: attached), caption: "the leak", to: task)
                _ = try await messenger.compile(task, into: "record")
                _ = try await messenger.join(VaultBed.joined)
                try await messenger.send("hello from the joiner", to: VaultBed.joined.task)
                try await messenger.markRead(task)
            }
            try store.checkpoint()
            store.close()
            (self.store, self.messenger) = try VaultBed.copy(template, to: working)
        } catch {
            fatalError("fuzz-control: cannot set up the vault in \(directory): \(error)")
        }
    }

    /// Puts the vault back as the template has it, and `files` as it was (a `save` may have
    /// written into it).
    func reset() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: files)) ?? [] where entry != VaultBed.fileName {
            try? FileManager.default.removeItem(atPath: files + "/" + entry)
        }
        try? FileManager.default.createDirectory(atPath: files + "/out", withIntermediateDirectories: true)
        store.close()
        do {
            (store, messenger) = try VaultBed.copy(template, to: working)
        } catch {
            fatalError("fuzz-control: cannot reset the vault: \(error)")
        }
    }

    private static func copy(_ template: String, to path: String) throws -> (BookStore, Messenger) {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: template, toPath: path)
        return try open(path)
    }

    private static func open(_ path: String) throws -> (BookStore, Messenger) {
        let store = try BookStore.open(directory: (path as NSString).appendingPathComponent("store"), masterSecret: masterSecret)
        let messenger = try Messenger(identity: identity, store: store,
                                      stateFile: (path as NSString).appendingPathComponent("state.json"),
                                      wallClock: { 1_764_000_000_000 })
        return (store, messenger)
    }

    /// Runs async work from the fuzzer's thread (not one of the pool's) and waits for it.
    static func wait(_ body: @escaping @Sendable () async throws -> Void) {
        let done = DispatchSemaphore(value: 0)
        let failure = Failure()
        Task {
            do { try await body() } catch { failure.error = error }
            done.signal()
        }
        done.wait()
        if let error = failure.error { fatalError("fuzz-control: setting up the vault failed: \(error)") }
    }

    private final class Failure: @unchecked Sendable { var error: (any Error)? }

    /// The directories of earlier runs that crashed (a crash skips the exit handler): those
    /// whose process is gone.
    private static func removeStaleDirectories() {
        Leftovers.remove(in: NSTemporaryDirectory(), prefix: "fuzz-control-")
    }
}

/// Read by the exit handler, which cannot capture.
nonisolated(unsafe) private var bedDirectory: String?
