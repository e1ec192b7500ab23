import Foundation
import Testing

/// Runs the `bookswarm-demo` executable (Tools/demo) as a real process: two peers, Noise IK
/// and XX over UDP on 127.0.0.1. Tools/test sets BOOKSWARM_BIN to the built products.
@Suite("bookswarm-demo over UDP loopback")
struct DemoTests {
    static let binary: URL? = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"].map {
        URL(fileURLWithPath: $0).appendingPathComponent("bookswarm-demo")
    }
    static var available: Bool { binary.map { FileManager.default.isExecutableFile(atPath: $0.path) } ?? false }

    @Test("the demo completes both handshakes and the encrypted exchange", .timeLimit(.minutes(1)),
          .enabled(if: available, "BOOKSWARM_BIN/bookswarm-demo not found (run through Tools/test): demo test skipped"))
    func demo() throws {
        let process = Process()
        process.executableURL = Self.binary
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("Noise_IK_25519_ChaChaPoly_BLAKE2b"))
        #expect(text.contains("Noise_XX_25519_ChaChaPoly_BLAKE2b"))
        #expect(text.components(separatedBy: "handshake complete").count == 3)
        #expect(text.contains("demo complete"))
    }
}
