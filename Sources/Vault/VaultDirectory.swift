import Foundation
import Sodium

/// Where a peer keeps its identity, its book store and its lock.
///
/// Resolution order: an explicit path (`--dir`), `BOOKSWARM_DIR`, `$XDG_DATA_HOME/bookswarm`,
/// `~/.local/share/bookswarm` (the XDG base directory default).
public struct VaultDirectory: Sendable, Hashable {
    public let path: String

    public init(path: String) {
        self.path = (path as NSString).standardizingPath
    }

    /// A relative `--dir` or `BOOKSWARM_DIR` is taken from the current directory and made
    /// absolute, so that what the daemon prints (its control socket) and every message
    /// naming the vault say where it is.
    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               currentDirectory: String = FileManager.default.currentDirectoryPath) -> VaultDirectory {
        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : currentDirectory + "/" + path }
        if let explicit, !explicit.isEmpty { return VaultDirectory(path: absolute(explicit)) }
        if let dir = environment["BOOKSWARM_DIR"], !dir.isEmpty { return VaultDirectory(path: absolute(dir)) }
        if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") { return VaultDirectory(path: xdg + "/bookswarm") }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return VaultDirectory(path: home + "/.local/share/bookswarm")
    }

    public var identityFile: String { path + "/identity.key" }
    public var lockFile: String { path + "/lock" }
    public var storeDirectory: String { path + "/store" }
    public var controlSocket: String { path + "/control.sock" }

    /// True when no vault is here: the directory does not exist, or it holds neither an
    /// identity file nor a store. A directory this process cannot look into, or a file in
    /// its place, is not called empty: opening it says what is wrong.
    public var holdsNoVault: Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return errno == ENOENT }
        guard info.st_mode & S_IFMT == S_IFDIR, access(path, X_OK) == 0 else { return false }
        return access(identityFile, F_OK) != 0 && errno == ENOENT && access(storeDirectory, F_OK) != 0 && errno == ENOENT
    }

    /// Creates the directory (mode 0700) if needed and checks that this process can use it.
    /// `readingIfUnwritable`: a directory on a read-only file system will do (`Vault.open`).
    public func prepare(readingIfUnwritable: Bool = false) throws(VaultError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw VaultError(.directoryUnusable, "\(path) is not a directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw VaultError(.directoryUnusable, "cannot create \(path): \(errnoText(errno))")
            }
        }
        guard access(path, R_OK | W_OK | X_OK) == 0 else {
            let reason = errno
            if readingIfUnwritable && reason == EROFS && access(path, R_OK | X_OK) == 0 { return }
            throw VaultError(.directoryUnusable, "cannot use \(path): \(errnoText(reason))")
        }
    }
}
