import Sodium

/// A book's id: the Ed25519 public key of its author's key pair for that book.
public struct BookID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let publicKey: Ed25519.PublicKey

    public init(_ publicKey: Ed25519.PublicKey) { self.publicKey = publicKey }

    /// From the 32 raw bytes of the public key.
    public init(bytes: [UInt8]) throws {
        do {
            publicKey = try Ed25519.PublicKey(bytes: bytes)
        } catch {
            throw BooksError(.unknownBook, "a book id must be \(Ed25519.publicKeyLength) bytes, got \(bytes.count)")
        }
    }

    /// From 64 hex digits.
    public init(hex: String) throws {
        guard let bytes = [UInt8](hex: hex), bytes.count == Ed25519.publicKeyLength else {
            throw BooksError(.unknownBook, "a book id is \(Ed25519.publicKeyLength * 2) hex digits")
        }
        try self.init(bytes: bytes)
    }

    public var bytes: [UInt8] { publicKey.bytes }
    public var hex: String { publicKey.hex }
    public var description: String { hex }

    public static func < (lhs: BookID, rhs: BookID) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }
}
