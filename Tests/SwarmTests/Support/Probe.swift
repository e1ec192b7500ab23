import Foundation

/// Runs the `discovery-probe` executable as a child process and collects its output lines.
/// Where the binary is: `$BOOKSWARM_BIN` (set by Tools/test), else the debug build folder.
enum Probe {
    static var binary: URL? {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let bin = env["BOOKSWARM_BIN"] { candidates.append(bin + "/discovery-probe") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/discovery-probe").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }.map(URL.init(fileURLWithPath:))
    }

    /// Starts `command` (argv, first element the executable) and returns its stdout lines
    /// once it exited; killed after `timeout` seconds so a test never hangs.
    static func run(_ command: [String], timeout: Double) async throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    struct Output {
        var peer: String?
        var sightings: [(peer: String, endpoint: String)]
        var flushed: Bool
        var lines: [String]
        init(_ lines: [String]) {
            self.lines = lines
            peer = lines.first { $0.hasPrefix("peer ") }.map { String($0.dropFirst(5)) }
            sightings = lines.filter { $0.hasPrefix("sighting ") }.map {
                let parts = $0.split(separator: " ")
                return (String(parts[1]), String(parts[2]))
            }
            flushed = lines.contains("flushed")
        }
    }
}
