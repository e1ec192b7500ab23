import BookswarmTestSupport
import Foundation

/// The NAT test bed (`Tools/natbed`) from Swift tests. Tests that use it are enabled only
/// when it can run (root, `ip`, `nft`, `python3`, the built executables); otherwise Swift
/// Testing counts them as skipped with `unavailableReason`. CI runs as root: there they run.
enum NATBed {
    static var root: URL { RepoScript.repository }

    static var script: String { root.appendingPathComponent("Tools/natbed").path }

    static let unavailableReason: String? = {
        if geteuid() != 0 { return "NAT bed tests need root (network namespaces)" }
        for tool in ["ip", "nft", "python3"] where which(tool) == nil { return "NAT bed tests need '\(tool)'" }
        if !FileManager.default.isExecutableFile(atPath: script) { return "Tools/natbed not found at \(script)" }
        for name in ["bootstrap-peer", "bookswarm-bootstrap"] where ChildProcess.binary(name) == nil {
            return "\(name) is not built: run `swift build`"
        }
        return nil
    }()

    static var available: Bool { unavailableReason == nil }

    static func which(_ tool: String) -> String? { RepoScript.which(tool) }

    typealias Failure = RepoScript.Failure

    @discardableResult
    static func tool(_ arguments: [String]) throws -> String { try RepoScript.run("Tools/natbed", arguments) }

    /// A bed name unique to this process and `tag` (≤ 12 characters).
    static func name(_ tag: String) -> String { "n\(getpid() % 100_000)\(tag.prefix(5))" }

    /// argv running `command` in `host` (node, x, a, b) of bed `name`.
    static func inHost(_ name: String, _ host: String, _ command: [String]) -> [String] {
        ["/usr/bin/env", "ip", "netns", "exec", "\(name)-\(host)"] + command
    }

    /// Builds the bed, runs `body`, tears the bed down whatever happens (off the pool).
    static func withBed<T>(_ name: String, _ modeA: String, _ modeB: String? = nil, _ body: () async throws -> T) async throws -> T {
        try await RepoScript.withBed("Tools/natbed", name: name, up: [modeA, modeB ?? modeA], body)
    }

    static let nodePort = 7000
    static let node = "100.64.0.1:\(nodePort)"

    static func startNode(_ bed: String, capture: String? = nil) throws -> ChildProcess {
        var argv = [ChildProcess.binary("bookswarm-bootstrap")!, "--port", "\(nodePort)", "--bind", "100.64.0.1"]
        if let capture { argv += ["--capture", capture] }
        return try ChildProcess(inHost(bed, "node", argv))
    }

    static func startPeer(_ bed: String, _ host: String, seed: Int, topic: String, send: String, seconds: Double,
                          extra: [String] = []) throws -> ChildProcess {
        let address = host == "a" ? "10.1.0.2" : "10.2.0.2"
        return try ChildProcess(inHost(bed, host, [
            ChildProcess.binary("bootstrap-peer")!, "--bind", address, "--port", "42000", "--seed", "\(seed)", "--topic", topic,
            "--bootstrap", node, "--send", send, "--seconds", "\(seconds)",
        ] + extra))
    }
}
