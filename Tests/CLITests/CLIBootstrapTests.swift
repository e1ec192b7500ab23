import Foundation
import Synchronization
import Testing

/// Issue 7, item 5: peers use bootstrap nodes through the `bookswarm` command. Two daemons
/// on loopback whose LAN discovery cannot meet (each on a discovery port of its own) find
/// each other only through a `bookswarm bootstrap` node, chat, and `inspect` names the path.
@Suite("bookswarm with a bootstrap node", .serialized,
       .enabled(if: CLI.available, "bookswarm is not built: run `swift build`"))
struct CLIBootstrapTests {
    /// A `bookswarm bootstrap` child process on 127.0.0.1.
    final class Node: Sendable {
        let process = Process()
        let port: Int
        private final class TextBuffer: Sendable { let text = Mutex("") }
        private let output = TextBuffer()

        init(port: Int) throws {
            self.port = port
            process.executableURL = URL(fileURLWithPath: CLI.binary!)
            process.arguments = ["bootstrap", "--port", "\(port)", "--bind", "127.0.0.1"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            pipe.fileHandleForReading.readabilityHandler = { [output] handle in
                let data = handle.availableData
                if data.isEmpty { handle.readabilityHandler = nil; return }
                output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
            try process.run()
        }

        var log: String { output.text.withLock { $0 } }

        func ready() async -> Bool {
            await eventually(.seconds(15)) { log.contains("bootstrap node on 127.0.0.1:\(port)") }
        }

        deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    }

    @Test("two peers that share no LAN discovery meet through the node and chat", .timeLimit(.minutes(2)))
    func chatThroughABootstrapNode() async throws {
        let scratch = Scratch()
        let nodePort = testDiscoveryPort() + 7000
        let node = try Node(port: nodePort)
        #expect(await node.ready(), "node did not start: \(node.log)")
        let via = ["--bootstrap", "127.0.0.1:\(nodePort)"]
        // Different discovery ports: multicast cannot introduce them; only the node can.
        let bob = Member("bob", scratch: scratch, discoveryPort: testDiscoveryPort(), daemonOptions: via)
        let ana = Member("ana", scratch: scratch, discoveryPort: testDiscoveryPort() + 1, daemonOptions: via)
        try await bob.start()
        try await ana.start()
        defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }

        let task = try await bob.newTask("Across networks")
        try await bob.ok(["send", task.id, "hello through the node"])
        let joined = try await ana.run(["join", task.invite] + via)
        #expect(joined.ok, "\(joined)")
        #expect(try await eventually { try await ana.texts(task.id) == ["hello through the node"] })
        try await ana.ok(["send", task.id, "heard you"])
        #expect(try await eventually { try await bob.texts(task.id).contains("heard you") })

        // inspect names the session's path as the bootstrap client chose it.
        let report = try #require(try await ana.run(["inspect", "--json"]).json as? [String: Any])
        let sessions = report["sessions"] as? [[String: Any]] ?? []
        let paths = sessions.compactMap { $0["path"] as? String }
        #expect(paths.count == 1, "\(sessions)")
        #expect(paths.allSatisfy { $0.hasPrefix("lan ") || $0.hasPrefix("punched ") || $0.hasPrefix("relay via ") }, "\(paths)")
        node.process.terminate()
    }
}
