import Foundation
import Synchronization

/// A child process (`bootstrap-peer`, `bookswarm-bootstrap`) whose JSON lines are collected
/// as they arrive, so a test can wait for an event and kill or stop the process.
final class ChildProcess: Sendable {
    /// A built executable: `$BOOKSWARM_BIN/NAME` (set by Tools/test), else the debug build.
    static func binary(_ name: String) -> String? {
        var candidates: [String] = []
        if let bin = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"] { candidates.append(bin + "/" + name) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/\(name)").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Line: Sendable {
        var event: String
        var fields: [String: String]
        var raw: String

        init?(_ raw: String) {
            guard let data = raw.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let event = object["event"] as? String else { return nil }
            self.event = event
            self.raw = raw
            fields = object.mapValues { "\($0)" }
        }

        var ms: Double { Double(fields["ms"] ?? "") ?? .nan }
    }

    private final class Buffer: Sendable {
        let state = Mutex<(lines: [Line], partial: String)>(([], ""))
    }

    private let process: Process
    private let buffer = Buffer()

    init(_ argv: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        self.process = process
        out.fileHandleForReading.readabilityHandler = { [buffer] handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            buffer.state.withLock { s in
                s.partial += String(decoding: data, as: UTF8.self)
                while let newline = s.partial.firstIndex(of: "\n") {
                    let text = String(s.partial[..<newline])
                    s.partial = String(s.partial[s.partial.index(after: newline)...])
                    if let line = Line(text) { s.lines.append(line) }
                }
            }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var lines: [Line] { buffer.state.withLock { $0.lines } }
    func lines(_ event: String) -> [Line] { lines.filter { $0.event == event } }
    var transcript: String { lines.map(\.raw).joined(separator: "\n") }

    func waitFor(_ timeout: Duration, _ match: (Line) -> Bool) async -> Line? {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if let hit = lines.first(where: match) { return hit }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return lines.first(where: match)
    }

    func kill(_ signal: Int32 = SIGKILL) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
    }

    /// SIGTERM, then waits (SIGKILL after `timeout`) and lets the reader drain the pipe.
    func stop(timeout: Duration = .seconds(5)) async {
        kill(SIGTERM)
        await finish(timeout: timeout)
    }

    /// Waits for the process to exit by itself, killing it after `timeout`.
    func finish(timeout: Duration = .seconds(20)) async {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while process.isRunning && clock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
        kill()
        process.waitUntilExit()
        try? await Task.sleep(for: .milliseconds(100))
    }
}
