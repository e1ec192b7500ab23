import Books
import Foundation
import Sodium
import Swarm

/// One peer's DB and IO (DESIGN "vault"): the directory, its lock, the identity, the book
/// store — and, when asked, the network (`VaultNetwork`).
///
/// Opening takes the directory's lock first, so exactly one process at a time works on a
/// vault; a second one gets a one-line error naming the holder. Nothing here writes
/// anything a failed open could damage: the identity file is created only if absent, and
/// a store that does not open is left as it is.
public final class Vault: Sendable {
    public let directory: VaultDirectory
    public let identity: Identity
    public let store: BookStore
    private let lock: VaultLock

    public var peer: PeerID { PeerID(identity.keyPair.publicKey) }

    /// Where the messenger keeps read markers.
    public var messengerStateFile: String { directory.path + "/messenger-state.json" }

    /// Opens the vault in `directory`, creating it on first use. `role` names this process
    /// in the lock file ("daemon", "send", …) for the error the next comer gets.
    ///
    /// `readingIfUnwritable`, for a caller that only reads: when the vault cannot be
    /// written — its disk is full, or its file system is read-only — open it for reading
    /// only rather than fail (`BookStore.open(…readingIfUnwritable:)`); `store.writeRefusal`
    /// then says why, and neither the store nor a messenger on it writes anything (the
    /// lock file keeps the pid it is given, but on a read-only file system, where it keeps
    /// the one it holds). Whenever the vault can be written, it opens exactly as without it.
    ///
    /// `readingIfFull`, for a daemon: the same when the disk is full, and only then; the
    /// store then writes again through `BookStore.resumeWriting` once there is space. A
    /// read-only file system (which no free space mends, and where the daemon's control
    /// socket cannot be made) fails as without it.
    public static func open(_ directory: VaultDirectory, role: String, readingIfUnwritable: Bool = false,
                            readingIfFull: Bool = false) throws(VaultError) -> Vault {
        try directory.prepare(readingIfUnwritable: readingIfUnwritable)
        let lock = try VaultLock.acquire(directory, role: role, readingIfUnwritable: readingIfUnwritable)
        let identity = try Identity.loadOrCreate(in: directory)
        let store: BookStore
        do {
            store = try BookStore.open(directory: directory.storeDirectory, masterSecret: identity.masterSecret,
                                       readingIfUnwritable: readingIfUnwritable || readingIfFull)
            if !readingIfUnwritable, let refusal = store.writeRefusal, refusal.code != .diskFull {
                store.close()
                throw refusal
            }
        } catch let error as BooksError {
            lock.release()
            let code: VaultError.Code = error.meansUnwritable ? .storeUnwritable : .storeUnusable
            throw VaultError(code, Self.describe(error, directory: directory, readingTried: readingIfUnwritable))
        } catch {
            lock.release()
            throw VaultError(.storeUnusable, "cannot open the store in \(directory.storeDirectory): \(error)")
        }
        return Vault(directory: directory, identity: identity, store: store, lock: lock)
    }

    private init(directory: VaultDirectory, identity: Identity, store: BookStore, lock: VaultLock) {
        self.directory = directory
        self.identity = identity
        self.store = store
        self.lock = lock
    }

    /// Closes the store and releases the lock.
    public func close() {
        store.close()
        lock.release()
    }

    /// `readingTried`: whether opening for reading only was tried too (and failed, since
    /// this describes a failure), so that it is not offered.
    static func describe(_ error: BooksError, directory: VaultDirectory, readingTried: Bool = false) -> String {
        let file = error.file ?? directory.storeDirectory
        switch error.code {
        case .corruptDatabase, .notABookStore:
            return "the store \(file) is damaged (\(error.detail)); it was left untouched"
        case .unsupportedSchemaVersion:
            return "the store \(file) was written by a newer Bookswarm (\(error.detail)); it was left untouched"
        case .wrongMasterSecret:
            return "the store \(file) belongs to another identity than \(directory.identityFile)"
        case .storeLocked:
            return "the store \(file) is open in another process"
        case .diskFull, .storageReadOnly:
            // "the disk is full: SQLite error 4874, disk I/O error (…/books.sqlite); …"
            let mend = error.code == .diskFull ? "free some space to write again" : "make its file system or files writable to write again"
            return "\(error.detail) (\(file)); nothing was changed: \(mend)" + (readingTried ? "" : " (commands that only read still work)")
        case .pageTooLarge, .readOnly, .invalidSignature, .invalidProof, .staleProof, .forked, .outOfRange, .notHeld,
             .invalidName, .unknownBook, .closed, .stopped, .storage:
            return "cannot open the store \(file): \(error.detail)"
        }
    }
}
