import Foundation
import Synchronization

/// Runs the `bookswarm` binary as a separate process, as a person would.
enum CLI {
    /// `$BOOKSWARM_BIN/bookswarm` (set by Tools/test), else the debug build folder.
    static var binary: String? {
        var candidates: [String] = []
        if let bin = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"] { candidates.append(bin + "/bookswarm") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/bookswarm").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var available: Bool { binary != nil }

    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var ok: Bool { status == 0 }
        var description: String { "exit \(status); stdout: \(stdout); stderr: \(stderr)" }
        var json: Any? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) }
    }

    /// Runs `bookswarm ARGS` (inside `prefix`, e.g. `ip netns exec …` or `setpriv …`; in the
    /// working directory `directory`, if given) and waits for it, killing it after `timeout`.
    @discardableResult
    static func run(_ arguments: [String], prefix: [String] = [], directory: String? = nil,
                    timeout: Duration = .seconds(30)) async throws -> Result {
        let process = Process()
        let argv = prefix + [binary!] + arguments
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let collected = Mutex<(out: Data, err: Data, done: Int)>((Data(), Data(), 0))
        Thread.detachNewThread {
            let d = out.fileHandleForReading.readDataToEndOfFile()
            collected.withLock { $0.out = d; $0.done += 1 }
        }
        Thread.detachNewThread {
            let d = err.fileHandleForReading.readDataToEndOfFile()
            collected.withLock { $0.err = d; $0.done += 1 }
        }
        // Past the timeout: SIGABRT first, so the Swift runtime prints where it hung (it ends
        // up in the failure message), then SIGKILL.
        let deadline = ContinuousClock.now + timeout
        var aborted = false
        while process.isRunning {
            if ContinuousClock.now > deadline + .seconds(10) {
                kill(process.processIdentifier, SIGKILL)
            } else if ContinuousClock.now > deadline && !aborted {
                kill(process.processIdentifier, SIGABRT)
                aborted = true
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Let the readers reach EOF (bounded: a grandchild could hold the pipes open).
        for _ in 0..<400 where collected.withLock({ $0.done < 2 }) { try await Task.sleep(for: .milliseconds(5)) }
        let (o, e) = collected.withLock { ($0.out, $0.err) }
        return Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }
}

/// A `bookswarm daemon` child process. Its stdout (JSON lines) is kept for the ready line.
final class Daemon: Sendable {
    let directory: String
    private let process: Process
    private final class TextBuffer: Sendable { let text = Mutex<String>("") }
    private let output = TextBuffer()

    /// `interface` nil: none named, the LAN default — which multicasts on the real network
    /// of wherever it runs, so only inside a namespace of the test's own (`prefix`).
    init(directory: String, interface: String?, discoveryPort: Int, prefix: [String] = [], extra: [String] = []) throws {
        precondition(interface != nil || !prefix.isEmpty, "the LAN default runs only inside a test's own namespace")
        self.directory = directory
        let process = Process()
        let argv = prefix + [CLI.binary!, "daemon", "--json", "--dir", directory] + (interface.map { ["--interface", $0] } ?? [])
            + ["--discovery-port", "\(discoveryPort)"] + extra
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        self.process = process
        out.fileHandleForReading.readabilityHandler = { [output] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var log: String { output.text.withLock { $0 } }
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Waits for the ready line (the control socket is up).
    func ready(_ timeout: Duration = .seconds(15)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if log.contains("\"ready\"") { return true }
            if !process.isRunning { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Sends `signal` and waits for the process to end (SIGKILL after 5 s).
    func stop(_ signal: Int32 = SIGTERM) async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning {
            if ContinuousClock.now > deadline { kill(process.processIdentifier, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A fresh vault directory per peer, removed at the end (kept, for a look after a failure,
/// with `BOOKSWARM_KEEP_SCRATCH=1`).
final class Scratch: Sendable {
    let root = NSTemporaryDirectory() + "bookswarm-cli-\(UUID().uuidString.prefix(8))"
    func dir(_ name: String) -> String { root + "/" + name }
    deinit {
        guard ProcessInfo.processInfo.environment["BOOKSWARM_KEEP_SCRATCH"] != "1" else { return }
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// A discovery port of this test run's own, so runs never meet each other.
func testDiscoveryPort() -> Int { 43_000 + Int(getpid() % 5000) + Int.random(in: 0..<1000) }

/// Polls `condition` until it holds or `timeout` passes.
func eventually(_ timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
