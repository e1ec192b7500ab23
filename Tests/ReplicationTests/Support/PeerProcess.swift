import BookswarmTestSupport
import Foundation
import Synchronization

/// A `replication-peer` child process; its JSON lines are collected as they arrive so a
/// test can wait for an event, SIGKILL the process and start it again.
final class PeerProcess: Sendable {
    /// `$BOOKSWARM_BIN/replication-peer` (Tools/test sets it), else the debug build's.
    static var binary: String? {
        var candidates: [String] = []
        if let bin = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"] { candidates.append(bin + "/replication-peer") }
        candidates.append(repository + "/.build/debug/replication-peer")
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var repository: String {
        if let repo = ProcessInfo.processInfo.environment["BOOKSWARM_REPO"] { return repo }
        // Tests/ReplicationTests/Support/PeerProcess.swift → repository root.
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url = url.deletingLastPathComponent() }
        return url.path
    }

    struct Line: Sendable {
        var event: String
        var fields: [String: String]

        init?(_ raw: String) {
            guard let data = raw.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let event = object["event"] as? String else { return nil }
            self.event = event
            fields = object.mapValues { "\($0)" }
        }

        func int(_ key: String) -> Int { Int(fields[key] ?? "") ?? -1 }
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
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            buffer.state.withLock { s in
                s.partial += String(decoding: data, as: UTF8.self)
                while let newline = s.partial.firstIndex(of: "\n") {
                    if let line = Line(String(s.partial[..<newline])) { s.lines.append(line) }
                    s.partial = String(s.partial[s.partial.index(after: newline)...])
                }
            }
        }
        try process.run()
    }

    var lines: [Line] { buffer.state.withLock { $0.lines } }

    func waitFor(_ timeout: Duration, _ match: (Line) -> Bool) async -> Line? {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if let hit = lines.first(where: match) { return hit }
            if !process.isRunning { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return lines.first(where: match)
    }

    /// As `kill -9`.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The namespace test bed (`Tools/netns`, through the shared `Netns` helper) as the
/// replication process tests use it: a bed with loss on every host interface.
enum TestBed {
    static var unavailableReason: String? { Netns.unavailableReason }

    static var available: Bool { Netns.available && PeerProcess.binary != nil }

    static func name(_ tag: String) -> String { Netns.bedName("r" + tag) }

    static func inHost(_ bed: String, _ host: Int, _ command: [String]) -> [String] { Netns.inHost(bed, host, command) }

    static func withBed<T>(_ name: String, hosts: Int, loss: Double, _ body: () async throws -> T) async throws -> T {
        try await Netns.withBed(name, hosts: hosts) {
            if loss > 0 { try Netns.loss(name, percent: loss) }
            return try await body()
        }
    }
}
