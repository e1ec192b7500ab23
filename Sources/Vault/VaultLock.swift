import Foundation
import Sodium

/// Exactly one process at a time owns a vault directory: the daemon, or a command that runs
/// without one. An exclusive `flock` on `lock` says who; the kernel releases it when the
/// owner exits however it exits (kill -9 included), so a crash never leaves a stale lock.
/// The file holds the owner's pid, for the error message of the next comer.
public final class VaultLock: @unchecked Sendable {
    private let fd: Int32
    public let path: String

    public static func acquire(_ directory: VaultDirectory, role: String) throws(VaultError) -> VaultLock {
        let path = directory.lockFile
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw VaultError(.directoryUnusable, "cannot open \(path): \(errnoText(errno))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.describeHolder(fd)
            close(fd)
            throw VaultError(.locked, "\(directory.path) is in use by \(holder); stop it first or use another --dir")
        }
        let text = Array("\(getpid()) \(role)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return VaultLock(fd: fd, path: path)
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    private static func describeHolder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let parts = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self).split(whereSeparator: \.isWhitespace) : []
        guard parts.count >= 2 else { return "another bookswarm process" }
        return "a bookswarm \(parts[1]) (pid \(parts[0]))"
    }

    /// Releases the lock (also released when the process exits).
    public func release() {
        flock(fd, LOCK_UN)
    }

    deinit {
        close(fd)
    }
}
