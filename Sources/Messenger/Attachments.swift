import Foundation
import Sodium

/// A file attached to a task, as its `file` page describes it (PROTOCOL.md §10.2, Files):
/// the entry's `file` in JSON (§10.7).
public struct AttachedFile: Codable, Hashable, Sendable {
    /// The file's name as its author gave it (§10.2's rules: no path separators or controls).
    public var name: String
    /// Its length in bytes.
    public var size: UInt64
    /// How many `chunk` pages carry its bytes.
    public var parts: UInt64
    /// BLAKE2b-256 of its bytes, 64 lower-case hex digits.
    public var hash: String

    public init(name: String, size: UInt64, parts: UInt64, hash: String) {
        self.name = name
        self.size = size
        self.parts = parts
        self.hash = hash
    }
}

/// The rules and limits of attached files (PROTOCOL.md §10.2, Files; §10.7 `attach`).
public enum Attachments {
    /// The largest file `attach` takes: 64 MiB. It goes into the author's journal and n − 1
    /// pairwise books, and every store keeps its bytes once (PROTOCOL.md §4.9).
    public static let maxSize = 64 * 1024 * 1024

    /// `PATH is 65.0 MiB; files of at most 64 MiB can be attached` (just over the limit, the
    /// bytes over it: rounded, it would read as the limit itself).
    static func tooLargeMessage(_ subject: String, size: Int) -> String {
        let limit = maxSize >> 20
        var shown = String(format: "%.1f MiB", Double(size) / Double(1 << 20))
        if shown == String(format: "%.1f MiB", Double(limit)) {
            shown = "\(limit) MiB and \(size - maxSize) byte\(size - maxSize == 1 ? "" : "s")"
        }
        return "\(subject) is \(shown); files of at most \(limit) MiB can be attached"
    }
    /// The writer's part size: 256 KiB, so a page stays far below the store's page limit and
    /// one replication request (256 KiB) carries about one part.
    public static let partSize = 256 * 1024
    /// A file name's longest, in UTF-8 bytes (a Linux file name's limit).
    public static let maxNameBytes = 255
    /// A caption's longest, in UTF-8 bytes (the same as a message's).
    public static let maxCaptionBytes = 64 * 1024
    /// Numbers in meta (`part`, `parts`, `size`) stay exact in JSON.
    static let maxNumber: UInt64 = (1 << 53) - 1

    /// Whether `name` may name a file (§10.2): 1…255 bytes of UTF-8, no `/` or `\`, not `.`
    /// or `..`, no C0 or C1 control, DEL, or bidirectional mark, embedding, override or
    /// isolate (what a terminal would act on: `TerminalText.acts`).
    public static func isValidName(_ name: String) -> Bool {
        let count = name.utf8.count
        guard count >= 1, count <= maxNameBytes, name != ".", name != ".." else { return false }
        return name.unicodeScalars.allSatisfy { $0 != "/" && $0 != "\\" && !TerminalText.acts($0) }
    }

    /// A meta number (§10.2): decimal digits without leading zeros, at most 2^53 − 1.
    static func number(_ text: String?) -> UInt64? {
        guard let text, !text.isEmpty, text.utf8.count <= 16, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              text == "0" || text.utf8.first != 0x30, let value = UInt64(text), value <= maxNumber else { return nil }
        return value
    }

    /// `count` lower-case hex digits.
    static func isHex(_ text: String?, count: Int) -> Bool {
        guard let text, text.utf8.count == count else { return false }
        return text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// What a `file` page says, or nil when it is malformed (§10.2): its id, the file, and the
    /// caption.
    static func manifest(of page: MessengerPage) -> (id: String, file: AttachedFile, caption: String)? {
        let fields = page.meta.fields
        guard case .file = page.kind, let caption = String(validating: page.data, as: UTF8.self),
              let id = fields["id"], isHex(id, count: 24), let hash = fields["hash"], isHex(hash, count: 64),
              let name = fields["name"], isValidName(name),
              let size = number(fields["size"]), let parts = number(fields["parts"]),
              (parts == 0) == (size == 0), parts <= size else { return nil }
        return (id, AttachedFile(name: name, size: size, parts: parts, hash: hash), caption)
    }

    /// What a `chunk` page says, or nil when it is malformed (§10.2): its file's id and its
    /// part's number.
    static func chunk(of page: MessengerPage) -> (id: String, part: UInt64)? {
        guard case .chunk = page.kind, !page.data.isEmpty, let id = page.meta.fields["id"], isHex(id, count: 24),
              let part = number(page.meta.fields["part"]) else { return nil }
        return (id, part)
    }

    /// BLAKE2b-256 of `bytes`, in hex (the `hash` of §10.2).
    public static func hash(_ bytes: [UInt8]) -> String { BLAKE2b.hash(bytes, outputLength: 32).hexString }

    /// A file opened to attach (`Attachments.read`): its name, and its size and hash as read
    /// to its end once, with each part's hash. `Messenger.attach` reads the parts again, one
    /// at a time, as each book's batch stores them, and takes only the bytes hashed here
    /// (`PartReader`): the file is never whole in memory.
    public struct Source: Sendable {
        public var name: String
        /// The path it was opened by, for messages.
        public let path: String
        /// Its length in bytes, as read to its end.
        public let size: Int
        /// BLAKE2b-256 of its bytes as read, in hex (`Attachments.hash`).
        public let hash: String
        /// The open file; closed when the last copy of the source is gone.
        let file: OpenFile
        /// Its length and modification time when it was opened, before it was read.
        let opened: OpenFile.Version
        /// BLAKE2b-256 of each part as read, 32 bytes each, in order: 8 KiB at most.
        let partHashes: [UInt8]
        /// Called after part `k` was read again from the file, for any book (tests change the
        /// file there).
        var afterPart: (@Sendable (Int) -> Void)?
    }

    /// Opens the file at the absolute `path` to attach it: a regular file of at most
    /// `maxSize` bytes, named `name` (nil or empty: the path's last component), which must
    /// be a valid name. Reads it to its end once, a part at a time, for its size, its hash
    /// and its parts' hashes (a file that grows past `maxSize` meanwhile is refused). Blocking I/O of up to the file's
    /// size: call it off the cooperative pool for a large file.
    public static func read(path: String, name: String? = nil) throws -> Source {
        guard path.hasPrefix("/") else {
            throw MessengerError(.invalidFile, "the file to attach must be given by an absolute path (got \(path))")
        }
        let chosen = (name?.isEmpty ?? true) ? (path as NSString).lastPathComponent : name!
        guard isValidName(chosen) else {
            throw MessengerError(.invalidFile, "\"\(chosen)\" cannot name an attached file: a name is 1…\(maxNameBytes) bytes without "
                                 + "/, \\ or control characters, and not . or .. (choose another with --name)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MessengerError(.invalidFile, "cannot read \(path): \(errnoText(errno))") }
        let file = OpenFile(descriptor: fd)
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw MessengerError(.invalidFile, "cannot read \(path): \(errnoText(errno))") }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw MessengerError(.invalidFile, "\(path) is \((status.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "not a regular file"): only a file can be attached")
        }
        let tooLarge = { (size: Int) in MessengerError(.invalidFile, tooLargeMessage(path, size: size)) }
        guard status.st_size <= maxSize else { throw tooLarge(Int(status.st_size)) }
        // To the end (a file that grows meanwhile is read as far as the limit allows), one
        // part in memory at a time: each read fills the buffer but at the file's end.
        var hasher = BLAKE2b(outputLength: 32)
        var partHashes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: partSize)
        var size = 0
        while true {
            let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: size, path: path) }
            guard count > 0 else { break }
            size += count
            guard size <= maxSize else { throw tooLarge(size) }
            buffer.withUnsafeBytes { bytes in
                let part = UnsafeRawBufferPointer(rebasing: bytes[..<count])
                hasher.update(part)
                partHashes += BLAKE2b.hash(part, outputLength: 32)
            }
        }
        return Source(name: chosen, path: path, size: size, hash: hasher.finalize().hexString, file: file,
                      opened: OpenFile.Version(status), partHashes: partHashes)
    }

    /// A file descriptor open for reading, closed with its last reference.
    final class OpenFile: Sendable {
        let descriptor: Int32

        init(descriptor: Int32) { self.descriptor = descriptor }

        deinit { close(descriptor) }

        /// What a write to a file changes whatever it writes: its length and its modification
        /// time (`fstat`).
        struct Version: Equatable, Sendable {
            var size: Int
            var seconds: Int
            var nanoseconds: Int

            init(_ status: stat) {
                size = Int(status.st_size)
                seconds = Int(status.st_mtim.tv_sec)
                nanoseconds = Int(status.st_mtim.tv_nsec)
            }
        }

        /// The file's version now.
        func version(path: String) throws -> Version {
            var status = stat()
            guard fstat(descriptor, &status) == 0 else { throw MessengerError(.invalidFile, "cannot read \(path): \(errnoText(errno))") }
            return Version(status)
        }

        /// Fills `buffer` from `offset` on, as far as the file goes: returns the bytes read,
        /// fewer than the buffer holds only at the file's end.
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws -> Int {
            var count = 0
            while count < buffer.count {
                let n = pread(descriptor, buffer.baseAddress! + count, buffer.count - count, off_t(offset + count))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw MessengerError(.invalidFile, "cannot read \(path): \(errnoText(errno))") }
                if n == 0 { break }
                count += n
            }
            return count
        }
    }

    /// A source's parts, read again from its file as each book's batch stores them and
    /// taken only if they are still the bytes `read` hashed (each part against its own hash):
    /// so every book holds the file as it was read, and its `file` page's size and hash are
    /// those of its parts.
    ///
    /// For the first book, a part that changed — the file shrunk, or written over — throws,
    /// and so does, after the last part, a file that goes on beyond its size or whose length
    /// or modification time are no longer those it had when opened (a write behind the
    /// reader, which the hashes cannot see): its batch, rolled back, attaches nothing. A later
    /// book takes a changed part from the first book's batch, stored and durable by then,
    /// instead: once one book holds the file, every book gets it. From the file while it is
    /// unchanged, not from the store, because the store reads through a memory map: a
    /// file's worth of it would count in the daemon's resident memory.
    struct PartReader {
        let source: Source

        /// How many parts the file has.
        var parts: Int { (source.size + partSize - 1) / partSize }

        /// Part `k` for the first book: the bytes `read` hashed, or it throws.
        func part(_ k: Int) throws -> [UInt8] {
            guard let bytes = try fromFile(k) else { throw changed }
            return bytes
        }

        /// Part `k` for a book after the first: from the file, or `stored()` if it changed.
        func part(_ k: Int, else stored: () throws -> [UInt8]) throws -> [UInt8] {
            try fromFile(k) ?? stored()
        }

        /// After the first book's last part: the file ends there still, and was not written
        /// since it was opened.
        func finish() throws {
            var byte: UInt8 = 0
            let beyond = try withUnsafeMutableBytes(of: &byte) { try source.file.read(into: $0, at: source.size, path: source.path) }
            guard beyond == 0, source.opened.size == source.size, try source.file.version(path: source.path) == source.opened else {
                throw changed
            }
        }

        /// Part `k` as the file holds it now, if those are the bytes `read` hashed.
        private func fromFile(_ k: Int) throws -> [UInt8]? {
            precondition(k < parts, "a part of the file")
            let start = k * partSize
            var bytes = [UInt8](repeating: 0, count: min(partSize, source.size - start))
            let count = try bytes.withUnsafeMutableBytes { try source.file.read(into: $0, at: start, path: source.path) }
            source.afterPart?(k)
            guard count == bytes.count, BLAKE2b.hash(bytes, outputLength: 32)[...] == source.partHashes[(k * 32)..<(k * 32 + 32)] else {
                return nil
            }
            return bytes
        }

        private var changed: MessengerError {
            MessengerError(.invalidFile, "\(source.path) changed while it was being attached; nothing was attached")
        }
    }
}
