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
        let probe = try LiveProbe(command)
        // Read as it comes (a pipe left unread would stall a talkative probe), until it exits.
        await probe.waitUntil(within: .seconds(timeout)) { false }
        return await probe.finish().lines.filter { !$0.isEmpty }
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

/// A probe that runs while the test watches its output: each line as it comes, with when it
/// came, so a test waits for what it needs (with a deadline) instead of sleeping a fixed time,
/// and stops the probe once it has it (SIGTERM: the probe prints its closing lines and exits).
final class LiveProbe: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var received: [(line: String, at: ContinuousClock.Instant)] = []
    private var ended = false

    /// Starts `command` (argv, the executable first). Give the probe a `--seconds` longer than
    /// the test needs: it is the bound should the test never stop it.
    init(_ command: [String]) throws {
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let handle = out.fileHandleForReading
        Thread { [self] in
            var partial = Data()
            while true {
                let data = handle.availableData
                let now = ContinuousClock.now
                if data.isEmpty { break }
                partial.append(data)
                while let newline = partial.firstIndex(of: 0x0A) {
                    let line = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
                    lock.withLock { received.append((line, now)) }
                    partial = Data(partial[(newline + 1)...])
                }
            }
            let rest = String(decoding: partial, as: UTF8.self)
            lock.withLock {
                if !rest.isEmpty { received.append((rest, ContinuousClock.now)) }
                ended = true
            }
        }.start()
    }

    /// Every line so far.
    var lines: [String] { lock.withLock { received.map(\.line) } }

    /// When the first line `matching` came, if one has.
    func when(_ matching: (String) -> Bool) -> ContinuousClock.Instant? {
        lock.withLock { received.first { matching($0.line) }?.at }
    }

    /// How many lines have come so far: `waitFor(after:)` looks only at those that come later.
    var count: Int { lock.withLock { received.count } }

    /// Waits until a line `matching` has come (after the first `after` lines); false if none
    /// came within `timeout` (or the probe ended without it).
    @discardableResult
    func waitFor(after skipped: Int = 0, within timeout: Duration, _ matching: @escaping (String) -> Bool) async -> Bool {
        await waitUntil(within: timeout) { self.lock.withLock { self.received.dropFirst(skipped).contains { matching($0.line) } } }
    }

    /// Waits until `condition` holds (looked at every 50 ms); false if it did not within
    /// `timeout`, or the probe ended and it still does not.
    @discardableResult
    func waitUntil(within timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            if lock.withLock({ ended }) { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// Stops the probe (SIGTERM) and returns all it printed, its closing lines included;
    /// killed if it has not exited within 5 s.
    func finish() async -> Probe.Output {
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while !lock.withLock({ ended }), ContinuousClock.now < deadline + .seconds(1) { try? await Task.sleep(for: .milliseconds(20)) }
        return Probe.Output(lines)
    }

    /// Kills the probe if it still runs (a test that failed before `finish`).
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
