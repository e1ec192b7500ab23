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

/// The namespace test bed (`Tools/netns`): hosts NAME-h1…hN at 10.77.0.K on one bridge.
enum TestBed {
    static var script: String { PeerProcess.repository + "/Tools/netns" }

    static let unavailableReason: String? = {
        if geteuid() != 0 { return "network namespace tests need root" }
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        for tool in ["ip", "nft"] where !paths.split(separator: ":").contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }) {
            return "network namespace tests need '\(tool)' (apt-get install iproute2 nftables)"
        }
        if !FileManager.default.isExecutableFile(atPath: script) { return "Tools/netns not found at \(script)" }
        return nil
    }()

    static var available: Bool { unavailableReason == nil && PeerProcess.binary != nil }

    struct Failure: Error, CustomStringConvertible { var description: String }

    @discardableResult
    static func tool(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "Tools/netns \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    static func name(_ tag: String) -> String { "r\(getpid() % 100_000)\(tag.prefix(6))" }

    static func inHost(_ bed: String, _ host: Int, _ command: [String]) -> [String] {
        ["/usr/bin/env", "ip", "netns", "exec", "\(bed)-h\(host)"] + command
    }

    static func withBed<T>(_ name: String, hosts: Int, loss: Double, _ body: () async throws -> T) async throws -> T {
        try tool(["up", name, "\(hosts)"])
        defer { _ = try? tool(["down", name]) }
        if loss > 0 { try tool(["loss", name, String(format: "%.2f", loss)]) }
        return try await body()
    }
}
