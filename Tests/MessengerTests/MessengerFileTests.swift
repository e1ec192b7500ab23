import Books
import Foundation
import Sodium
import Swarm
import Synchronization
import Testing
@testable import Messenger

/// Files attached to a task (PROTOCOL.md §10.2 Files): the `file` and `chunk` pages as the log
/// reads them — entries, copies, malformed pages — without a network.
@Suite struct FileLogTests {
    typealias T = MessageLogTests
    static let id = "0123456789abcdef01234567"

    static func page(author: PeerID, book: BookID, index: UInt64, kind: MessengerPage.Kind, data: [UInt8], fields: [String: String],
                     time: UInt64 = 100) -> [UInt8] {
        MessengerPage(head: .init(author: author.bytes, book: book.bytes, index: index, previous: index == 0 ? nil : [UInt8](repeating: 1, count: 32)),
                      kind: kind, data: data, meta: .init(time: time, fields: fields)).encoded()
    }

    /// The meta of a `file` page for `bytes` cut into `parts` parts.
    static func fileFields(_ bytes: [UInt8], parts: Int, name: String = "roof.jpg", id: String = id) -> [String: String] {
        ["hash": Attachments.hash(bytes), "id": id, "name": name, "parts": String(parts), "size": String(bytes.count)]
    }

    @Test("a file is an entry of its own kind with its caption, deduplicated across copies; its chunks make none")
    func fileEntries() {
        let (a, b, c) = (T.peer(1), T.peer(2), T.peer(3))
        let journal = TaskBookName.journal(of: a, task: T.task)
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let aToC = TaskBookName(author: a, reader: c, task: T.task)
        let bytes = Array("0123456789".utf8)
        var log = MessageLog()
        for (name, book) in [(aToC, T.bookID(3)), (journal, T.bookID(1)), (aToB, T.bookID(2))] {
            log.add(page: Self.page(author: a, book: book, index: 1, kind: .chunk, data: Array(bytes[..<6]), fields: ["id": Self.id, "part": "0"]),
                    index: 1, book: book, name: name)
            log.add(page: Self.page(author: a, book: book, index: 2, kind: .chunk, data: Array(bytes[6...]), fields: ["id": Self.id, "part": "1"]),
                    index: 2, book: book, name: name)
            log.add(page: Self.page(author: a, book: book, index: 3, kind: .file, data: Array("the leak".utf8),
                                    fields: Self.fileFields(bytes, parts: 2)), index: 3, book: book, name: name)
        }
        // The same id as a chat: two entries (a file and a chat are never one).
        log.add(page: T.page(author: a, book: T.bookID(1), index: 4, text: "hi", id: Self.id, time: 100), index: 4, book: T.bookID(1), name: journal)
        #expect(log.malformed == 0)
        let ordered = log.ordered(preferring: [T.bookID(1).hex])
        #expect(ordered.map(\.kind) == [.file, .chat])
        let file = ordered[0]
        #expect(file.book == T.bookID(1).hex && file.index == 3 && file.text == "the leak" && file.id == Self.id)
        #expect(file.file == AttachedFile(name: "roof.jpg", size: 10, parts: 2, hash: Attachments.hash(bytes)))
        // Its parts: from the entry's own book (the journal).
        let parts = log.parts(of: file, preferring: [T.bookID(1).hex])
        #expect(parts.count == 2 && parts.values.allSatisfy { $0.book == T.bookID(1).hex } && parts[1]?.length == 4)
        // Another member's view (no journal): the entry and its parts from the least reader's book.
        var other = MessageLog()
        for (name, book) in [(aToC, T.bookID(3)), (aToB, T.bookID(2))] {
            other.add(page: Self.page(author: a, book: book, index: 1, kind: .chunk, data: Array(bytes[..<6]), fields: ["id": Self.id, "part": "0"]),
                      index: 1, book: book, name: name)
            other.add(page: Self.page(author: a, book: book, index: 3, kind: .file, data: [], fields: Self.fileFields(bytes, parts: 2)),
                      index: 3, book: book, name: name)
        }
        // Part 1 only in the other book: taken from there.
        let least = b.publicKey.hex < c.publicKey.hex ? (aToB, T.bookID(2)) : (aToC, T.bookID(3))
        let most = least.1 == T.bookID(2) ? (aToC, T.bookID(3)) : (aToB, T.bookID(2))
        other.add(page: Self.page(author: a, book: most.1, index: 2, kind: .chunk, data: Array(bytes[6...]), fields: ["id": Self.id, "part": "1"]),
                  index: 2, book: most.1, name: most.0)
        let entry = try! #require(other.ordered().first)
        #expect(entry.book == least.1.hex && entry.text.isEmpty)
        let held = other.parts(of: entry)
        #expect(held[0]?.book == least.1.hex && held[1]?.book == most.1.hex)
        // A part numbered beyond the file's is not its.
        other.add(page: Self.page(author: a, book: least.1, index: 5, kind: .chunk, data: [1], fields: ["id": Self.id, "part": "2"]),
                  index: 5, book: least.1, name: least.0)
        #expect(other.parts(of: entry).count == 2)
        // Another author's chunks with the same id are not its parts.
        var forged = other
        forged.add(page: Self.page(author: b, book: T.bookID(4), index: 1, kind: .chunk, data: [9], fields: ["id": Self.id, "part": "0"]),
                   index: 1, book: T.bookID(4), name: TaskBookName(author: b, reader: a, task: T.task))
        #expect(forged.parts(of: entry) == other.parts(of: entry))
    }

    @Test("file and chunk pages that break §10.2's rules are malformed: counted and hidden")
    func malformedFilePages() {
        let (a, b) = (T.peer(1), T.peer(2))
        let aToB = TaskBookName(author: a, reader: b, task: T.task)
        let book = T.bookID(2)
        let bytes = Array("abc".utf8)
        let good = Self.fileFields(bytes, parts: 1)
        func with(_ key: String, _ value: String?) -> [String: String] {
            var fields = good
            fields[key] = value
            return fields
        }
        let badFiles: [(String, [UInt8], [String: String])] = [
            ("caption not UTF-8", [0xFF, 0xFE], good),
            ("no id", [], with("id", nil)), ("id upper case", [], with("id", Self.id.uppercased())), ("id short", [], with("id", "abc")),
            ("no hash", [], with("hash", nil)), ("hash short", [], with("hash", "00")),
            ("no name", [], with("name", nil)), ("empty name", [], with("name", "")), ("slash", [], with("name", "a/b")),
            ("backslash", [], with("name", "a\\b")), ("dot", [], with("name", ".")), ("dot dot", [], with("name", "..")),
            ("NUL", [], with("name", "a\u{0}b")), ("ESC", [], with("name", "a\u{1b}[2Jb")), ("DEL", [], with("name", "a\u{7f}")),
            ("C1", [], with("name", "a\u{85}")), ("override", [], with("name", "gpj.\u{202e}exe")), ("isolate", [], with("name", "a\u{2066}")),
            ("no size", [], with("size", nil)), ("size leading zero", [], with("size", "03")), ("size negative", [], with("size", "-3")),
            ("size over 2^53", [], with("size", "9007199254740992")), ("size with space", [], with("size", " 3")),
            ("no parts", [], with("parts", nil)), ("parts over size", [], with("parts", "4")),
            ("no parts for bytes", [], with("parts", "0")), ("parts for nothing", [], ["hash": good["hash"]!, "id": Self.id, "name": "x", "parts": "1", "size": "0"]),
        ]
        var log = MessageLog()
        var index: UInt64 = 1
        for (_, data, fields) in badFiles {
            log.add(page: Self.page(author: a, book: book, index: index, kind: .file, data: data, fields: fields), index: index, book: book, name: aToB)
            index += 1
        }
        #expect(log.malformed == badFiles.count && log.ordered().isEmpty)
        let badChunks: [([UInt8], [String: String])] = [
            ([], ["id": Self.id, "part": "0"]), ([1], ["part": "0"]), ([1], ["id": Self.id]), ([1], ["id": "x", "part": "0"]),
            ([1], ["id": Self.id, "part": "00"]), ([1], ["id": Self.id, "part": "one"]),
        ]
        for (data, fields) in badChunks {
            log.add(page: Self.page(author: a, book: book, index: index, kind: .chunk, data: data, fields: fields), index: index, book: book, name: aToB)
            index += 1
        }
        #expect(log.malformed == badFiles.count + badChunks.count)
        // Names that are fine: spaces, accents, a leading dot, 255 bytes, an empty file.
        for name in ["roof photo (2).jpg", "Ça coûte — 屋根.pdf", ".hidden", String(repeating: "é", count: 127) + "x"] {
            #expect(Attachments.isValidName(name), "\(name)")
        }
        #expect(!Attachments.isValidName(String(repeating: "é", count: 128)), "256 bytes")
        log.add(page: Self.page(author: a, book: book, index: index, kind: .file, data: [],
                                fields: ["hash": Attachments.hash([]), "id": Self.id, "name": "empty", "parts": "0", "size": "0"]),
                index: index, book: book, name: aToB)
        #expect(log.ordered().map { $0.file?.name } == ["empty"])
    }

    @Test("JSON (§10.7): a file entry has \"kind\":\"file\" and its file; it reads back")
    func json() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let file = LogEntry(author: "aa", id: "f", time: 5, text: "the leak", book: "bb", index: 3, kind: .file,
                            file: AttachedFile(name: "roof.jpg", size: 10, parts: 1, hash: "cc"))
        #expect(String(decoding: try encoder.encode(file), as: UTF8.self)
                == #"{"author":"aa","book":"bb","file":{"hash":"cc","name":"roof.jpg","parts":1,"size":10},"id":"f","index":3,"kind":"file","text":"the leak","time":5}"#)
        #expect(try JSONDecoder().decode(LogEntry.self, from: encoder.encode(file)) == file)
    }
}

/// Files between messengers, offline and over the in-memory network.
@Suite(.serialized) struct MessengerFileTests {
    /// `count` bytes that differ from one run to the next.
    static func randomBytes(_ count: Int) -> [UInt8] { SecureRandom.bytes(count) }

    /// Writes `bytes` to a new file of the bed's directory; its path.
    static func file(_ bed: MessengerBed, _ name: String, _ bytes: [UInt8]) throws -> String {
        let directory = bed.root + "/files-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A new empty directory of the bed's, to save into.
    static func directory(_ bed: MessengerBed) throws -> String {
        let path = bed.root + "/out-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("attach writes one batch of chunks and a file page; save writes it byte-identical, never over a file; limits are one-line errors")
    func attachOffline() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let ana = try bed.offline(2)
        let (task, _) = try await ana.newTask("t")
        let bytes = Self.randomBytes(600_000)
        let path = try Self.file(bed, "roof.jpg", bytes)
        let entry = try await ana.messenger.attach(try Attachments.read(path: path), caption: "above the window", to: task)
        #expect(entry.kind == .file && entry.text == "above the window")
        #expect(entry.file == AttachedFile(name: "roof.jpg", size: 600_000, parts: 3, hash: BLAKE2b.hash(bytes, outputLength: 32).hexString))
        let journal = try #require(try ana.store.book(named: TaskBookName.journal(of: ana.id, task: task).text))
        let pages = try (0..<journal.length).map { try MessengerPage(decoding: try #require(try journal.get($0))) }
        #expect(pages.map(\.kind) == [.task, .chunk, .chunk, .chunk, .file])
        #expect(journal.signedRoot?.length == 5, "one append batch")
        #expect(pages[1...3].map(\.data.count) == [262_144, 262_144, 600_000 - 2 * 262_144])
        #expect(pages[1...3].map { $0.meta.fields["part"] } == ["0", "1", "2"] && Set(pages[1...].map { $0.meta.time }).count == 1)
        #expect(try await ana.messenger.log(of: task) == [entry])
        let summary = try await ana.messenger.summary(of: task)
        #expect(summary.messages == 1 && summary.unread == 0, "a file is a message; her own is never unread")
        let files = try await ana.messenger.files(of: task)
        #expect(files.count == 1 && files[0].whole && files[0].held == 600_000)

        // Saved: byte-identical, under its name into a directory, or to a new file.
        let out = try Self.directory(bed)
        let saved = try await ana.messenger.save("roof.jpg", in: task, to: out)
        #expect(saved.path == out + "/roof.jpg" && FileManager.default.contents(atPath: saved.path) == Data(bytes))
        #expect(try await ana.messenger.save(String(entry.id.prefix(6)), in: task, to: out + "/copy.jpg").path == out + "/copy.jpg")
        #expect(FileManager.default.contents(atPath: out + "/copy.jpg") == Data(bytes))
        // Never over an existing file; nothing left behind.
        await #expect(throws: MessengerError.self) { try await ana.messenger.save(entry.id, in: task, to: out) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["copy.jpg", "roof.jpg"])
        await #expect(throws: MessengerError.self) { try await ana.messenger.save("nope.jpg", in: task, to: out) }
        await #expect(throws: MessengerError.self) { try await ana.messenger.save(entry.id, in: task, to: out + "/no/such/dir/x") }

        // What cannot be attached.
        func refused(_ body: () throws -> Attachments.Source, _ needle: String) {
            do {
                _ = try body()
                Issue.record("not refused: \(needle)")
            } catch let error as MessengerError {
                #expect(error.code == .invalidFile && error.message.contains(needle) && !error.message.contains("\n"), "\(error.message)")
            } catch {
                Issue.record("\(error)")
            }
        }
        let large = bed.root + "/large.bin"
        #expect(FileManager.default.createFile(atPath: large, contents: nil))
        #expect(truncate(large, off_t(Attachments.maxSize + 1)) == 0)
        refused({ try Attachments.read(path: large) }, "is 64 MiB and 1 byte; files of at most 64 MiB can be attached")
        #expect(truncate(large, off_t(Attachments.maxSize)) == 0)
        #expect(try Attachments.read(path: large).size == Attachments.maxSize, "64 MiB exactly is fine")
        refused({ try Attachments.read(path: bed.root) }, "a directory")
        refused({ try Attachments.read(path: bed.root + "/missing") }, "No such file")
        refused({ try Attachments.read(path: "roof.jpg") }, "absolute path")
        refused({ try Attachments.read(path: path, name: "../x") }, "cannot name")
        refused({ try Attachments.read(path: path, name: "a\u{1b}b") }, "cannot name")
        #expect(try Attachments.read(path: path, name: "leak.jpg").name == "leak.jpg")
        #expect(journal.length == 5, "nothing written by a refusal")
        await ana.stop()
    }

    @Test("a save asked to stop (a daemon's whose client went away) stops before the next part or the link, and leaves no hidden file")
    func saveAskedToStop() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let ana = try bed.offline(2)
        let (task, _) = try await ana.newTask("t")
        let bytes = Self.randomBytes(600_000)
        _ = try await ana.messenger.attach(try Attachments.read(path: try Self.file(bed, "roof.jpg", bytes)), to: task)
        let source = try await ana.messenger.fileSource("roof.jpg", in: task)
        let out = try Self.directory(bed)
        // Asked before each of its 3 parts and before the link: stopped at each in turn.
        for step in 1...4 {
            var asked = 0, hidden = false
            do {
                _ = try source.write(to: out) {
                    asked += 1
                    hidden = hidden || (try? FileManager.default.contentsOfDirectory(atPath: out))?.first?.hasPrefix(".") == true
                    return asked == step
                }
                Issue.record("step \(step): not stopped")
            } catch let error as MessengerError {
                #expect(error.code == .cancelled && error.message == "saving roof.jpg to \(out)/roof.jpg was stopped before it was complete: nothing written")
            }
            #expect(hidden, "step \(step): written through a hidden file")
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty, "step \(step)")
        }
        var asked = 0
        #expect(try source.write(to: out) { asked += 1; return false }.path == out + "/roof.jpg" && asked == 4)
        #expect(FileManager.default.contents(atPath: out + "/roof.jpg") == Data(bytes))
        await ana.stop()
    }

    /// Ana, offline, in a task with two other members she writes for: her journal and her
    /// two pairwise books, the books an attach writes to.
    static func anaWritingThreeBooks(_ bed: MessengerBed) async throws
        -> (ana: Peer, task: TaskID, books: [(name: TaskBookName, book: Book)]) {
        let ana = try bed.offline(2)
        let (task, _) = try await ana.newTask("t")
        for reader: UInt8 in [1, 3] { _ = try await ana.messenger.createPairwiseBook(for: PeerID(MessengerBed.identity(reader).publicKey), task: task) }
        let books = try await ana.messenger.booksWritten(in: task)
        #expect(books.count == 3)
        return (ana, task, books)
    }

    @Test("attach reads the file a part at a time as each book's batch stores it; every book holds the parts byte-identical")
    func attachStreamsTheParts() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (ana, task, books) = try await Self.anaWritingThreeBooks(bed)
        let before = Dictionary(uniqueKeysWithValues: books.map { ($0.book.id, $0.book.length) })
        let bytes = Self.randomBytes(3 * Attachments.partSize + 1000)
        var source = try Attachments.read(path: try Self.file(bed, "plan.pdf", bytes), name: "")
        #expect(source.size == bytes.count && source.hash == Attachments.hash(bytes) && source.name == "plan.pdf")
        let reads = PartReads()
        source.afterPart = { reads.add($0) }
        let entry = try await ana.messenger.attach(source, caption: "the plan", to: task)
        #expect(reads.all == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3], "a part at a time, in order, for each of the three books")
        #expect(entry.file == AttachedFile(name: "plan.pdf", size: UInt64(bytes.count), parts: 4, hash: Attachments.hash(bytes)))
        for (name, book) in books {
            let start = try #require(before[book.id])
            #expect(book.length == start + 5, "\(name.text): one batch of four chunks and the file page")
            let pages = try (start..<book.length).map { try MessengerPage(decoding: try #require(try book.get($0))) }
            #expect(pages.map(\.kind) == [.chunk, .chunk, .chunk, .chunk, .file])
            #expect(pages.dropLast().flatMap(\.data) == bytes, "\(name.text): the parts are the file's bytes")
            #expect(pages.allSatisfy { $0.meta.fields["id"] == entry.id && $0.meta.time == entry.time })
            #expect(pages.last?.meta.fields["hash"] == entry.file?.hash && pages.last?.meta.fields["size"] == String(bytes.count))
        }
        let saved = try await ana.messenger.save(entry.id, in: task, to: try Self.directory(bed))
        #expect(FileManager.default.contents(atPath: saved.path) == Data(bytes))

        // An empty file: no chunk, a file page only.
        let empty = try await ana.messenger.attach(try Attachments.read(path: try Self.file(bed, "empty.txt", [])), to: task)
        #expect(empty.file == AttachedFile(name: "empty.txt", size: 0, parts: 0, hash: Attachments.hash([])))
        #expect(try await ana.messenger.files(of: task).map(\.whole) == [true, true])
        await ana.stop()
    }

    @Test("a file changed while it is attached — written over, shrunk, grown — is refused in one line, no book touched; changed once the journal holds it, every book gets it as read")
    func fileChangedWhileAttached() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (ana, task, books) = try await Self.anaWritingThreeBooks(bed)
        let lengths = books.map { $0.book.length }
        let bytes = Self.randomBytes(2 * Attachments.partSize + 5000)
        let path = try Self.file(bed, "roof.jpg", bytes)

        /// Writes `data` at `offset` of the file, in place (its descriptor, open, sees it).
        @Sendable func write(_ data: [UInt8], at offset: Int) {
            let fd = open(path, O_WRONLY)
            precondition(fd >= 0)
            precondition(data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) } == data.count)
            close(fd)
        }
        func expectRefused(_ what: String, afterPart part: Int?, _ change: @escaping @Sendable () -> Void) async throws {
            write(bytes, at: 0)
            #expect(truncate(path, off_t(bytes.count)) == 0)
            var source = try Attachments.read(path: path)
            if let part {
                source.afterPart = { if $0 == part { change() } }
            } else {
                change()
            }
            do {
                try await ana.messenger.attach(source, caption: what, to: task)
                Issue.record("\(what): attached")
            } catch let error as MessengerError {
                #expect(error.code == .invalidFile && error.message == "\(path) changed while it was being attached; nothing was attached",
                        "\(what): \(error.message)")
            }
            #expect(books.map { $0.book.length } == lengths, "\(what): nothing written to any book")
        }
        // Between `read` and `attach`: the same size, other bytes.
        try await expectRefused("written over before attach", afterPart: nil) { write([0xff], at: 3) }
        // Between parts: part 2's bytes changed after parts 0 and 1 were stored.
        try await expectRefused("written over between parts", afterPart: 1) { write([UInt8](repeating: 7, count: 100), at: 2 * Attachments.partSize) }
        // Part 0's bytes changed after it was read: the hash cannot see it, its modification
        // time does (set a second on, as a write in a later clock tick leaves it).
        try await expectRefused("written over behind the reader", afterPart: 0) {
            write([0], at: 10)
            var status = stat()
            precondition(stat(path, &status) == 0)
            var times = [status.st_atim, status.st_mtim]
            times[1].tv_sec += 1
            precondition(utimensat(AT_FDCWD, path, &times, 0) == 0)
        }
        // Shrunk: part 1 ends early.
        try await expectRefused("shrunk", afterPart: 0) { _ = truncate(path, off_t(Attachments.partSize + 10)) }
        // Grown after its last part was read.
        try await expectRefused("grown", afterPart: 2) { write([1, 2, 3], at: bytes.count) }
        #expect(try await ana.messenger.log(of: task).isEmpty)
        #expect(try await ana.messenger.files(of: task).isEmpty)

        // Written over once the journal's batch is stored: the file is attached as it was read,
        // to every book — the pairwise books take the changed parts from the journal's batch.
        write(bytes, at: 0)
        #expect(truncate(path, off_t(bytes.count)) == 0)
        var source = try Attachments.read(path: path)
        let reads = PartReads()
        source.afterPart = { part in
            reads.add(part)
            // After the first pairwise book's part 0: its parts 1 and 2, and all of the
            // second pairwise book's, differ from the file read.
            if reads.all.count == 4 { write([UInt8](repeating: 9, count: 2 * Attachments.partSize), at: 0) }
        }
        let entry = try await ana.messenger.attach(source, to: task)
        #expect(reads.all == [0, 1, 2, 0, 1, 2, 0, 1, 2])
        #expect(entry.file == AttachedFile(name: "roof.jpg", size: UInt64(bytes.count), parts: 3, hash: Attachments.hash(bytes)))
        #expect(books.map { $0.book.length } == lengths.map { $0 + 4 })
        for (name, book) in books {
            let pages = try (book.length - 4..<book.length).map { try MessengerPage(decoding: try #require(try book.get($0))) }
            #expect(pages.dropLast().flatMap(\.data) == bytes, "\(name.text): the file as it was read")
        }
        #expect(try await ana.messenger.files(of: task).map(\.entry) == [entry])
        await ana.stop()
    }

    @Test("a 3 MB file from Ana reaches Bob, verified, and saves byte-identical; it counts as unread", .timeLimit(.minutes(1)))
    func fileReachesAMember() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let (bob, ana, task, _) = try await bed.bobAndAnaInATask()
        try await ana.messenger.send("a photo follows", to: task)
        #expect(try await eventually { try await bob.texts(task) == ["a photo follows"] })
        try await bob.messenger.markRead(task)
        let bytes = Self.randomBytes(3_000_000)
        let started = ContinuousClock.now
        let entry = try await ana.messenger.attach(try Attachments.read(path: try Self.file(bed, "roof.jpg", bytes)), caption: "the leak", to: task)
        #expect(try await eventually { try await bob.messenger.files(of: task).first?.whole == true })
        print("a 3 MB file, attach → whole at the reader (in memory): \(ContinuousClock.now - started)")
        let log = try await bob.messenger.log(of: task)
        #expect(log.map(\.kind) == [.join, .chat, .file] && log.last?.id == entry.id && log.last?.file == entry.file)
        #expect(try await bob.messenger.summary(of: task).unread == 1, "the file is unread")
        let saved = try await bob.messenger.save("roof.jpg", in: task, to: try Self.directory(bed))
        #expect(FileManager.default.contents(atPath: saved.path) == Data(bytes))
        try await bob.messenger.markRead(task)
        #expect(try await bob.messenger.summary(of: task).unread == 0)
        // Read from Ana's book for Bob, which verifies whole at Bob's from the disk up.
        let book = try #require(try bob.store.book(named: TaskBookName(author: ana.id, reader: bob.id, task: task).text))
        #expect(log.last?.book == book.id.hex)
        try book.verify()
        await ana.stop()
        await bob.stop()
    }

    @Test("attached offline, delivered when online; a member who joins later gets it too", .timeLimit(.minutes(1)))
    func offlineAttachAndLateJoiner() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let bob = try await bed.online(1)
        let (task, invite) = try await bob.newTask("t")
        // Ana joins, goes offline, attaches; Bob gets the file when she is back.
        var ana = try await bed.online(2)
        _ = try await ana.messenger.join(invite)
        #expect(try await eventually { try await bob.messenger.summary(of: task).members.contains { $0.peer == ana.id.publicKey.hex && $0.readsFrom } })
        await ana.stop()
        let offline = try bed.offline(2)
        let bytes = Self.randomBytes(700_000)
        let entry = try await offline.messenger.attach(try Attachments.read(path: try Self.file(bed, "quote.pdf", bytes)), to: task)
        offline.store.close()
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await bob.messenger.files(of: task).isEmpty)
        ana = try await bed.online(2)
        #expect(try await eventually { try await bob.messenger.files(of: task).first?.whole == true })
        let atBob = try await bob.messenger.save(entry.id, in: task, to: try Self.directory(bed))
        #expect(FileManager.default.contents(atPath: atBob.path) == Data(bytes))

        // Carol joins after: Ana's new book for her carries the file from Ana's journal.
        let carol = try await bed.online(3)
        _ = try await carol.messenger.join(invite)
        #expect(try await eventually { try await carol.messenger.files(of: task).first?.whole == true })
        let report = try #require(try await carol.messenger.files(of: task).first)
        #expect(report.entry.id == entry.id && report.entry.time == entry.time && report.entry.text.isEmpty)
        let anaForCarol = try #require(try carol.store.book(named: TaskBookName(author: ana.id, reader: carol.id, task: task).text))
        #expect(report.entry.book == anaForCarol.id.hex)
        let saved = try await carol.messenger.save("quote.pdf", in: task, to: try Self.directory(bed))
        #expect(FileManager.default.contents(atPath: saved.path) == Data(bytes))
        for p in [ana, bob, carol] { await p.stop() }
    }

    /// PROTOCOL.md §10.3: a vault restored from its key alone takes back its books from their
    /// readers, files included, and a member met afterwards gets those files in its new book.
    @Test("a restored vault gets its own file back from a reader, and passes it on to a member who joins later", .timeLimit(.minutes(1)))
    func restoredVaultGetsItsFileBack() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        var bob = try await bed.online(1)
        let ana = try await bed.online(2)
        let (task, invite) = try await bob.newTask("t")
        _ = try await ana.messenger.join(invite)
        let bytes = Self.randomBytes(400_000)
        let entry = try await bob.messenger.attach(try Attachments.read(path: try Self.file(bed, "plan.png", bytes)), caption: "the plan", to: task)
        #expect(try await eventually { try await ana.messenger.files(of: task).first?.whole == true })

        bob = try await bed.restore(bob, joining: invite)
        let back = try await eventually(.seconds(10)) { try await bob.messenger.files(of: task).first?.whole == true }
        let events = await bob.messenger.recentEvents.suffix(12)
        let refusals = (await bob.messenger.refusals, await ana.messenger.refusals)
        #expect(back, "bob: \(events) refusals (bob's, ana's): \(refusals)")
        let report = try #require(try await bob.messenger.files(of: task).first)
        #expect(report.entry.id == entry.id && report.entry.text == "the plan" && report.entry.file == entry.file)
        #expect(FileManager.default.contents(atPath: try await bob.messenger.save(entry.id, in: task, to: try Self.directory(bed)).path) == Data(bytes))

        // Carol joins now: Bob's new book for her starts with what he took back, the file too.
        let carol = try await bed.online(3)
        _ = try await carol.messenger.join(invite)
        #expect(try await eventually { try await carol.messenger.files(of: task).first?.whole == true })
        let atCarol = try #require(try await carol.messenger.files(of: task).first?.entry)
        #expect(atCarol.id == entry.id && atCarol.time == entry.time && atCarol.author == bob.id.publicKey.hex)
        let saved = try await carol.messenger.save("plan.png", in: task, to: try Self.directory(bed))
        #expect(FileManager.default.contents(atPath: saved.path) == Data(bytes))
        for p in [ana, bob, carol] { await p.stop() }
    }

    @Test("save refuses a file not here whole, or whose bytes do not match its hash, and writes nothing")
    func saveRefusesIncompleteOrMismatching() async throws {
        let bed = MessengerBed()
        defer { bed.cleanUp() }
        let ana = try bed.offline(2)
        let (task, _) = try await ana.newTask("t")
        let journal = try #require(try ana.store.book(named: TaskBookName.journal(of: ana.id, task: task).text))
        let bytes = Self.randomBytes(1000)
        // A file page whose second part was never written, one whose part differs from what its
        // hash says, one whose parts are shorter than its size.
        let (missing, forged, short) = ("a" + String(repeating: "0", count: 23), "b" + String(repeating: "0", count: 23), "c" + String(repeating: "0", count: 23))
        typealias Spec = Messenger.PageSpec
        var wrong = bytes
        wrong[999] ^= 1
        let specs: [Spec] = [
            Spec(kind: .chunk, data: Array(bytes[..<500]), fields: ["id": missing, "part": "0"]),
            Spec(kind: .file, data: [], fields: FileLogTests.fileFields(bytes, parts: 2, name: "missing.bin", id: missing)),
            Spec(kind: .chunk, data: Array(wrong[..<500]), fields: ["id": forged, "part": "0"]),
            Spec(kind: .chunk, data: Array(wrong[500...]), fields: ["id": forged, "part": "1"]),
            Spec(kind: .file, data: [], fields: FileLogTests.fileFields(bytes, parts: 2, name: "forged.bin", id: forged)),
            Spec(kind: .chunk, data: Array(bytes[..<500]), fields: ["id": short, "part": "0"]),
            Spec(kind: .chunk, data: Array(bytes[500..<900]), fields: ["id": short, "part": "1"]),
            Spec(kind: .file, data: [], fields: FileLogTests.fileFields(bytes, parts: 2, name: "short.bin", id: short)),
        ]
        try await ana.messenger.append(specs, to: journal)
        let files = try await ana.messenger.files(of: task)
        #expect(files.map(\.entry.file?.name) == ["missing.bin", "forged.bin", "short.bin"])
        #expect(files.map(\.whole) == [false, true, false] && files.map(\.held) == [500, 1000, 900])
        let out = try Self.directory(bed)
        for (name, needle) in [("missing.bin", "not here whole yet: 1 of 2 parts"), ("forged.bin", "does not match its hash"),
                               ("short.bin", "add up to 900 bytes")] {
            do {
                _ = try await ana.messenger.save(name, in: task, to: out)
                Issue.record("\(name) was saved")
            } catch let error as MessengerError {
                #expect(error.code == .fileUnavailable && error.message.contains(needle), "\(error.message)")
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty, "nothing written, no hidden file left")
        await ana.stop()
    }
}

/// The parts a source's `afterPart` saw, in order.
final class PartReads: Sendable {
    private let reads = Mutex<[Int]>([])
    func add(_ part: Int) { reads.withLock { $0.append(part) } }
    var all: [Int] { reads.withLock { $0 } }
}
