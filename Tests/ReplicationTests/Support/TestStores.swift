import Books
import Foundation
import Sodium
import Swarm
@testable import Replication

/// A temporary directory removed when the value is released.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init(_ label: String = "replication") {
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func sub(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixtures {
    static let secret = [UInt8](repeating: 7, count: 32)
    static let policy = ReplicationPolicy.sharedSecret(secret)

    static func store(_ directory: String, seed: UInt8 = 1) throws -> BookStore {
        try BookStore.open(directory: directory, masterSecret: SecretBytes(copying: [UInt8](repeating: seed, count: 32)))
    }

    /// Page `i` of a test book: `size` bytes derived from `i`, so any page can be checked.
    static func page(_ i: UInt64, size: Int = 1024) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        var x = i &* 0x9E37_79B9_7F4A_7C15 &+ 1
        for j in 0..<size {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            bytes[j] = UInt8(truncatingIfNeeded: x)
        }
        return bytes
    }

    /// An author's book of `count` pages appended in batches.
    static func authorBook(_ store: BookStore, name: String = "ana-bob-task", count: UInt64, size: Int = 1024,
                           batch: UInt64 = 1000) throws -> Book {
        let book = try store.createOrOpen(name: name)
        var i = book.length
        while i < count {
            let end = min(count, i + batch)
            try book.append(contentsOf: (i..<end).map { page($0, size: size) })
            i = end
        }
        return book
    }

    static func peer(_ seed: UInt8) -> PeerID {
        PeerID(try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: seed, count: 32))).publicKey)
    }

    static let handshakeHash = [UInt8](repeating: 0xAB, count: 64)

    /// Two bindings of one session: A the initiator, B the responder.
    static func bindings() -> (a: SessionBinding, b: SessionBinding) {
        (SessionBinding(remote: peer(2), handshakeHash: handshakeHash, localRole: .initiator),
         SessionBinding(remote: peer(1), handshakeHash: handshakeHash, localRole: .responder))
    }

    /// Checks every page of `book` against the generator and the book's own `verify()`.
    static func checkIdentical(_ book: Book, count: UInt64, size: Int = 1024) throws -> Bool {
        guard book.length == count, book.contiguousLength == count else { return false }
        var i: UInt64 = 0
        while i < count {
            let end = min(count, i + 5000)
            let pages = try book.pages(in: i..<end)
            for (offset, p) in pages.enumerated() where p != page(i + UInt64(offset), size: size) { return false }
            i = end
        }
        try book.verify()
        return true
    }
}
