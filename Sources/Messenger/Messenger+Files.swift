import Books
import Foundation
import Sodium

/// A file of a task as `files` lists it (PROTOCOL.md §10.7): its entry of the log, and how
/// much of it this peer holds.
public struct FileReport: Codable, Hashable, Sendable {
    public var entry: LogEntry
    /// Bytes of its parts held here, each part counted once.
    public var held: UInt64
    /// Every part is held and their lengths add up to the file's size (§10.2). Whether the
    /// bytes match the file's hash is checked when it is saved.
    public var whole: Bool

    public init(entry: LogEntry, held: UInt64, whole: Bool) {
        self.entry = entry
        self.held = held
        self.whole = whole
    }
}

/// What `save` wrote.
public struct SaveResult: Codable, Hashable, Sendable {
    /// The file written.
    public var path: String
    public var entry: LogEntry
}

/// Files attached to a task (PROTOCOL.md §10.2, Files): one append batch of `chunk` pages
/// (the file's bytes, 256 KiB each) and a `file` page (name, size, hash, caption) to every
/// book this peer writes in the task, as a message is; listed with how much of each is held
/// here, and written out only whole and matching its hash.
extension Messenger {
    /// Attaches a file opened from the disk (`Attachments.read`) to the task, with a caption
    /// (empty: none). Durable when it returns; readers get it by replication, now or later.
    /// Returns its entry (the journal's copy).
    ///
    /// One part (256 KiB) in memory at a time, not the file: each book's batch reads the
    /// parts from the file as it stores them, and takes only the bytes `read` hashed
    /// (`Attachments.PartReader`). A file changed meanwhile fails the first book's batch (the
    /// journal's) — rolled back whole, nothing attached — or, once that batch is stored, makes
    /// the later books copy the changed parts from it: no book ever holds a `file` page its
    /// parts do not match.
    @discardableResult
    public func attach(_ source: Attachments.Source, caption: String = "", to task: TaskID) throws -> LogEntry {
        guard tasks[task] != nil else { throw MessengerError(.unknownTask, "unknown task \(task.hex)") }
        guard Attachments.isValidName(source.name) else {
            throw MessengerError(.invalidFile, "\"\(source.name)\" cannot name an attached file: a name is 1…\(Attachments.maxNameBytes) "
                                 + "bytes without /, \\ or control characters, and not . or ..")
        }
        guard source.size <= Attachments.maxSize else {
            throw MessengerError(.invalidFile, Attachments.tooLargeMessage("the file", size: source.size))
        }
        guard caption.utf8.count <= Attachments.maxCaptionBytes else {
            throw MessengerError(.invalidMessage, "the caption is \(caption.utf8.count) bytes; at most \(Attachments.maxCaptionBytes) are sent")
        }
        let id = SecureRandom.bytes(12).hexString
        let time = wallClock()
        let reader = Attachments.PartReader(source: source)
        let size = source.size
        let part = reader.parts
        let file = AttachedFile(name: source.name, size: UInt64(size), parts: UInt64(part), hash: source.hash)
        let described = PageSpec(kind: .file, data: Array(caption.utf8),
                                 fields: ["id": id, "hash": file.hash, "name": file.name, "parts": String(file.parts),
                                          "size": String(file.size)], time: time)
        func chunk(_ offset: Int, _ data: [UInt8]) -> PageSpec {
            PageSpec(kind: .chunk, data: data, fields: ["id": id, "part": String(offset)], time: time)
        }
        let written = try appendToBooksWritten(count: part + 1, in: task) { offset, reading, first, _ in
            guard let first else {
                guard offset < part else {
                    // The file was not written while the parts were stored, or nothing is.
                    try reader.finish()
                    return described
                }
                return chunk(offset, try reader.part(offset))
            }
            guard offset < part else { return described }
            return chunk(offset, try reader.part(offset) {
                try Self.storedPart(offset, id: id, at: first.start + UInt64(offset), of: first.book, reading: reading)
            })
        }
        notify(.changed(task))
        guard let journal = written else { throw MessengerError(.storage, "the journal of task \(task.hex) is missing") }
        record("file", "attached \(file.name) (\(size) byte\(size == 1 ? "" : "s"), \(part) part\(part == 1 ? "" : "s")) to task \(task.hex.prefix(8))")
        return LogEntry(author: localPeer.publicKey.hex, id: id, time: time, text: caption, book: journal.book.hex,
                        index: journal.index + UInt64(part), kind: .file, file: file)
    }

    /// The bytes of part `part` of file `id` as page `index` of `book` holds them: the first
    /// book's batch of an attach, which the next books copy when the file changed.
    private static func storedPart(_ part: Int, id: String, at index: UInt64, of book: BookID,
                                   reading: BookStore.Reading) throws -> [UInt8] {
        guard let bytes = try reading.page(index, of: book), let page = try? MessengerPage(decoding: bytes),
              let chunk = Attachments.chunk(of: page), chunk.id == id, chunk.part == UInt64(part) else {
            throw MessengerError(.storage, "part \(part) of the file is not at page \(index) of book \(book.hex.prefix(16))…, "
                                 + "where it was just written")
        }
        return page.data
    }

    /// The task's files, in log order, each with how much of it is held here.
    public func files(of task: TaskID) throws -> [FileReport] {
        let cache = try taskLog(of: task)
        let (log, journals) = (cache.log, cache.journals)
        return cache.order.entries.filter { $0.kind == .file }.map { entry in
            // Withdrawn: nothing of it is offered, whatever is held (§10.7).
            guard !entry.withdrawn else { return FileReport(entry: entry, held: 0, whole: false) }
            let parts = log.parts(of: entry, preferring: journals)
            let held = Self.bytes(of: parts)
            return FileReport(entry: entry, held: held, whole: UInt64(parts.count) == entry.file?.parts && held == entry.file?.size)
        }
    }

    /// The bytes of a file's parts held here (`MessageLog.parts(of:)`), each counted once.
    static func bytes(of parts: [UInt64: MessageLog.PartCopy]) -> UInt64 { parts.values.reduce(0) { $0 + UInt64($1.length) } }

    /// The file of the task that `text` names — its id, its exact name, or the beginning of
    /// its id (4 hex digits or more) — ready to be written out: every part must be held here.
    /// The bytes are read and checked against the file's hash as they are written
    /// (`FileSource.write(to:)`, which can run off this actor).
    public func fileSource(_ text: String, in task: TaskID) throws -> FileSource {
        let cache = try taskLog(of: task)
        let (log, journals) = (cache.log, cache.journals)
        let files = cache.order.entries.filter { $0.kind == .file }
        let entry = try Self.resolveFile(text, among: files)
        guard !entry.withdrawn else {
            throw MessengerError(.withdrawn, "file \(entry.id.prefix(8)) was withdrawn by its author (\(entry.author.prefix(8))): "
                                 + "not written (a copy saved before it was withdrawn stays where it was saved)")
        }
        guard let file = entry.file else { throw MessengerError(.unknownFile, "no file \(entry.id) in this task") }
        let parts = log.parts(of: entry, preferring: journals)
        let held = Self.bytes(of: parts)
        guard UInt64(parts.count) == file.parts else {
            throw MessengerError(.fileUnavailable, "\(file.name) is not here whole yet: \(parts.count) of \(file.parts) parts (\(held) of "
                                 + "\(file.size) bytes) held; the rest arrives from its author's book when replicated")
        }
        guard held == file.size else {
            throw MessengerError(.fileUnavailable, "\(file.name): its parts add up to \(held) bytes, not the \(file.size) its author "
                                 + "declared (a damaged or forged file): not written")
        }
        var books: [String: Book] = [:]
        var pages: [(book: Book, index: UInt64)] = []
        for part in 0..<file.parts {
            guard let copy = parts[part] else { throw MessengerError(.fileUnavailable, "\(file.name): part \(part) is missing") }
            if books[copy.book] == nil { books[copy.book] = try storage { try store.open(id: try BookID(hex: copy.book)) } }
            pages.append((books[copy.book]!, copy.index))
        }
        return FileSource(entry: entry, file: file, pages: pages)
    }

    /// Writes a file of the task out (`fileSource`, then `FileSource.write(to:)`, off the
    /// actor).
    public nonisolated func save(_ text: String, in task: TaskID, to path: String) async throws -> SaveResult {
        try await fileSource(text, in: task).write(to: path)
    }

    /// The file `text` names among `files`: its id exactly (either case), else its name
    /// exactly (one file only), else the beginning of one file's id (4+ hex digits).
    static func resolveFile(_ text: String, among files: [LogEntry]) throws -> LogEntry {
        let lower = text.lowercased()
        if let byID = files.first(where: { $0.id == lower }) { return byID }
        let named = files.filter { $0.file?.name == text }
        if named.count == 1 { return named[0] }
        if named.count > 1 {
            throw MessengerError(.unknownFile, "\(named.count) files are named \"\(text)\" (ids "
                                 + named.prefix(4).map { String($0.id.prefix(8)) }.joined(separator: ", ")
                                 + (named.count > 4 ? ", …" : "") + "); give the id")
        }
        if lower.utf8.count >= 4, lower.allSatisfy(\.isHexDigit) {
            let begun = files.filter { $0.id.hasPrefix(lower) }
            if begun.count == 1 { return begun[0] }
            if begun.count > 1 { throw MessengerError(.unknownFile, "\"\(text)\" begins the ids of \(begun.count) files; type more of it") }
        }
        // A withdrawn file has no name any more (§10.2): known by its id only.
        let withdrawn = files.contains(where: \.withdrawn) ? "; a withdrawn file is known by its id only" : ""
        throw MessengerError(.unknownFile, "no file \"\(text)\" in this task (see: bookswarm files TASK\(withdrawn))")
    }
}

/// A file whose every part is held, to write out (`Messenger.fileSource`). Reading and
/// writing is blocking I/O of up to the file's size: run it off the cooperative pool.
public struct FileSource: Sendable {
    public let entry: LogEntry
    public let file: AttachedFile
    let pages: [(book: Book, index: UInt64)]

    /// Removes what saves of file `id` into `parent` left whose process is gone (killed
    /// half-way, kill -9 of a daemon included): `.ID.partial-PID-N` files, up to 64 MiB each.
    static func removeAbandonedStagings(of id: String, in parent: String) {
        Leftovers.remove(in: parent, prefix: ".\(id).partial-", numbered: true)
    }

    /// Writes the file to `path` (absolute): an existing directory, where it goes under its
    /// name, or a new file in an existing directory. The bytes go to a hidden file beside the
    /// destination, checked against the file's hash, synced, and linked into place only if
    /// the destination still does not exist; an existing file is never replaced, and nothing
    /// is left behind on an error (PROTOCOL.md §10.7 `save`). `stopped` is asked before each
    /// part and before the link: once it says true, the hidden file goes and the write throws
    /// `.cancelled` (a daemon's save whose client went away, §10.7).
    public func write(to path: String, stopped: () -> Bool = { false }) throws -> SaveResult {
        guard path.hasPrefix("/") else {
            throw MessengerError(.invalidFile, "the destination must be an absolute path (got \(path))")
        }
        var target = (path as NSString).standardizingPath
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue {
            target = (target as NSString).appendingPathComponent(file.name)
        } else if path.hasSuffix("/") {
            // A directory was meant, and there is none: not a file of that name.
            if FileManager.default.fileExists(atPath: target) {
                throw MessengerError(.invalidFile, "\(target) is not a directory: choose another destination")
            }
            throw MessengerError(.invalidFile, "\(target)/ does not exist: create it first, or choose another destination")
        }
        let parent = (target as NSString).deletingLastPathComponent
        var status = stat()
        guard lstat(target, &status) != 0 else {
            throw MessengerError(.invalidFile, "\(target) exists already: not replaced (give another destination)")
        }
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else {
            throw MessengerError(.invalidFile, "\(parent) does not exist: create it first, or choose another destination")
        }
        guard isDirectory.boolValue else {
            throw MessengerError(.invalidFile, "\(parent) is not a directory: choose another destination")
        }
        Self.removeAbandonedStagings(of: entry.id, in: parent)
        // Its own name per save: two saves of one file at once never share it.
        let staging = parent + "/.\(entry.id).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(staging, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw MessengerError(.invalidFile, "cannot create a file in \(parent): \(errnoText(errno))") }
        var linked = false
        defer {
            close(fd)
            unlink(staging)
            if linked { Self.syncDirectory(parent) }
        }
        func stopIfAsked() throws {
            guard stopped() else { return }
            throw MessengerError(.cancelled, "saving \(file.name) to \(target) was stopped before it was complete: nothing written")
        }
        var hash = BLAKE2b(outputLength: 32)
        var written: UInt64 = 0
        for (book, index) in pages {
            try stopIfAsked()
            let page: MessengerPage
            do {
                guard let bytes = try book.get(index) else {
                    throw MessengerError(.fileUnavailable, "\(file.name): a part is no longer held (the task left meanwhile?)")
                }
                page = try MessengerPage(decoding: bytes)
            } catch let error as MessengerError {
                throw error
            } catch {
                throw MessengerError(.fileUnavailable, "\(file.name): a part cannot be read: \(error)")
            }
            hash.update(page.data)
            written += UInt64(page.data.count)
            try page.data.withUnsafeBytes { data in
                var offset = 0
                while offset < data.count {
                    let n = Glibc.write(fd, data.baseAddress! + offset, data.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    // The destination is what the person chose; the hidden file goes with the error.
                    guard n > 0 else { throw MessengerError(.invalidFile, "cannot write \(target): \(errnoText(errno)) (nothing written)") }
                    offset += n
                }
            }
        }
        let digest = hash.finalize().hexString
        guard written == file.size, digest == file.hash else {
            throw MessengerError(.fileUnavailable, "\(file.name) does not match its hash (its author's copy is damaged or forged): not written")
        }
        guard fsync(fd) == 0 else { throw MessengerError(.invalidFile, "cannot write \(target): \(errnoText(errno)) (nothing written)") }
        // The last moment to stop: once linked, the file is complete and stays.
        try stopIfAsked()
        // A hard link fails if the destination appeared meanwhile: nothing is ever replaced.
        if link(staging, target) == 0 {
            linked = true
        } else if errno == EEXIST {
            throw MessengerError(.invalidFile, "\(target) exists now: not replaced (give another destination)")
        } else if errno == EPERM || errno == EOPNOTSUPP || errno == ENOTSUP || errno == EMLINK {
            // A file system without hard links (FAT): rename, after one more look.
            guard lstat(target, &status) != 0 else {
                throw MessengerError(.invalidFile, "\(target) exists now: not replaced (give another destination)")
            }
            guard rename(staging, target) == 0 else { throw MessengerError(.invalidFile, "cannot write \(target): \(errnoText(errno))") }
            linked = true
        } else {
            throw MessengerError(.invalidFile, "cannot write \(target): \(errnoText(errno))")
        }
        return SaveResult(path: target, entry: entry)
    }

    private static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
