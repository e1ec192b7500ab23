import Books
import Foundation
import Sodium

#if canImport(Glibc)
import Glibc
#endif

/// What `Vault.backup(to:)` wrote.
public struct VaultBackup: Codable, Sendable {
    /// The new vault directory.
    public var path: String
    /// Books in its store.
    public var books: Int
    /// Size of its store file.
    public var bytes: UInt64

    public init(path: String, books: Int, bytes: UInt64) {
        self.path = path
        self.books = books
        self.bytes = bytes
    }
}

extension Vault {
    /// Writes a copy of this vault to `destination`, a new directory: the identity file, the
    /// book store as one consistent snapshot (`BookStore.backup`: appends and replication
    /// go on meanwhile) and the messenger's read markers. The copy is a vault of its own:
    /// `--dir destination` opens it, as the same peer with the same books. It is built in a
    /// hidden directory beside `destination` and renamed into place once complete and
    /// synced, so `destination` never holds half a backup. `destination` must be an absolute
    /// path that does not exist, in an existing directory.
    ///
    /// `stopped` is asked before each step (the hidden directory with the identity, the
    /// store's snapshot, the read markers, the rename): once it says true the backup stops,
    /// removes the hidden directory — it holds the secret key — and throws `.cancelled`. A
    /// daemon's backup stops so when its client goes away (PROTOCOL.md §10.7). It is also
    /// asked between the store snapshot's steps of 4 MiB (`BookStore.backup`), which all read
    /// one snapshot. A vault opened for reading only (a full disk) is backed up the same way:
    /// the backup goes to another file system.
    public func backup(to destination: String, stopped: () -> Bool = { false }) throws(VaultError) -> VaultBackup {
        guard !destination.utf8.contains(0) else {
            throw VaultError(.directoryUnusable, "the backup's destination cannot contain a NUL character")
        }
        guard destination.hasPrefix("/") else {
            throw VaultError(.directoryUnusable, "the backup's destination must be an absolute path (got \(destination))")
        }
        let target = (destination as NSString).standardizingPath
        let parent = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        guard !name.isEmpty, target != "/" else { throw VaultError(.directoryUnusable, "\(destination) is no place for a backup") }
        guard !FileManager.default.fileExists(atPath: target) else {
            throw VaultError(.directoryUnusable, "\(target) exists already: a backup goes into a new directory")
        }
        guard target != directory.path, !target.hasPrefix(directory.path + "/") else {
            throw VaultError(.directoryUnusable, "\(target) is inside the vault \(directory.path): back it up elsewhere")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw VaultError(.directoryUnusable, "\(parent) does not exist: create it first, or choose another place")
        }
        let cancelled = VaultError(.cancelled, "the backup to \(target) was stopped before it was complete: nothing written there")
        func stopIfAsked() throws(VaultError) {
            if stopped() { throw cancelled }
        }
        try stopIfAsked()
        let staging = Self.backupStaging(for: target)
        try? FileManager.default.removeItem(atPath: staging)
        Self.removeAbandonedStagings(in: parent, name: name)
        var complete = false
        defer { if !complete { try? FileManager.default.removeItem(atPath: staging) } }
        let copy = VaultDirectory(path: staging)
        do {
            try FileManager.default.createDirectory(atPath: copy.storeDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            chmod(staging, 0o700)
        } catch {
            throw VaultError(.directoryUnusable, "cannot create \(staging): \(errnoText(errno))")
        }
        // The identity: the same bytes, readable by the owner alone, synced.
        guard var identityBytes = FileManager.default.contents(atPath: directory.identityFile) else {
            throw VaultError(.identityUnreadable, "cannot read \(directory.identityFile): \(errnoText(errno))")
        }
        var secret = [UInt8](identityBytes)
        defer {
            secureZero(&secret)
            identityBytes.resetBytes(in: 0..<identityBytes.count)
        }
        try Self.writeNew(copy.identityFile, secret, mode: 0o600)
        try stopIfAsked()
        let stored: (bytes: UInt64, books: Int)
        do {
            stored = try store.backup(to: copy.storeDirectory + "/" + BookStore.fileName, stopped: stopped)
        } catch let error as BooksError where error.code == .stopped {
            throw cancelled
        } catch let error as BooksError {
            throw VaultError(.storeUnusable, "cannot back up \(store.file): \(error.detail)"
                             + (error.file.map { $0 == store.file ? "" : " (\($0))" } ?? ""))
        } catch {
            throw VaultError(.storeUnusable, "cannot back up \(store.file): \(error)")
        }
        try stopIfAsked()
        // Read markers: replaced whole on every write, so any read of it is consistent.
        if let markers = FileManager.default.contents(atPath: messengerStateFile) {
            try Self.writeNew(staging + "/" + (messengerStateFile as NSString).lastPathComponent, [UInt8](markers), mode: 0o600)
        }
        for path in [copy.storeDirectory, staging] { Self.syncDirectory(path) }
        // The last moment to stop: once renamed, the backup is complete and stays.
        try stopIfAsked()
        guard !FileManager.default.fileExists(atPath: target), rename(staging, target) == 0 else {
            throw VaultError(.directoryUnusable, "cannot move the backup to \(target): "
                             + (FileManager.default.fileExists(atPath: target) ? "it exists now" : errnoText(errno)))
        }
        complete = true
        Self.syncDirectory(parent)
        return VaultBackup(path: target, books: stored.books, bytes: stored.bytes)
    }

    /// The hidden directory in which this process builds a backup to `destination`.
    public static func backupStaging(for destination: String, pid: Int32 = getpid()) -> String {
        let target = (destination as NSString).standardizingPath
        return (target as NSString).deletingLastPathComponent + "/.\((target as NSString).lastPathComponent).partial-\(pid)"
    }

    /// Removes the staging directories of backups to `parent/name` whose process is gone (a
    /// backup killed half-way): each holds part of a vault, its secret key included.
    private static func removeAbandonedStagings(in parent: String, name: String) {
        Leftovers.remove(in: parent, prefix: ".\(name).partial-")
    }

    /// Creates `file` (which must not exist) with `bytes`, synced.
    private static func writeNew(_ file: String, _ bytes: [UInt8], mode: mode_t) throws(VaultError) {
        let fd = Glibc.open(file, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw VaultError(.directoryUnusable, "cannot create \(file): \(errnoText(errno))") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        Glibc.close(fd)
        guard written == bytes.count, synced == 0 else {
            throw VaultError(.directoryUnusable, "cannot write \(file): \(errnoText(errno))")
        }
    }

    private static func syncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        fsync(fd)
        Glibc.close(fd)
    }
}
