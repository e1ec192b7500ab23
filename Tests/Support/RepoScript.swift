import Foundation

/// The repository's own scripts (`Tools/netns`, `Tools/natbed`) run from Swift tests.
public enum RepoScript {
    /// The repository root: `$BOOKSWARM_REPO` (set by Tools/test), else found from this file.
    public static var repository: URL {
        if let repo = ProcessInfo.processInfo.environment["BOOKSWARM_REPO"] { return URL(fileURLWithPath: repo) }
        // Tests/Support/RepoScript.swift → repository root.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    public static func url(_ path: String) -> URL { repository.appendingPathComponent(path) }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Runs `path` (relative to the repository) with `arguments`; its output, or a `Failure`
    /// carrying the output when it exits non-zero.
    @discardableResult
    public static func run(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = url(path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(path) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(text)")
        }
        return text
    }

    /// Runs `script up ARGS…`, then `body`, then `script down NAME` whatever `body` did: a
    /// test bed (`Tools/netns`, `Tools/natbed`) built and torn down around a test. The
    /// script's commands take seconds, so they run off the cooperative pool (`offPool`).
    public static func withBed<T>(_ script: String, name: String, up arguments: [String],
                                  _ body: () async throws -> T) async throws -> T {
        _ = try await offPool { try run(script, ["up", name] + arguments) }
        do {
            let result = try await body()
            _ = try? await offPool { try run(script, ["down", name]) }
            return result
        } catch {
            _ = try? await offPool { try run(script, ["down", name]) }
            throw error
        }
    }

    /// The full path of a tool on `PATH` (plus the sbin directories root's tools live in).
    public static func which(_ tool: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        return paths.split(separator: ":").map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
