import Sodium

/// The one error type of the Vault module. Every case reads as a one-line message for a
/// person, naming the file or directory concerned.
public struct VaultError: CodedError {
    public enum Code: Hashable, Sendable {
        case directoryUnusable
        case identityUnreadable
        case identityCorrupt
        case identityTooOpen
        case locked
        /// Work that was asked to stop stopped (a backup whose client went away).
        case cancelled
        /// The book store cannot be opened (damaged, newer schema, wrong identity).
        case storeUnusable
        /// The book store cannot be written — the disk is full, or its file system or files
        /// are read-only — and was not opened: a caller that only reads may open it for
        /// reading (`Vault.open`'s `readingIfUnwritable`).
        case storeUnwritable
        /// Sockets or interfaces for the network cannot be set up.
        case network
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
