import Books
import Foundation
import Sodium
import Testing

/// Crash safety with real processes: `books-crash-child` appends in a loop and prints each
/// index (or batch end) once its append has returned; the test kills it with SIGKILL at a
/// random moment, reopens the store and checks that everything reported is there and the
/// book verifies. Batches must be all or nothing.
@Suite("Crash safety", .serialized) struct CrashTests {
    static let secretHex = String(repeating: "5a", count: 32)
    static let rounds = 30

    /// Page i's bytes, as the child writes them (Sources/BooksCrashChild/main.swift).
    static func childPage(_ index: UInt64) -> [UInt8] {
        var bytes = Array("page \(index) ".utf8)
        bytes += [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: Int(index % 300))
        return bytes
    }

    /// The child executable: `$BOOKSWARM_BIN` (set by Tools/test), else beside the running
    /// test binary (SwiftPM puts both in the same bin directory), else what
    /// `swift build --show-bin-path` names.
    static func childExecutable() throws -> String {
        let name = "books-crash-child"
        var candidates: [String] = []
        if let bin = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"] { candidates.append("\(bin)/\(name)") }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
            // On Linux the test binary is `<bin>/BookswarmPackageTests.xctest`; elsewhere it
            // may sit inside a bundle: walk up a few levels.
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent(name).path)
                dir.deleteLastPathComponent()
            }
        }
        if let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return path }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "build", "--package-path", package.path, "--show-bin-path"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let path = output.trimmingCharacters(in: .whitespacesAndNewlines) + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CrashTestFailure(description: "\(name) not found (build it: swift build --product \(name)); looked in \(candidates + [path])")
        }
        return path
    }

    struct CrashTestFailure: Error, CustomStringConvertible { let description: String }

    /// Runs the child until it has reported something, lets it run a random while longer,
    /// kills it with SIGKILL and returns the complete lines it printed.
    static func runAndKill(_ executable: String, _ arguments: [String], rng: inout SystemRandomNumberGenerator) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = pipe.fileHandleForReading
        var output = Data()
        let deadline = Date().addingTimeInterval(20)
        // Wait for the first report, so that every round kills a child mid-work.
        while !output.contains(UInt8(ascii: "\n")) {
            let chunk = reader.availableData
            if chunk.isEmpty || Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw CrashTestFailure(description: "the child reported nothing (exit status \(process.terminationStatus))")
            }
            output.append(chunk)
        }
        usleep(UInt32.random(in: 0...80_000, using: &rng))
        kill(process.processIdentifier, SIGKILL)
        output.append(reader.readDataToEndOfFile())
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
        // A line without its newline was cut by the kill; it does not count.
        let text = String(decoding: output, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func everyReportedAppendSurvivesSIGKILL() throws {
        let executable = try Self.childExecutable()
        let dir = TemporaryDirectory("crash")
        defer { dir.remove() }
        var rng = SystemRandomNumberGenerator()
        var reported: UInt64 = 0  // pages reported in all rounds so far
        for round in 0..<Self.rounds {
            let lines = try Self.runAndKill(executable, [dir.path, Self.secretHex, "single"], rng: &rng)
            let indices = lines.compactMap { UInt64($0) }
            #expect(indices.count == lines.count, "round \(round): unexpected output \(lines.prefix(3))")
            if let last = indices.last { reported = max(reported, last + 1) }
            let store = try BookStore.open(directory: dir.path, masterSecret: SecretBytes(copying: [UInt8](hex: Self.secretHex)!))
            let book = try #require(try store.book(named: "crash-test-book"))
            // Everything reported is there (an append in flight may or may not be).
            #expect(book.length >= reported, "round \(round): length \(book.length) < reported \(reported)")
            for i in indices { #expect(try book.get(i) == Self.childPage(i)) }
            try book.verify()
            reported = book.length
            store.close()
        }
        #expect(reported > UInt64(Self.rounds))
    }

    @Test func aBatchKilledMidWayIsAllOrNothing() throws {
        let executable = try Self.childExecutable()
        let dir = TemporaryDirectory("crash-batch")
        defer { dir.remove() }
        var rng = SystemRandomNumberGenerator()
        let size: UInt64 = 64
        var reported: UInt64 = 0
        for round in 0..<Self.rounds {
            let lines = try Self.runAndKill(executable, [dir.path, Self.secretHex, "batch", "\(size)"], rng: &rng)
            let ends = lines.compactMap { $0.hasPrefix("batch ") ? UInt64($0.dropFirst(6)) : nil }
            #expect(ends.count == lines.count, "round \(round): unexpected output \(lines.prefix(3))")
            if let last = ends.last { reported = max(reported, last) }
            let store = try BookStore.open(directory: dir.path, masterSecret: SecretBytes(copying: [UInt8](hex: Self.secretHex)!))
            let book = try #require(try store.book(named: "crash-test-book"))
            #expect(book.length >= reported)
            #expect(book.length % size == 0, "round \(round): length \(book.length) is not a whole number of batches")
            #expect(book.contiguousLength == book.length)
            #expect(try book.get(book.length) == nil)
            if book.length > 0 {
                #expect(try book.get(book.length - 1) == Self.childPage(book.length - 1))
                #expect(try book.signedRoot(atLength: book.length)?.isValid == true)
            }
            try book.verify()
            reported = book.length
            store.close()
        }
        #expect(reported >= size * UInt64(Self.rounds))
    }

    /// Giving a book up (`Book.becomeReader`, PROTOCOL.md §4.7) is one transaction: killed in
    /// the middle, the book is as it was (writable, every page there, verifying) or given up
    /// (read-only, nothing held, no root); never a book with some pages gone.
    @Test func aBookGivenUpMidWayIsAsBeforeOrEmpty() throws {
        let executable = try Self.childExecutable()
        let dir = TemporaryDirectory("crash-giveup")
        defer { dir.remove() }
        var rng = SystemRandomNumberGenerator()
        let size: UInt64 = 400
        var givenUp: Set<Int> = [], written: Set<Int> = []
        var seenWhole = 0
        for round in 0..<Self.rounds {
            let lines = try Self.runAndKill(executable, [dir.path, Self.secretHex, "giveup", "\(size)"], rng: &rng)
            for line in lines {
                if line.hasPrefix("written "), let n = Int(line.dropFirst(8)) { written.insert(n) }
                else if line.hasPrefix("given up "), let n = Int(line.dropFirst(9)) { givenUp.insert(n) }
                else { Issue.record("round \(round): unexpected output \(line)") }
            }
            let store = try BookStore.open(directory: dir.path, masterSecret: SecretBytes(copying: [UInt8](hex: Self.secretHex)!))
            for entry in try store.list() {
                guard let name = entry.name, name.hasPrefix("crash-giveup-"), let n = Int(name.dropFirst(13)) else { continue }
                let book = try store.open(id: entry.id)
                if book.isWritable {
                    // Not given up yet: whole (or, before its one append returned, empty).
                    #expect(!givenUp.contains(n), "round \(round): \(name) was reported given up but is writable")
                    #expect(book.length == size || (book.length == 0 && !written.contains(n)),
                            "round \(round): \(name) is writable with \(book.length) pages")
                    #expect(book.contiguousLength == book.length && book.forkProof == nil)
                    if book.length == size {
                        #expect(try book.get(size - 1) == Self.childPage(size - 1))
                        seenWhole += 1
                    }
                } else {
                    #expect(book.length == 0 && book.signedRoot == nil && book.heldRanges().isEmpty,
                            "round \(round): \(name) is given up but holds \(book.heldRanges().count) pages, length \(book.length)")
                    #expect(try book.get(0) == nil)
                }
                try book.verify()
            }
            store.close()
        }
        #expect(givenUp.count > Self.rounds)
        #expect(seenWhole > 0, "no round was killed between a book's append and its giving up")
    }

    /// Deleting books (`BookStore.delete`, PROTOCOL.md §4.8) is one transaction: killed in
    /// the middle, a pair deleted together is there whole or gone entirely, and no page row
    /// outlives its book.
    @Test func booksDeletedTogetherAreAllThereOrAllGone() throws {
        let executable = try Self.childExecutable()
        let dir = TemporaryDirectory("crash-delete")
        defer { dir.remove() }
        var rng = SystemRandomNumberGenerator()
        let size: UInt64 = 300
        var written: Set<String> = [], deleted: Set<String> = []
        var seenWhole = 0
        for round in 0..<Self.rounds {
            let lines = try Self.runAndKill(executable, [dir.path, Self.secretHex, "delete", "\(size)"], rng: &rng)
            for line in lines {
                if line.hasPrefix("written ") { written.insert(String(line.dropFirst(8))) }
                else if line.hasPrefix("deleted ") { deleted.insert(String(line.dropFirst(8))) }
                else { Issue.record("round \(round): unexpected output \(line)") }
            }
            let store = try BookStore.open(directory: dir.path, masterSecret: SecretBytes(copying: [UInt8](hex: Self.secretHex)!))
            var pairs: [String: [String: Book]] = [:]
            var held: UInt64 = 0
            for entry in try store.list() {
                guard let name = entry.name, name.hasPrefix("crash-delete-") else { continue }
                let book = try store.open(id: entry.id)
                pairs[String(name.dropFirst(13).dropLast(2)), default: [:]][String(name.suffix(1))] = book
                held += book.heldRanges().count
            }
            for pair in written {
                let books = pairs[pair] ?? [:]
                if deleted.contains(pair) {
                    #expect(books.isEmpty, "round \(round): \(pair) was reported deleted but \(books.keys.sorted()) remain")
                } else {
                    // Written, and killed before or after its deletion committed.
                    #expect(books.isEmpty || (books.count == 2 && books.values.allSatisfy { $0.length == size }),
                            "round \(round): \(pair) holds \(books.mapValues(\.length))")
                    if books.count == 2 { seenWhole += 1 }
                }
            }
            store.close()
            // Every page row belongs to a book that is there.
            #expect(try RawSQLite.integer(dir.path + "/books.sqlite", "SELECT count(*) FROM page") == Int64(held))
        }
        #expect(deleted.count > Self.rounds)
        // How often a kill fell between a pair's last append and its deletion's commit
        // depends on the timing; the rounds above check whichever way each one fell.
        print("delete crash rounds: \(written.count) pairs written, \(deleted.count) deleted, \(seenWhole) seen whole after a kill")
    }
}
