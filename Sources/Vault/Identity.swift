import Books
import Foundation
import Sodium

/// The peer's identity secret: a 32-byte Ed25519 seed in `identity.key`, mode 0600.
///
/// Everything secret derives from it: the peer's key pair (its id and, converted, its Noise
/// static key) and the book store's master secret (keyed BLAKE2b with a domain tag), so a
/// vault restored from this one file recovers every book key it ever had.
///
/// File format (PROTOCOL.md §10): the line `bookswarm-identity-v1`, a newline, 64 hex digits
/// of the seed, a newline. Text, so that a person can back it up by copy and paste.
public struct Identity: Sendable {
    public let keyPair: Ed25519.KeyPair
    /// The book store's master secret, derived from the seed.
    public let masterSecret: SecretBytes

    static let header = "bookswarm-identity-v1"
    static let masterSecretKey = Array("bookswarm/vault/master-secret/v1".utf8)

    public init(seed: SecretBytes) throws {
        keyPair = try Ed25519.KeyPair(seed: seed)
        masterSecret = seed.withUnsafeBytes { s in
            SecretBytes(count: 32) { out in
                var h = BLAKE2b(outputLength: 32, key: Identity.masterSecretKey)
                h.update(s)
                h.finalize(into: out)
            }
        }
    }

    /// Loads the identity of `directory`, creating it on first use. Refuses a file that
    /// others can read, or one that is not an identity file, naming the file.
    public static func loadOrCreate(in directory: VaultDirectory) throws(VaultError) -> Identity {
        let file = directory.identityFile
        if FileManager.default.fileExists(atPath: file) {
            return try load(file)
        }
        // A vault with a store but no key lost its key: a new one would not open that store
        // (its books belong to the old identity), so say what happened instead.
        if FileManager.default.fileExists(atPath: directory.storeDirectory + "/" + BookStore.fileName) {
            throw VaultError(.identityUnreadable,
                             "\(file) is missing, but this vault has a store of books written by it: restore identity.key from your backup")
        }
        let seed = SecretBytes(randomCount: 32)
        var text = Array((header + "\n" + seed.withUnsafeBytes { Array($0) }.hexString + "\n").utf8)
        defer { secureZero(&text) }
        // O_EXCL: if another process creates the file at the same moment, load theirs.
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { return try load(file) }
            throw VaultError(.identityUnreadable, "cannot create \(file): \(errnoText(errno))")
        }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == text.count, synced == 0 else {
            unlink(file)
            throw VaultError(.identityUnreadable, "cannot write \(file): \(errnoText(errno))")
        }
        do { return try Identity(seed: seed) } catch {
            throw VaultError(.identityCorrupt, "\(file): \(error)")
        }
    }

    static func load(_ file: String) throws(VaultError) -> Identity {
        var info = stat()
        guard stat(file, &info) == 0 else {
            throw VaultError(.identityUnreadable, "cannot read \(file): \(errnoText(errno))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw VaultError(.identityUnreadable, "\(file) is not a file (a directory or something else is in its place)")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw VaultError(.identityTooOpen, String(format: "%@ is readable by others (mode %o); run: chmod 600 %@",
                                                      file, info.st_mode & 0o777, file))
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw VaultError(.identityUnreadable, "cannot read \(file): \(errnoText(errno))")
        }
        var bytes = [UInt8](data)
        defer { secureZero(&bytes) }
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard lines.count >= 2, Array(lines[0]) == Array(header.utf8),
              lines[1].count == 64, var seedBytes = [UInt8](hex: String(decoding: lines[1], as: UTF8.self)) else {
            throw VaultError(.identityCorrupt, "\(file) is not a Bookswarm identity file (expected \"\(header)\" and 64 hex digits)")
        }
        defer { secureZero(&seedBytes) }
        do { return try Identity(seed: SecretBytes(copying: seedBytes)) } catch {
            throw VaultError(.identityCorrupt, "\(file): \(error)")
        }
    }
}
