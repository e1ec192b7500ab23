import Books
import Foundation
import Sodium

// The process the crash test kills with SIGKILL at random moments.
//
//   books-crash-child DIRECTORY MASTER_SECRET_HEX single
//       appends one page at a time, printing each index as its append returns
//   books-crash-child DIRECTORY MASTER_SECRET_HEX batch SIZE
//       appends batches of SIZE pages, printing "batch END" as each returns
//   books-crash-child DIRECTORY MASTER_SECRET_HEX giveup SIZE
//       for n = 0, 1, …: writes the book "crash-giveup-n" (SIZE pages, one batch), printing
//       "written n", then gives it up (`Book.becomeReader`), printing "given up n"; a book
//       already given up (an earlier run's) is skipped, one half-way is finished
//   books-crash-child DIRECTORY MASTER_SECRET_HEX delete SIZE
//       for n = 0, 1, …: writes the books "crash-delete-PID-n-a" and "…-b" (SIZE pages each),
//       printing "written PID-n", then deletes both in one call (`BookStore.delete`),
//       printing "deleted PID-n"
//   books-crash-child DIRECTORY MASTER_SECRET_HEX read
//       opens the store as a command that only reads does (`readingIfUnwritable`: for
//       reading only if it cannot be written) and prints "read-write", or "read-only CODE"
//       and why; then "NAME LENGTH pages ok" for each book, once every page is what the
//       other modes wrote and the book verifies; then tries one more append, printing
//       "append ok" or "append refused CODE"
//
// Page i's bytes are `CrashPage.bytes(i)`, so the test can check every page it finds.
// Runs until killed (or 1 000 000 pages, so a lost child cannot fill the disk).

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("books-crash-child: \(message)\n".data(using: .utf8)!)
    exit(2)
}

/// Deterministic page contents: the index and a filler whose length depends on it.
func pageBytes(_ index: UInt64) -> [UInt8] {
    var bytes = Array("page \(index) ".utf8)
    bytes += [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: Int(index % 300))
    return bytes
}

/// One line on stdout with one write(2), so the test sees it as soon as the append returned.
func report(_ line: String) {
    FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}

let arguments = CommandLine.arguments
guard arguments.count >= 4, let secretBytes = [UInt8](hex: arguments[2]), secretBytes.count == 32 else {
    fail("usage: books-crash-child DIRECTORY MASTER_SECRET_HEX single|batch SIZE|giveup SIZE|delete SIZE|read")
}
let limit: UInt64 = 1_000_000
do {
    if arguments[3] == "read" {
        let store = try BookStore.open(directory: arguments[1], masterSecret: SecretBytes(copying: secretBytes), readingIfUnwritable: true)
        report(store.writeRefusal.map { "read-only \($0.code) \($0.detail)" } ?? "read-write")
        for entry in try store.list() {
            guard let book = try store.book(id: entry.id) else { fail("book \(entry.id) vanished") }
            for index in 0..<book.length where try book.get(index) != pageBytes(index) { fail("page \(index) of \(entry.name ?? "?") differs") }
            try book.verify()
            report("\(entry.name ?? "?") \(entry.length) pages ok")
        }
        do {
            let book = try store.createOrOpen(name: "crash-test-book")
            try book.append(pageBytes(book.length))
            report("append ok")
        } catch let error as BooksError {
            report("append refused \(error.code)")
        }
        store.close()
        exit(0)
    }
    let store = try BookStore.open(directory: arguments[1], masterSecret: SecretBytes(copying: secretBytes))
    if arguments[3] == "giveup" {
        guard arguments.count == 5, let size = UInt64(arguments[4]), size > 0 else { fail("giveup needs a SIZE") }
        for n in 0..<100_000 {
            let name = "crash-giveup-\(n)"
            if let done = try store.book(named: name), !done.isWritable { continue }
            let book = try store.createOrOpen(name: name)
            if book.length == 0 {
                try book.append(contentsOf: (0..<size).map(pageBytes))
                report("written \(n)")
            }
            try book.becomeReader()
            report("given up \(n)")
        }
        exit(0)
    }
    if arguments[3] == "delete" {
        guard arguments.count == 5, let size = UInt64(arguments[4]), size > 0 else { fail("delete needs a SIZE") }
        let run = getpid()
        for n in 0..<100_000 {
            let books = try ["a", "b"].map { try store.createOrOpen(name: "crash-delete-\(run)-\(n)-\($0)") }
            for book in books { try book.append(contentsOf: (0..<size).map(pageBytes)) }
            report("written \(run)-\(n)")
            try store.delete(books.map(\.id))
            report("deleted \(run)-\(n)")
        }
        exit(0)
    }
    let book = try store.createOrOpen(name: "crash-test-book")
    switch arguments[3] {
    case "single":
        while book.length < limit {
            let index = try book.append(pageBytes(book.length))
            report("\(index)")
        }
    case "batch":
        guard arguments.count == 5, let size = UInt64(arguments[4]), size > 0 else { fail("batch needs a SIZE") }
        while book.length < limit {
            let start = book.length
            let range = try book.append(contentsOf: (start..<(start + size)).map(pageBytes))
            report("batch \(range.upperBound)")
        }
    default:
        fail("unknown mode \(arguments[3])")
    }
} catch {
    fail("\(error)")
}
