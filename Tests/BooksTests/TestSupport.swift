import Books
import Foundation
import Sodium

/// A fresh directory under the system temp directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "books") {
        path = NSTemporaryDirectory() + "bookswarm-\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    var databaseFile: String { path + "/" + BookStore.fileName }
}

/// A fixed master secret per seed byte, so tests are reproducible.
func masterSecret(_ seed: UInt8 = 1) -> SecretBytes {
    SecretBytes(copying: (0..<32).map { UInt8($0) &+ seed &* 31 })
}

/// Deterministic page contents for page `index` of `size` bytes (at least 8).
func testPage(_ index: UInt64, size: Int = 40) -> [UInt8] {
    var bytes = withUnsafeBytes(of: index.littleEndian) { Array($0) }
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: bytes.count &* 7 &+ Int(index))) }
    return Array(bytes.prefix(max(size, 8)))
}

/// Opens a store in `directory` with the given master secret (throws as `open` does).
func openStore(_ directory: TemporaryDirectory, secret: UInt8 = 1) throws -> BookStore {
    try BookStore.open(directory: directory.path, masterSecret: masterSecret(secret))
}
