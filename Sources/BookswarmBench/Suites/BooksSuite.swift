import Books
import CSQLite
import Foundation
import Sodium

/// `Tools/bench books`: the book store against plain SQLite and Ed25519 measured in the
/// same run. Appends are durable (WAL, synchronous=FULL) on both sides, in the same
/// transaction sizes, with the same page bytes.
var booksSuite: Suite { Suite(name: "books", summary: "book appends vs plain SQLite inserts, reads, proofs, Ed25519", run: runBooksSuite) }

private func runBooksSuite() async throws {
    let root = NSTemporaryDirectory() + "bookswarm-bench-books-\(getpid())"
    try? FileManager.default.removeItem(atPath: root)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let secret = SecretBytes(randomCount: 32)

    // Floors: Ed25519 on a 89-byte message, the size of a signed root's signable.
    let keyPair = Ed25519.KeyPair.generate()
    let message = [UInt8](repeating: 0x5a, count: SignedRoot.signableLength)
    let signature = keyPair.sign(message)
    Report.result("books.ed25519.sign", measureRate(seconds: 1) { _ = keyPair.sign(message) }, "ops/s")
    Report.result("books.ed25519.verify", measureRate(seconds: 1) { _ = keyPair.publicKey.isValidSignature(signature, for: message) }, "ops/s")

    // The fsync-bound single-page runs go first: on the test VM (ext4 with online
    // discard) fsync times stay erratic for a while after a run has written and deleted
    // ~150 MB, which would measure the file system's clean-up rather than the store.
    for batch in [1, 100, 10_000] {
        for size in [100, 1024] {
            let pages = (0..<batch).map { i in (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) } }
            // Single-page commits wait for an fsync each: fewer seconds would be all noise.
            let seconds = batch == 1 ? 3.0 : 2.0
            let plain = try PlainSQLite(directory: "\(root)/plain-\(size)-\(batch)")
            let store = try BookStore.open(directory: "\(root)/book-\(size)-\(batch)", masterSecret: secret)
            let book = try store.createOrOpen(name: "bench-\(size)-\(batch)")
            let (floor, ours) = try measureInterleaved(seconds: seconds, operationsPerCall: batch,
                                                       { try plain.insert(pages) }, { try book.append(contentsOf: pages) })
            Report.result("books.append.\(size)B.batch\(batch)", ours, "pages/s", floor: floor)
            store.close()
            plain.close()
            // Start the next configuration with no dirty pages of this one in flight.
            try? FileManager.default.removeItem(atPath: "\(root)/plain-\(size)-\(batch)")
            try? FileManager.default.removeItem(atPath: "\(root)/book-\(size)-\(batch)")
            sync()
        }
    }

    // Reads and proofs on a book of 100 000 pages of 1 KiB.
    let store = try BookStore.open(directory: "\(root)/reads", masterSecret: secret)
    let book = try store.createOrOpen(name: "reads")
    let count: UInt64 = 100_000
    var next: UInt64 = 0
    while next < count {
        try book.append(contentsOf: (next..<(next + 10_000)).map { i in [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 1024) })
        next += 10_000
    }
    let signedRoot = book.signedRoot!
    var rng = SystemRandomNumberGenerator()
    let reads = try measureRate(seconds: 1) { _ = try book.get(UInt64.random(in: 0..<count, using: &rng)) }
    Report.result("books.get.1KiB", reads, "pages/s")
    let proofs = try measureRate(seconds: 1) { _ = try book.proof(for: UInt64.random(in: 0..<count, using: &rng)) }
    Report.result("books.proof.create", proofs, "proofs/s")
    let sample = try (0..<256).map { _ in
        let i = UInt64.random(in: 0..<count, using: &rng)
        return (try book.proof(for: i), try book.get(i)!)
    }
    var k = 0
    let verifications = measureRate(seconds: 1) {
        let (proof, page) = sample[k & 255]
        k += 1
        precondition(proof.verifies(pages: [page], against: signedRoot))
    }
    Report.result("books.proof.verify", verifications, "proofs/s")
    // A verified read: fetch a page and its proof, check both against the signed root.
    let verifiedReads = try measureRate(seconds: 1) {
        let i = UInt64.random(in: 0..<count, using: &rng)
        let page = try book.get(i)!
        let proof = try book.proof(for: i)
        precondition(proof.verifies(pages: [page], against: signedRoot))
    }
    Report.result("books.verified-read.1KiB", verifiedReads, "pages/s")
    store.close()
}

/// Rates (operations/s) of `a` and `b`, measured call by call in turn (a b, b a, a b, …)
/// so that both see the same disk and the same neighbours: on a shared machine an fsync
/// takes 0.1 ms one second and 3 ms the next, and two blocks measured apart would compare
/// two different machines. Each rate is the calls over the total time spent in them.
private func measureInterleaved(seconds: Double, operationsPerCall: Int,
                                _ a: () throws -> Void, _ b: () throws -> Void) throws -> (Double, Double) {
    try a()
    try b()
    var timeA = 0.0
    var timeB = 0.0
    var calls = 0
    let start = now()
    repeat {
        let aFirst = calls % 2 == 0
        let t0 = now()
        if aFirst { try a() } else { try b() }
        let t1 = now()
        if aFirst { try b() } else { try a() }
        let t2 = now()
        timeA += aFirst ? t1 - t0 : t2 - t1
        timeB += aFirst ? t2 - t1 : t1 - t0
        calls += 1
    } while now() - start < seconds
    return (Double(calls * operationsPerCall) / timeA, Double(calls * operationsPerCall) / timeB)
}
