import Foundation

/// Published test vectors, loaded by one generic helper. Files live in the project's shared
/// directory beside the repository (`<repo>/../shared/vectors/`), so a missing file is a
/// clear skip, not a failure.
enum TestVectors {
    /// The repository root, found from this file's path (`<root>/Tests/NoiseTests/…`).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func sharedFile(_ name: String) -> URL {
        repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/vectors/\(name)")
    }

    static func exists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: sharedFile(name).path)
    }

    /// Decodes the JSON file `name` as `T`; nil when the file is not there.
    static func load<T: Decodable>(_ type: T.Type, from name: String) throws -> T? {
        let url = sharedFile(name)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }
}

/// A hex string in a vector file, decoded as bytes.
struct HexBytes: Decodable, Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 2)
        var high: UInt8?
        for c in text.utf8 {
            guard let v = Self.nibble(c) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not hex: \(text)"))
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        guard high == nil else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "odd-length hex"))
        }
        bytes = out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    var description: String { bytes.map { String(format: "%02x", $0) }.joined() }
}
