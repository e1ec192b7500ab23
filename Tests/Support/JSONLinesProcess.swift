import Foundation
import Synchronization

/// A child process of this repository's (`swarm-peer`, `replication-peer`, `bootstrap-peer`,
/// `bookswarm-bootstrap`) that prints one JSON object per line with an `event` field. Lines
/// are collected as they arrive, so a test can wait for an event, kill the process (as
/// `kill -9` would) and start it again.
public final class JSONLinesProcess: Sendable {
    /// A built executable: `$BOOKSWARM_BIN/NAME` (set by Tools/test), else the debug build's.
    public static func binary(_ name: String) -> String? {
        var candidates: [String] = []
        if let bin = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"] { candidates.append(bin + "/" + name) }
        candidates.append(RepoScript.url(".build/debug/\(name)").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// One parsed output line: the event name and its fields as text.
    public struct Line: Sendable {
        public var event: String
        public var fields: [String: String]
        public var raw: String

        public init?(_ raw: String) {
            guard let data = raw.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let event = object["event"] as? String else { return nil }
            self.event = event
            self.raw = raw
            fields = object.mapValues { "\($0)" }
        }

        public var ms: Double { Double(fields["ms"] ?? "") ?? .nan }
        public func int(_ key: String) -> Int { Int(fields[key] ?? "") ?? -1 }
    }

    private final class Buffer: Sendable {
        let state = Mutex<(lines: [Line], partial: String)>(([], ""))
    }

    private let process: Process
    private let buffer = Buffer()

    public init(_ argv: [String]) throws {
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

    public var pid: Int32 { process.processIdentifier }
    public var lines: [Line] { buffer.state.withLock { $0.lines } }
    public func lines(_ event: String) -> [Line] { lines.filter { $0.event == event } }
    public var transcript: String { lines.map(\.raw).joined(separator: "\n") }

    /// Waits until a line satisfies `match`, or `timeout` passes, or the process has ended
    /// (after a moment for the reader to drain the pipe: no further line can come).
    public func waitFor(_ timeout: Duration, _ match: (Line) -> Bool) async -> Line? {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if let hit = lines.first(where: match) { return hit }
            if !process.isRunning {
                try? await Task.sleep(for: .milliseconds(100))
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return lines.first(where: match)
    }

    /// Sends `signal`; for SIGKILL (as `kill -9`: no goodbye reaches the network) also waits
    /// for the process to end.
    public func kill(_ signal: Int32 = SIGKILL) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
        if signal == SIGKILL { process.waitUntilExit() }
    }

    /// SIGTERM, then waits (SIGKILL after `timeout`) and lets the reader drain the pipe.
    public func stop(timeout: Duration = .seconds(5)) async {
        kill(SIGTERM)
        await finish(timeout: timeout)
    }

    /// Waits for the process to exit by itself (a `--seconds` limit), killing it after
    /// `timeout` so a test never hangs, and lets the reader drain the pipe.
    public func finish(timeout: Duration = .seconds(20)) async {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while process.isRunning && clock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
        kill()
        try? await Task.sleep(for: .milliseconds(100))
    }
}
