import Books
import Foundation
import Replication
import Sodium
import SwarmNIO

/// What replicating pages costs on this machine when nothing but the work itself is done:
/// each primitive that a page's bytes pass through between the author's store and the
/// reader's, measured bare and one after the other, in CPU time per MB of pages —
///
/// * **read**: a plain SQLite select of each page by id, through a memory map (the author
///   serving it);
/// * **seal** and **open**: ChaCha20-Poly1305 of 1100-byte channel messages with a 16-byte
///   header as associated data, one per `ReplicationWire.fragmentPayload` bytes of pages
///   (the session, both ends);
/// * **hash**: BLAKE2b-256 of each page's leaf and of one parent per page (the reader
///   rebuilding the answer's subtree to check it against the signed root);
/// * **write**: plain SQLite inserts, one transaction per 256 KiB answer, WAL,
///   `synchronous=NORMAL`, and the checkpoints that copy the WAL into the database;
/// * **move**: raw SwiftNIO UDP over loopback with the kernel's segmentation and receive
///   offloads (the cheapest way NIO moves datagrams; what `UDPTransport` uses): CPU of the
///   whole process while two sockets blast datagrams of the session's size (1135 bytes),
///   per MB of pages they would carry (`fragmentPayload` bytes each).
///
/// Their sum bounds any implementation that does this work: with every core busy all the
/// time and nothing else to do, `cores / total` MB per ms. It leaves out what no
/// implementation can avoid either but is hard to isolate (the Merkle proofs the author
/// sends, the Ed25519 verification of each signed root, framing, waking threads), so the
/// ceiling is optimistic.
///
/// Beside the floor it measures the reader's store doing its part, **store**: the same pages,
/// as the answers of 256 KiB a reader receives (pages and Merkle proof, against the author's
/// signed root), given to `Book.apply` of a fresh store — verification, hashing, the
/// transaction, the store's background checkpoints and a last one. Its bare counterpart is
/// *write* + *hash*; the two are measured in turn (write, store, write, store, write: the first
/// write unmeasured), and averaged, as this machine's file writes cost more or less from one
/// second to the next.
struct ReplicationWorkFloor {
    var pageSize: Int
    var cores: Int
    /// Milliseconds of CPU per MB (10⁶ bytes) of pages.
    var read = 0.0, seal = 0.0, open = 0.0, hash = 0.0, write = 0.0, move = 0.0
    /// The reader's store storing the pages (not part of the floor: see above).
    var store = 0.0

    var total: Double { read + seal + open + hash + write + move }
    /// The best replication rate this work allows on `cores` cores, in bytes/s.
    var ceilingBytesPerSecond: Double { Double(cores) * 1e9 / total }

    var description: String {
        String(format: "read %.2f, seal %.2f, open %.2f, hash %.2f, write %.2f, move %.2f = %.2f ms of CPU per MB; %d cores → ceiling %.0f MB/s; the reader's store %.2f ms per MB (write + hash %.2f)",
               read, seal, open, hash, write, move, total, cores, ceilingBytesPerSecond / 1e6, store, write + hash)
    }

    static let channelMessage = ReplicationWire.maxMessage
    /// Page bytes that one data message carries (the rest is the fragment's header).
    static let pageBytesPerMessage = ReplicationWire.fragmentPayload
    /// A sealed 1100-byte channel message in its transport packet.
    static let datagramSize = 1135
    static let answerBytes = 256 * 1024

    static func measure(pageSize: Int, directory: String, megabytes: Int = 32) async throws -> ReplicationWorkFloor {
        var floor = ReplicationWorkFloor(pageSize: pageSize, cores: ProcessInfo.processInfo.activeProcessorCount)
        let count = megabytes * 1_000_000 / pageSize
        let pages = (0..<count).map { ReplicationBench.page(UInt64($0), size: pageSize) }
        let megabytesMoved = Double(count * pageSize) / 1e6
        func cpu(_ body: () throws -> Void) rethrows -> Double {
            let start = processCPUSeconds()
            try body()
            return (processCPUSeconds() - start) * 1000 / megabytesMoved
        }

        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let perAnswer = max(1, answerBytes / pageSize)
        /// Writes every page into a fresh plain database in `name`.
        func writePlain(_ name: String) throws -> (PlainSQLite, Double) {
            let plain = try PlainSQLite(directory: directory + "/" + name, synchronous: "NORMAL")
            do {
                try plain.exec("PRAGMA mmap_size = 1073741824")
                let spent = try cpu {
                    var i = 0
                    while i < count {
                        let end = min(count, i + perAnswer)
                        try plain.insert(pages[i..<end])
                        i = end
                    }
                    try plain.exec("PRAGMA wal_checkpoint(TRUNCATE)")
                }
                return (plain, spent)
            } catch {
                plain.close()
                throw error
            }
        }
        let answers = try StoreAnswers(pages: pages, perAnswer: perAnswer, directory: directory + "/author")
        defer { answers.close() }
        var round = 0
        func applyToStore() throws -> Double {
            round += 1
            let readerDirectory = directory + "/reader\(round)"
            let reader = try BookStore.open(directory: readerDirectory, masterSecret: SecretBytes(copying: [UInt8](repeating: 2, count: 32)))
            defer {
                reader.close()
                try? FileManager.default.removeItem(atPath: readerDirectory)
            }
            let copy = try reader.open(id: answers.book)
            return try cpu {
                for answer in answers.answers {
                    _ = try copy.apply(signedRoot: answers.root, proof: answer.proof, pageViews: answer.pages)
                }
                try reader.checkpoint()
            }
        }
        // Rounds in turn, each database deleted before the next round: every round after the
        // first unmeasured one writes into page cache that the round before freed. (On this
        // VM the first touch of memory it has not used for a while costs several times
        // more, and would fall on whichever round came first.)
        func discard(_ round: (PlainSQLite, Double), _ name: String) -> Double {
            round.0.close()
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
            return round.1
        }
        _ = try discard(writePlain("plain0"), "plain0")
        let store1 = try applyToStore()
        let write1 = try discard(writePlain("plain1"), "plain1")
        let store2 = try applyToStore()
        let (plain, write2) = try writePlain("plain2")
        defer { plain.close() }
        floor.store = (store1 + store2) / 2
        floor.write = (write1 + write2) / 2
        // (libsodium's and SQLite's calls are opaque to the optimizer: no loop below is elided.)
        floor.read = try cpu {
            for id in 1...count { _ = try plain.read(Int64(id)) { $0.first } }
        }

        let key = SecretBytes(randomCount: ChaChaPoly.keyLength)
        let header = [UInt8](repeating: 0x17, count: 16)
        let plaintext = [UInt8](repeating: 0xA5, count: channelMessage)
        var sealed = [UInt8](repeating: 0, count: channelMessage + ChaChaPoly.tagLength)
        var opened = [UInt8](repeating: 0, count: channelMessage)
        let messages = (count * pageSize + pageBytesPerMessage - 1) / pageBytesPerMessage
        header.withUnsafeBytes { ad in
            plaintext.withUnsafeBytes { p in
                sealed.withUnsafeMutableBytes { s in
                    floor.seal = cpu {
                        for n in 0..<messages { ChaChaPoly.seal(key: key, counter: UInt64(n), associatedData: ad, plaintext: p, into: s) }
                    }
                }
            }
        }
        try header.withUnsafeBytes { ad in
            try sealed.withUnsafeBytes { s in
                try opened.withUnsafeMutableBytes { o in
                    floor.open = try cpu {
                        for _ in 0..<messages { try ChaChaPoly.open(key: key, counter: UInt64(messages - 1), associatedData: ad, ciphertext: s, into: o) }
                    }
                }
            }
        }

        var digest = [UInt8](repeating: 0, count: 32)
        let parent = [UInt8](repeating: 0x3C, count: 64)
        digest.withUnsafeMutableBytes { out in
            floor.hash = cpu {
                for page in pages {
                    var leaf = BLAKE2b(outputLength: 32)
                    leaf.update(byte: 0)
                    leaf.update(uint64: UInt64(page.count))
                    leaf.update(page)
                    leaf.finalize(into: out)
                    var node = BLAKE2b(outputLength: 32)
                    node.update(byte: 1)
                    node.update(parent)
                    node.finalize(into: out)
                }
            }
        }

        let start = processCPUSeconds()
        let udp = try await RawUDPFloor.measure(datagramSize: datagramSize, duration: .seconds(1), offload: true)
        let udpSeconds = processCPUSeconds() - start
        floor.move = udpSeconds * 1000 / (Double(udp.datagramsReceived) * Double(pageBytesPerMessage) / 1e6)
        return floor
    }
}

/// A book of the floor's pages in an author's store, and the answers a reader gets for it:
/// `perAnswer` pages each with their proof (the first upgrading the reader from nothing).
private final class StoreAnswers {
    let store: BookStore
    let book: BookID
    let root: SignedRoot
    let answers: [(proof: MerkleProof, pages: [ArraySlice<UInt8>])]
    let directory: String

    init(pages: [[UInt8]], perAnswer: Int, directory: String) throws {
        self.directory = directory
        store = try BookStore.open(directory: directory, masterSecret: SecretBytes(copying: [UInt8](repeating: 1, count: 32)))
        let book = try store.createOrOpen(name: "work-floor")
        try book.append(contentsOf: pages)
        let length = UInt64(pages.count)
        guard let root = try book.signedRoot(atLength: length) else { throw BenchFailure("the author holds no root at \(length)") }
        var answers: [(proof: MerkleProof, pages: [ArraySlice<UInt8>])] = []
        var i = 0
        while i < pages.count {
            let end = min(pages.count, i + perAnswer)
            let proof = try book.proof(for: UInt64(i)..<UInt64(end), atLength: length, upgradingFrom: i == 0 ? 0 : length)
            answers.append((proof, pages[i..<end].map { $0[...] }))
            i = end
        }
        self.book = book.id
        self.root = root
        self.answers = answers
    }

    func close() {
        store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
