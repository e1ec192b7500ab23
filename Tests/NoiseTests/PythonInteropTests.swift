import Foundation
import Noise
import Sodium
import Testing

/// Interop with an independent implementation: PyPI's `noiseprotocol`, driven through
/// Tests/Interop/noise_peer.py over its stdin/stdout (hex lines). Static keys come from
/// Ed25519 identities on both sides, converted by libsodium here and by pynacl there.
@Suite("Noise interop with Python noiseprotocol")
struct PythonInteropTests {
    static let script = TestVectors.repositoryRoot.appendingPathComponent("Tests/Interop/noise_peer.py")

    /// Whether python3 with `noise` and `nacl` is present (Tools/test installs them; CI has them).
    static let pythonAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import noise, nacl"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return false }
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            print("interop: python3 with noiseprotocol and pynacl not available: interop tests skipped")
        }
        return process.terminationStatus == 0
    }()

    struct Case: CustomTestStringConvertible, Sendable {
        let pattern: String
        let swiftIsInitiator: Bool
        var testDescription: String { "\(pattern), Swift \(swiftIsInitiator ? "initiator" : "responder")" }
    }

    static let cases = ["IK", "XX"].flatMap { p in [true, false].map { Case(pattern: p, swiftIsInitiator: $0) } }

    @Test("full handshake and transport both ways against noiseprotocol", .timeLimit(.minutes(1)),
          .enabled(if: pythonAvailable, "python3 with noiseprotocol and pynacl is missing: interop skipped"),
          arguments: cases)
    func interop(_ c: Case) throws {
        let pattern = try #require(NoisePattern.named(c.pattern))
        let swiftIdentity = Fixtures.ed25519(c.swiftIsInitiator ? 0xA1 : 0xB2)
        let pythonIdentity = Fixtures.ed25519(c.swiftIsInitiator ? 0xB2 : 0xA1)
        let prologue = Array("bookswarm interop".utf8)

        var arguments = ["--pattern", c.pattern, "--role", c.swiftIsInitiator ? "responder" : "initiator",
                         "--seed", pythonIdentity.seed.unsafeArray.hexString, "--prologue", prologue.hexString]
        if pattern == .IK && !c.swiftIsInitiator { arguments += ["--remote-id", swiftIdentity.publicKey.hex] }
        let python = try PythonPeer(script: Self.script, arguments: arguments)
        defer { python.stop() }

        let ready = try python.readLine().split(separator: " ")
        try #require(ready.first == "ready", "python: \(ready)")
        let pythonStatic = try X25519.PublicKey(bytes: try #require([UInt8](hex: ready[1])))
        #expect(pythonStatic == (try pythonIdentity.publicKey.x25519()), "pynacl and libsodium derive the same X25519 key")

        var swift = try HandshakeState(
            pattern: pattern, initiator: c.swiftIsInitiator, prologue: prologue, localStatic: swiftIdentity.x25519(),
            remoteStatic: pattern == .IK && c.swiftIsInitiator ? pythonIdentity.publicKey.x25519() : nil)
        var handshakeMessages = 0
        while !swift.isComplete {
            let payload = Array("handshake payload \(handshakeMessages)".utf8)
            if swift.isMyTurnToWrite {
                let message = try swift.writeMessage(payload: payload)
                #expect(try python.call("read", message) == payload)
            } else {
                let message = try python.call("write", payload)
                #expect(try swift.readMessage(message) == payload)
            }
            handshakeMessages += 1
        }
        #expect(swift.remoteStaticKey == pythonStatic)
        let info = try python.callRaw("info").split(separator: " ")
        try #require(info.count == 2, "python info: \(info)")
        #expect([UInt8](hex: info[0]) == swift.handshakeHash, "handshake hashes agree")
        #expect([UInt8](hex: info[1]) == (try swiftIdentity.publicKey.x25519()).bytes, "python saw our static key")

        var (send, receive) = try swift.split()
        let sizes = [0, 1, 100, 1200, 4000]
        for (i, size) in sizes.enumerated() {
            let outbound = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
            #expect(try python.call("read", send.encrypt(associatedData: [], plaintext: outbound)) == outbound, "Swift → Python \(size) B")
            let inbound = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ i) }
            #expect(try receive.decrypt(associatedData: [], ciphertext: python.call("write", inbound)) == inbound, "Python → Swift \(size) B")
        }
        print("interop: Noise_\(c.pattern)_25519_ChaChaPoly_BLAKE2b, Swift \(c.swiftIsInitiator ? "initiator" : "responder") ↔ noiseprotocol \(c.swiftIsInitiator ? "responder" : "initiator"): \(handshakeMessages) handshake messages, \(2 * sizes.count) transport messages, handshake hash equal")
    }
}

/// The Python peer process: one command line in, one answer line out.
final class PythonPeer {
    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer: [UInt8] = []

    init(script: URL, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path] + arguments
        process.standardInput = input
        process.standardOutput = output
        // A peer that exits early must fail the test, not kill the runner with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        try process.run()
    }

    /// One line from the peer; throws at end of output (the peer died).
    func readLine() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw PeerError(message: "python peer closed its output") }
            buffer += chunk
        }
    }

    func callRaw(_ command: String, _ bytes: [UInt8]? = nil) throws -> Substring {
        let line = bytes.map { "\(command) \($0.hexString)\n" } ?? "\(command)\n"
        try input.fileHandleForWriting.write(contentsOf: Data(line.utf8))
        let answer = try readLine()
        guard answer.hasPrefix("ok") else { throw PeerError(message: "python: \(answer)") }
        return answer.dropFirst(3)
    }

    func call(_ command: String, _ bytes: [UInt8]) throws -> [UInt8] {
        let answer = try callRaw(command, bytes)
        guard let decoded = [UInt8](hex: answer) else { throw PeerError(message: "python answered non-hex: \(answer)") }
        return decoded
    }

    func stop() {
        try? input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    struct PeerError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
