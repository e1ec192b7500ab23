import Sodium

/// Book names and the key pairs derived from them (PROTOCOL.md §3.7).
public enum BookName {
    /// Longest name accepted, in UTF-8 bytes: long enough for three 64-hex-digit parts.
    public static let maximumLength = 255
    /// The separator between the parts of `${author}-${reader}-${task}`.
    public static let separator: Character = "-"

    /// `${author}-${reader}-${task}` (DESIGN.md, vocabulary): one book per ordered pair of
    /// people in a task. Parts must be non-empty and must not contain the separator, so a
    /// name splits back into its parts unambiguously.
    public static func make(author: String, reader: String, task: String) throws -> String {
        for (what, part) in [("author", author), ("reader", reader), ("task", task)] {
            guard !part.isEmpty, !part.contains(separator) else {
                throw BooksError(.invalidName, "the \(what) part of a book name must be non-empty and without '\(separator)': \"\(part)\"")
            }
        }
        let name = "\(author)\(separator)\(reader)\(separator)\(task)"
        try validate(name)
        return name
    }

    /// The parts of a name made by `make`, or nil when it has not three parts.
    public static func parts(of name: String) -> (author: String, reader: String, task: String)? {
        let parts = name.split(separator: separator, omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        return (String(parts[0]), String(parts[1]), String(parts[2]))
    }

    static func validate(_ name: String) throws {
        let bytes = name.utf8.count
        guard bytes > 0, bytes <= maximumLength else {
            throw BooksError(.invalidName, "a book name must be 1…\(maximumLength) bytes, got \(bytes)", limit: maximumLength)
        }
        // SQLite and C strings end at a NUL: the name stored would not be the name whose
        // key was derived, and the store would then refuse to open (wrong master secret).
        guard !name.utf8.contains(0) else {
            throw BooksError(.invalidName, "a book name cannot contain a NUL character", limit: maximumLength)
        }
    }

    /// "bookswarm/book-key/v1": domain tag of the key derivation.
    static let keyDerivationTag: [UInt8] = Array("bookswarm/book-key/v1".utf8)

    /// The key pair of the book `name` in a store with `masterSecret` (32 bytes):
    /// seed = BLAKE2b-256(key: master secret, tag ‖ 0x00 ‖ UTF-8 name). Deterministic, so
    /// the secret keys are never stored: reopening with the same master secret re-derives
    /// them.
    public static func keyPair(masterSecret: SecretBytes, name: String) throws -> Ed25519.KeyPair {
        guard masterSecret.count == 32 else {
            throw BooksError(.wrongMasterSecret, "the master secret must be 32 bytes, got \(masterSecret.count)", limit: 32)
        }
        try validate(name)
        let seed = SecretBytes(count: Ed25519.seedLength) { out in
            var hasher = BLAKE2b(outputLength: Ed25519.seedLength, key: masterSecret)
            hasher.update(keyDerivationTag)
            hasher.update(byte: 0)
            hasher.update(Array(name.utf8))
            hasher.finalize(into: out)
        }
        return try Ed25519.KeyPair(seed: seed)
    }
}
