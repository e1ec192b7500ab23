import Sodium

/// The one error type of the Messenger module: each reads as a one-line message for the
/// person at the keyboard, compared by code.
public struct MessengerError: CodedError {
    public enum Code: Hashable, Sendable {
        /// No task matches what the person typed.
        case unknownTask
        /// Several tasks match a prefix.
        case ambiguousTask
        /// The invite code does not parse (typo, truncation, wrong checksum).
        case invalidInvite
        /// An empty message, or one over the page limit.
        case invalidMessage
        /// The task is already in this vault (joining twice, or joining one's own).
        case alreadyMember
        /// A compiled book's name is taken by another kind of book.
        case invalidName
        /// The store failed underneath (a `BooksError`, described).
        case storage
        /// The network is not running in this process.
        case offline
        /// A file cannot be attached (unreadable, too large, a name no file may have), or
        /// saved where asked (an existing file, no such directory).
        case invalidFile
        /// No file of the task matches what the person typed, or several do.
        case unknownFile
        /// The file is not here whole yet, or its bytes do not match its hash: not written.
        case fileUnavailable
        /// No member of the task matches what the person typed, or several do; or a member
        /// cannot be left out (this peer itself).
        case unknownMember
        /// Work that was asked to stop stopped (a save whose client went away).
        case cancelled
        /// The task was moved on already (by this peer, or it followed a member there) to a
        /// successor still in this vault: act on the successor instead.
        case movedOn
        /// The file was withdrawn by its author: it is not written out (`save`), nor withdrawn
        /// again; or it is another member's, which only they can withdraw.
        case withdrawn
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
