import Foundation
import Sodium

/// Exactly one process at a time owns a vault directory: the daemon, or a command that runs
/// without one. An exclusive `flock` on `lock` says who; the kernel releases it when the
/// owner exits however it exits (kill -9 included), so a crash never leaves a stale lock.
/// The file holds the owner's pid, for the error message of the next comer.
public final class VaultLock: @unchecked Sendable {
    private let fd: Int32
    public let path: String

    /// `readingIfUnwritable`: on a read-only file system, the lock file is opened read-only
    /// (`flock` needs no write access) and keeps the holder it names (`Vault.open`).
    public static func acquire(_ directory: VaultDirectory, role: String, readingIfUnwritable: Bool = false) throws(VaultError) -> VaultLock {
        let path = directory.lockFile
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        let writable = fd >= 0
        if !writable && errno == EROFS && readingIfUnwritable { fd = open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else {
            throw VaultError(.directoryUnusable, "cannot open \(path): \(errnoText(errno))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let (holder, isDaemon) = Self.describeHolder(fd)
            close(fd)
            // Beside a daemon, commands talk to it: only a second daemon meets its lock. Beside
            // any other holder (a chat, a log --follow or a join without a daemon), the way to
            // use the vault from several commands at once is a daemon — started once that
            // holder has stopped (while it runs, the daemon meets its lock too).
            let advice = isDaemon || role == "daemon" ? "stop it first or use another --dir"
                : "stop it first (then `bookswarm daemon` lets several commands use the vault at once)"
            throw VaultError(.locked, "\(directory.path) is in use by \(holder); \(advice)")
        }
        if writable {
            let text = Array("\(getpid()) \(role)\n".utf8)
            _ = ftruncate(fd, 0)
            _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        return VaultLock(fd: fd, path: path)
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// "a bookswarm chat (pid 4242)", and whether that is a daemon.
    private static func describeHolder(_ fd: Int32) -> (String, isDaemon: Bool) {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let text = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : ""
        let parts = text.split(whereSeparator: \.isNewline).first?.split(separator: " ", maxSplits: 1) ?? []
        guard parts.count == 2 else { return ("another bookswarm process", false) }
        return ("a bookswarm \(parts[1]) (pid \(parts[0]))", parts[1] == "daemon")
    }

    /// Whether the vault's lock names a daemon as its holder (it writes that right after it
    /// takes the lock, well before its control socket answers). False when no lock file
    /// can be read or it names another command.
    public static func heldByDaemon(_ directory: VaultDirectory) -> Bool {
        let fd = open(directory.lockFile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return describeHolder(fd).isDaemon
    }

    /// Releases the lock (also released when the process exits).
    public func release() {
        flock(fd, LOCK_UN)
    }

    deinit {
        close(fd)
    }
}
