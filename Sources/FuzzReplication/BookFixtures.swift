import Books
import Foundation
import Sodium

/// The books the replication beds run over, in real stores under a directory of this
/// process (removed at exit): an author's book of 40 pages of varied sizes (two of them over
/// 1024 bytes, one of several fragments) in three signed batches; and a reader's store
/// holding that book, unread, as its book number 1 and another author's three pages as
/// book number 2, so that a page stored under the wrong key lands where a check sees it.
///
/// A bed that stores something in the reader calls `resetReader()`, which puts the reader's
/// store back as it was (a copy of a template), so every input starts from the same state.
final class BookFixtures: @unchecked Sendable {
    static let shared = BookFixtures()

    static let pageCount: UInt64 = 40
    static let batches: [Range<UInt64>] = [0..<10, 10..<25, 25..<40]
    static let authorName = "fuzz-author"
    static let authorSecret = SecretBytes(copying: [UInt8](repeating: 1, count: 32))

    let directory: String
    let authorStore: BookStore
    let author: Book
    let other: Book
    /// The author's key pair, to sign whatever root a forged answer needs.
    let authorKeys: Ed25519.KeyPair
    private(set) var readerStore: BookStore
    private(set) var reader: Book
    /// Bumped by every reset: a bed holding a `Book` of the old store rebuilds with the new.
    private(set) var generation = 0

    private let template: String
    private let readerDirectory: String

    /// Page `i` of the author's book: its size varies, its bytes derive from `i`.
    static func page(_ i: UInt64) -> [UInt8] {
        let size = i == 7 ? 5000 : i % 5 == 0 ? 2000 : 100 + Int(i)
        return (0..<size).map { UInt8(truncatingIfNeeded: UInt64($0) &* 31 &+ i &* 7 &+ 1) }
    }

    private init() {
        BookFixtures.removeStaleDirectories()
        directory = NSTemporaryDirectory() + "fuzz-replication-\(getpid())"
        template = (directory as NSString).appendingPathComponent("template")
        readerDirectory = (directory as NSString).appendingPathComponent("reader")
        try? FileManager.default.removeItem(atPath: directory)
        fixtureDirectory = directory
        atexit { if let path = fixtureDirectory { try? FileManager.default.removeItem(atPath: path) } }
        do {
            authorStore = try BookStore.open(directory: (directory as NSString).appendingPathComponent("author"),
                                             masterSecret: BookFixtures.authorSecret)
            author = try authorStore.createOrOpen(name: BookFixtures.authorName)
            for batch in BookFixtures.batches { _ = try author.append(contentsOf: batch.map(BookFixtures.page)) }
            other = try authorStore.createOrOpen(name: "fuzz-other")
            _ = try other.append(contentsOf: (0..<3).map { Array("other \($0)".utf8) })
            authorKeys = try BookName.keyPair(masterSecret: BookFixtures.authorSecret, name: BookFixtures.authorName)

            let store = try BookStore.open(directory: template,
                                           masterSecret: SecretBytes(copying: [UInt8](repeating: 2, count: 32)))
            _ = try store.open(id: author.id)
            let copy = try store.open(id: other.id)
            try copy.apply(signedRoot: other.signedRoot!, proof: other.proof(for: 0..<3), pages: other.pages(in: 0..<3))
            try store.checkpoint()
            store.close()
            (readerStore, reader) = try BookFixtures.openReader(template: template, at: readerDirectory, author: author.id)
        } catch {
            fatalError("fuzz-replication: cannot set up the book stores in \(directory): \(error)")
        }
    }

    /// The directories of earlier runs that crashed (a crash is what a fuzzer looks for, and
    /// skips the exit handler): those whose process is gone.
    private static func removeStaleDirectories() {
        Leftovers.remove(in: NSTemporaryDirectory(), prefix: "fuzz-replication-")
    }

    private static func openReader(template: String, at path: String, author: BookID) throws -> (BookStore, Book) {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: template, toPath: path)
        let store = try BookStore.open(directory: path, masterSecret: SecretBytes(copying: [UInt8](repeating: 2, count: 32)))
        return (store, try store.open(id: author))
    }

    /// Whether the reader's book is as the template has it: nothing held, nothing verified.
    var readerIsPristine: Bool { reader.signedRoot == nil && reader.heldRanges().isEmpty && reader.forkProof == nil }

    /// Puts the reader's store back as the template has it.
    func resetReader() {
        readerStore.close()
        do {
            (readerStore, reader) = try BookFixtures.openReader(template: template, at: readerDirectory, author: author.id)
        } catch {
            fatalError("fuzz-replication: cannot reset the reader's store: \(error)")
        }
        generation += 1
    }

    /// Every page the reader holds is `expected`'s (by default the author's), byte for byte,
    /// and the reader's book verifies from the disk up; the other book still holds its own
    /// three pages.
    func checkReader(expected: (UInt64) -> [UInt8]? = { $0 < BookFixtures.pageCount ? BookFixtures.page($0) : nil }) {
        for range in reader.heldRanges().ranges {
            precondition(range.upperBound - range.lowerBound <= 64, "the reader holds pages it was never sent")
            for i in range {
                let stored = try? reader.get(i)
                precondition(stored != nil && stored == expected(i), "page \(i) of the reader is not the one its author signed")
            }
        }
        do {
            try reader.verify()
        } catch {
            preconditionFailure("the reader's book does not verify: \(error)")
        }
        for i in UInt64(0)..<3 {
            precondition((try? readerStore.open(id: other.id).get(i)) == Array("other \(i)".utf8), "the other book's page \(i) changed")
        }
    }
}

/// For the exit handler, which cannot capture.
nonisolated(unsafe) private var fixtureDirectory: String?
