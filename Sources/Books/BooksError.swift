import Sodium

/// The one error type of the Books module, compared by code. `file` names the database
/// file when the error concerns it; `limit` carries the limit that was exceeded.
public struct BooksError: CodedError {
    public enum Code: Hashable, Sendable {
        /// A page is larger than `Book.maximumPageSize` (`limit` holds it).
        case pageTooLarge
        /// The book was opened without its secret key (the peer only reads it).
        case readOnly
        /// A signature does not verify, or a signed root belongs to another book.
        case invalidSignature
        /// A proof does not lead to the signed root, or does not fit the request.
        case invalidProof
        /// The proof upgrades from a length other than the reader's verified length
        /// (the reader moved on meanwhile): request it again.
        case staleProof
        /// The author signed two different trees: a `ForkProof` is stored and the book
        /// is refused.
        case forked
        /// An index or range lies beyond what is held or beyond the length.
        case outOfRange
        /// A page or tree node needed to answer is not held (sparse reader).
        case notHeld
        /// The database file is not a database, or is damaged or truncated.
        case corruptDatabase
        /// The database has a schema version newer than this code knows.
        case unsupportedSchemaVersion
        /// The file is an SQLite database but not a book store.
        case notABookStore
        /// Another process (or another `BookStore`) holds the database open.
        case storeLocked
        /// The master secret is not 32 bytes, or does not derive the keys of the
        /// named books in the store.
        case wrongMasterSecret
        /// A book name or name part is empty, too long, or contains a separator.
        case invalidName
        /// No book with this name or id is in the store.
        case unknownBook
        /// The store was closed.
        case closed
        /// The file system holding the store is full (or the user's disk quota is used up):
        /// nothing could be written. `file` names the file SQLite failed to write.
        case diskFull
        /// The store's files cannot be written: a read-only file system or file, or a store
        /// opened for reading only (`BookStore.openForReading`).
        case storageReadOnly
        /// Work that can stop part-way (`BookStore.backup`) was asked to stop; nothing of it
        /// is left.
        case stopped
        /// Any other SQLite failure (an I/O error…).
        case storage
    }

    public let code: Code
    public let detail: String
    /// The database file concerned, if any.
    public let file: String?
    /// The limit that was exceeded, if any.
    public let limit: Int?

    public init(_ code: Code, _ detail: String, file: String? = nil, limit: Int? = nil) {
        self.code = code
        self.detail = detail
        self.file = file
        self.limit = limit
    }

    /// Whether the failure is that the store cannot be written now — the disk is full, or
    /// the files are read-only — so that it could still be read (`BookStore.open`'s
    /// `readingIfUnwritable`).
    public var meansUnwritable: Bool { code == .diskFull || code == .storageReadOnly }

    public var description: String {
        var text = "\(code): \(detail)"
        if let file { text += " (file: \(file))" }
        return text
    }
}
