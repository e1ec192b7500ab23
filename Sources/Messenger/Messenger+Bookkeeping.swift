import Books
import Foundation
import Sodium

/// Flow 4, bookkeeping: a peer compiles a book of its own from pages copied out of the
/// task's books. Each copy is a `copy` page whose `refs[0]` pins the original (book, index,
/// page hash) and whose data carries the original bytes with the original author's signed
/// root and Merkle proof (`CopiedPage`), so every copy stays verifiable against the
/// original author's signature, by anyone, without the original book.
extension Messenger {
    static let compiledPrefix = "compiled:"

    /// Appends to the book `compiled:NAME` a copy of every message of the task that it does
    /// not hold yet, in log order (joins are not copied). Running it again later adds only
    /// the newer messages.
    public func compile(_ task: TaskID, into name: String) throws -> CompileResult {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw MessengerError(.invalidName, "a compiled book needs a name") }
        let book: Book
        do {
            book = try store.createOrOpen(name: Self.compiledPrefix + trimmed)
        } catch let error as BooksError where error.code == .invalidName {
            throw MessengerError(.invalidName, "cannot compile into \"\(trimmed)\": \(error.detail)")
        } catch let error as BooksError {
            // The store's failure (a full disk, …) as any write's: not a mistake in the name.
            throw MessengerError(.storage, error.file.map { "\(error.detail) (\($0))" } ?? error.detail)
        }
        var present: Set<[UInt8]> = []
        for check in try copies(in: book) { present.insert(check.ref.book + withUnsafeBytes(of: check.ref.index.littleEndian, Array.init)) }
        var specs: [PageSpec] = []
        var skipped = 0
        // Messages only, chats and files (a file's `file` page: its parts stay out, its hash
        // pins them): a compiled book is the conversation's record (PROTOCOL.md §10.2). A
        // file its author withdrew is not copied (a copy made before stays).
        for entry in try log(of: task) where entry.kind.isMessage && !entry.withdrawn {
            let source = try storage { try store.open(id: try BookID(hex: entry.book)) }
            let key = source.id.bytes + withUnsafeBytes(of: entry.index.littleEndian, Array.init)
            guard !present.contains(key) else { continue }
            guard let copy = try? CopiedPage(from: source, index: entry.index) else {
                // A forked book proves nothing any more: its pages are shown, not vouched for.
                skipped += 1
                continue
            }
            // The copy holds the whole original page and its proof: for a message near the
            // largest a page may hold (another client's; this one sends 64 KiB at most) that
            // is more than a copy page's data may be (§10.2).
            let data = copy.encodedData()
            guard data.count <= MessengerPage.maxDataLength else {
                skipped += 1
                continue
            }
            present.insert(key)
            specs.append(PageSpec(kind: .copy, data: data, refs: [copy.ref],
                                  fields: ["task": task.hex, "author": entry.author], time: entry.time))
        }
        if !specs.isEmpty { try append(specs, to: book) }
        record("compile", "\(specs.count) copies into \(Self.compiledPrefix)\(trimmed)" + (skipped > 0 ? ", \(skipped) skipped" : ""))
        return CompileResult(name: Self.compiledPrefix + trimmed, book: book.id.hex, copied: specs.count, length: book.length,
                             skipped: skipped)
    }

    /// Re-checks every copy of the compiled book `NAME` against its original author.
    public func checkCompiled(_ name: String) throws -> [CopyCheck] {
        let full = name.hasPrefix(Self.compiledPrefix) ? name : Self.compiledPrefix + name
        guard let book = try storage({ try store.book(named: full) }) else {
            throw MessengerError(.invalidName, "no compiled book \"\(name)\" here")
        }
        var checks: [CopyCheck] = []
        for index in 0..<book.contiguousLength {
            guard let bytes = try storage({ try book.get(index) }) else { continue }
            let copy = (try? MessengerPage(decoding: bytes)).flatMap(CopiedPage.init(page:))
            checks.append(CopyCheck(index: index, originalBook: copy.map { $0.ref.book.hexString } ?? "",
                                    originalIndex: copy?.ref.index ?? 0, authentic: copy?.isAuthentic ?? false))
        }
        return checks
    }

    private func copies(in book: Book) throws -> [CopiedPage] {
        try (0..<book.contiguousLength).compactMap { index in
            guard let bytes = try storage({ try book.get(index) }) else { return nil }
            return (try? MessengerPage(decoding: bytes)).flatMap(CopiedPage.init(page:))
        }
    }
}
