import Foundation
import Testing

/// One person of a scenario: a vault directory, maybe a daemon, and `bookswarm` calls on it.
final class Member: @unchecked Sendable {
    let name: String
    let directory: String
    /// The `--interface` of every command; nil for none (the LAN default), only inside a
    /// namespace of the test's own (`prefix`).
    let interface: String?
    let discoveryPort: Int
    /// Wraps commands that must run where the daemon runs (a namespace), if any.
    let prefix: [String]
    /// Further daemon options (e.g. `--bootstrap HOST:PORT`).
    let daemonOptions: [String]
    var daemon: Daemon?

    init(_ name: String, scratch: Scratch, interface: String? = "lo", discoveryPort: Int, prefix: [String] = [],
         daemonOptions: [String] = []) {
        precondition(interface != nil || !prefix.isEmpty, "the LAN default runs only inside a test's own namespace")
        self.name = name
        directory = scratch.dir(name)
        self.interface = interface
        self.discoveryPort = discoveryPort
        self.prefix = prefix
        self.daemonOptions = daemonOptions
    }

    /// `ARGS --dir DIR` with this member's network options: what `run` gives `bookswarm`.
    func arguments(_ arguments: [String]) -> [String] {
        arguments + ["--dir", directory] + (interface.map { ["--interface", $0] } ?? []) + ["--discovery-port", "\(discoveryPort)"]
    }

    /// `bookswarm ARGS --dir DIR` with this member's network options (run in the working
    /// directory `in`, if given).
    @discardableResult
    func run(_ arguments: [String], in workingDirectory: String? = nil, timeout: Duration = .seconds(30)) async throws -> CLI.Result {
        try await CLI.run(self.arguments(arguments), prefix: prefix, directory: workingDirectory, timeout: timeout)
    }

    /// Starts `bookswarm ARGS --dir DIR` with this member's network options and returns at
    /// once, its output discarded: a command to interrupt.
    func launch(_ arguments: [String]) throws -> Process {
        let process = Process()
        let argv = prefix + [CLI.binary!] + self.arguments(arguments)
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs a command that must succeed; returns its stdout.
    @discardableResult
    func ok(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let result = try await run(arguments)
        #expect(result.ok, "\(name): bookswarm \(arguments.joined(separator: " ")) → \(result)", sourceLocation: sourceLocation)
        return result.stdout
    }

    func start() async throws {
        let daemon = try Daemon(directory: directory, interface: interface, discoveryPort: discoveryPort, prefix: prefix,
                                extra: daemonOptions)
        self.daemon = daemon
        let ready = await daemon.ready()
        #expect(ready, "\(name)'s daemon did not start: \(daemon.log)")
    }

    func stop(_ signal: Int32 = SIGTERM) async {
        await daemon?.stop(signal)
        daemon = nil
    }

    var id: String {
        get async throws { try await ok(["id"]).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// The task's messages as this member sees them (texts, in log order): the entries
    /// without a `kind` (§10.7: a join has `"kind":"join"`).
    func texts(_ task: String) async throws -> [String] {
        let result = try await run(["log", task, "--json"])
        guard result.ok, let entries = result.json as? [[String: Any]] else { return [] }
        return entries.filter { $0["kind"] == nil }.compactMap { $0["text"] as? String }
    }

    /// Bob and Ana on loopback, with a discovery port of their own.
    static func bobAndAna(_ scratch: Scratch) -> (bob: Member, ana: Member) {
        let port = testDiscoveryPort()
        return (Member("bob", scratch: scratch, discoveryPort: port), Member("ana", scratch: scratch, discoveryPort: port))
    }

    /// Bob and Ana on loopback with a discovery port of their own, their daemons started.
    static func bobAndAnaStarted(_ scratch: Scratch) async throws -> (bob: Member, ana: Member) {
        let (bob, ana) = bobAndAna(scratch)
        for m in [bob, ana] { try await m.start() }
        return (bob, ana)
    }

    /// Bob, Ana and Carol on loopback with a discovery port of their own, their daemons started.
    static func bobAnaAndCarolStarted(_ scratch: Scratch) async throws -> (bob: Member, ana: Member, carol: Member) {
        let port = testDiscoveryPort()
        let members = (Member("bob", scratch: scratch, discoveryPort: port), Member("ana", scratch: scratch, discoveryPort: port),
                       Member("carol", scratch: scratch, discoveryPort: port))
        for m in [members.0, members.1, members.2] { try await m.start() }
        return members
    }

    /// Creates a task; returns (id, invite).
    func newTask(_ title: String) async throws -> (id: String, invite: String) {
        let out = try await ok(["task", "new", title, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return (object?["id"] as? String ?? "", object?["invite"] as? String ?? "")
    }
}
