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
struct ReplicationWorkFloor {
    var pageSize: Int
    var cores: Int
    /// Milliseconds of CPU per MB (10⁶ bytes) of pages.
    var read = 0.0, seal = 0.0, open = 0.0, hash = 0.0, write = 0.0, move = 0.0

    var total: Double { read + seal + open + hash + write + move }
    /// The best replication rate this work allows on `cores` cores, in bytes/s.
    var ceilingBytesPerSecond: Double { Double(cores) * 1e9 / total }

    var description: String {
        String(format: "read %.2f, seal %.2f, open %.2f, hash %.2f, write %.2f, move %.2f = %.2f ms of CPU per MB; %d cores → ceiling %.0f MB/s",
               read, seal, open, hash, write, move, total, cores, ceilingBytesPerSecond / 1e6)
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
        let plain = try PlainSQLite(directory: directory, synchronous: "NORMAL")
        defer {
            plain.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        try plain.exec("PRAGMA mmap_size = 1073741824")
        let perAnswer = max(1, answerBytes / pageSize)
        floor.write = try cpu {
            var i = 0
            while i < count {
                let end = min(count, i + perAnswer)
                try plain.insert(pages[i..<end])
                i = end
            }
            try plain.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        }
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
