import Foundation
import Synchronization

/// A `swarm-peer` child process whose JSON lines are collected as they arrive, so a test
/// can wait for an event, kill the process with SIGKILL and start it again.
final class SwarmPeerProcess: Sendable {
    /// Where the binary is: `$BOOKSWARM_BIN` (set by Tools/test), else the debug build folder.
    static var binary: URL? {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let bin = env["BOOKSWARM_BIN"] { candidates.append(bin + "/swarm-peer") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/swarm-peer").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }.map(URL.init(fileURLWithPath:))
    }

    /// One parsed output line: the event name and its string or number fields.
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

    var lines: [Line] { buffer.state.withLock { $0.lines } }

    func lines(_ event: String) -> [Line] { lines.filter { $0.event == event } }

    var peer: String? { lines("ready").first?.fields["peer"] }

    /// Waits until a line satisfies `match`, or `timeout` passes.
    func waitFor(_ timeout: Duration, _ match: (Line) -> Bool) async -> Line? {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if let hit = lines.first(where: match) { return hit }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return lines.first(where: match)
    }

    /// As `kill -9`: no goodbye reaches the network.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits for the process to exit by itself (it has a `--seconds` limit), killing it
    /// after `timeout` so a test never hangs.
    func finish(timeout: Duration = .seconds(20)) async {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while process.isRunning && clock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
        kill()
        // Let the reader drain the pipe.
        try? await Task.sleep(for: .milliseconds(50))
    }
}
