import Foundation
import Messenger
import Synchronization
import Sodium
import Swarm
import SwarmNIO
import Vault

/// The daemon's control protocol (PROTOCOL.md §10.6): one JSON request line per connection
/// on `<dir>/control.sock`; the answer is one line `{"ok":true,"result":…}` or
/// `{"ok":false,"error":"one line"}`; `follow` answers with one event per line
/// (`FollowItem`) until the client closes. Without a daemon, the same requests run in this
/// process on the vault directly, so every command behaves the same either way.
struct ControlRequest: Codable, Sendable {
    enum Command: String, Codable, Sendable {
        case id, name, taskNew = "task-new", taskLeave = "task-leave", join, tasks, send, log, inspect, compile, check, follow
    }

    var command: Command
    var task: String?
    var text: String?
    var name: String?
    var verify: Bool?
    var markRead: Bool?
    /// `task-leave`: really leave (without it, the answer says what would be deleted).
    var confirm: Bool?
}

struct PeerIdentity: Codable {
    var peer: String
    /// The display name this peer chose (`bookswarm name`), if any.
    var name: String?
}

/// What the daemon's network adds to `inspect`: the counters of what it dropped below the
/// sessions, and how discovery runs on each interface now.
struct NetworkStatus: Sendable {
    var drops: [String: UInt64] = [:]
    var interfaces: [DiscoveryInterface]?
}

/// One line of a `follow` stream.
struct FollowItem: Codable, Sendable {
    enum Kind: String, Codable, Sendable {
        /// A message, from history or new.
        case message
        /// The history is complete; live events follow.
        case live
        /// A member connected or left.
        case presence
    }

    var event: Kind
    var entry: LogEntry?
    var peer: String?
    /// On `presence`: the member's display name, if they chose one.
    var name: String?
    var online: Bool?
    /// On `live`: the task's title and members.
    var summary: TaskSummary?
}

enum Control {
    /// Runs one request against a messenger (in the daemon, or in this process).
    static func execute(_ request: ControlRequest, on messenger: Messenger, network: NetworkStatus = NetworkStatus()) async throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        switch request.command {
        case .id:
            return try encoder.encode(PeerIdentity(peer: messenger.localPeer.publicKey.hex, name: try await messenger.ownName()))
        case .name:
            // With a text: choose it as the name; without: show the name.
            if let text = request.text { try await messenger.setOwnName(text) }
            return try encoder.encode(PeerIdentity(peer: messenger.localPeer.publicKey.hex, name: try await messenger.ownName()))
        case .taskNew:
            return try encoder.encode(try await messenger.newTask(title: request.text ?? ""))
        case .join:
            return try encoder.encode(try await messenger.join(parseInvite(request.text ?? "")))
        case .taskLeave:
            let task = try await messenger.resolveTask(request.task ?? "")
            guard request.confirm == true else {
                let summary = try await messenger.summary(of: task)
                throw CLIError("leaving deletes \(Format.title(summary.title, or: task.hex)) from this vault, with its "
                               + "\(Format.count(summary.messages, "message")); run again with --yes to leave")
            }
            return try encoder.encode(try await messenger.leave(task))
        case .tasks:
            return try encoder.encode(try await messenger.summaries())
        case .send:
            let task = try await messenger.resolveTask(request.task ?? "")
            return try encoder.encode(try await messenger.send(request.text ?? "", to: task))
        case .log:
            let task = try await messenger.resolveTask(request.task ?? "")
            let entries = try await messenger.log(of: task)
            if request.markRead ?? true { try await messenger.markRead(task) }
            return try encoder.encode(entries)
        case .inspect:
            var report = try await messenger.inspect(verify: request.verify ?? false, drops: network.drops)
            report.interfaces = network.interfaces
            return try encoder.encode(report)
        case .compile:
            let task = try await messenger.resolveTask(request.task ?? "")
            return try encoder.encode(try await messenger.compile(task, into: request.name ?? ""))
        case .check:
            return try encoder.encode(try await messenger.checkCompiled(request.name ?? ""))
        case .follow:
            throw CLIError("follow is a streaming request")
        }
    }

    static func parseInvite(_ text: String) throws -> InviteCode {
        do { return try InviteCode(parsing: text) } catch {
            throw MessengerError(.invalidInvite, "invalid invite code: \(error.description)")
        }
    }

    /// A task's messages, then live events: what `log --follow` and `chat` show.
    static func follow(_ messenger: Messenger, task: TaskID) -> AsyncStream<FollowItem> {
        AsyncStream(bufferingPolicy: .bufferingNewest(4096)) { continuation in
            let worker = Task {
                // Subscribe before reading the history, so nothing falls between the two.
                let events = await messenger.subscribe()
                var seen: Set<String> = []
                func catchUp() async {
                    guard let entries = try? await messenger.log(of: task) else { return }
                    for entry in entries where !seen.contains(entry.key) {
                        seen.insert(entry.key)
                        continuation.yield(FollowItem(event: .message, entry: entry))
                    }
                    try? await messenger.markRead(task)
                }
                await catchUp()
                continuation.yield(FollowItem(event: .live, summary: try? await messenger.summary(of: task)))
                for await event in events {
                    switch event {
                    case let .changed(changed) where changed == task:
                        await catchUp()
                    case let .presence(changed, peer, online) where changed == task:
                        let name = try? await messenger.names(in: task)[peer.publicKey.hex]
                        continuation.yield(FollowItem(event: .presence, peer: peer.publicKey.hex, name: name ?? nil, online: online))
                    case .changed, .presence:
                        break
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in worker.cancel() }
        }
    }

    // MARK: - Daemon side

    static func serve(_ line: [UInt8], reply: LocalControlServer.Reply, messenger: Messenger,
                      network: @Sendable () async -> NetworkStatus) async {
        guard let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(line)) else {
            try? await reply.send(envelope(error: "malformed control request"))
            return
        }
        if request.command == .follow {
            do {
                let task = try await messenger.resolveTask(request.task ?? "")
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for await item in follow(messenger, task: task) {
                    try await reply.send(Array(try encoder.encode(item)))
                }
            } catch {
                try? await reply.send(envelope(error: oneLine(error)))
            }
            return
        }
        do {
            let status = request.command == .inspect ? await network() : NetworkStatus()
            let result = try await execute(request, on: messenger, network: status)
            try? await reply.send(Array("{\"ok\":true,\"result\":".utf8) + Array(result) + Array("}".utf8))
        } catch {
            try? await reply.send(envelope(error: oneLine(error)))
        }
    }

    static func envelope(error: String) -> [UInt8] {
        let quoted = (try? JSONEncoder().encode(error)) ?? Data("\"error\"".utf8)
        return Array("{\"ok\":false,\"error\":".utf8) + Array(quoted) + Array("}".utf8)
    }

    // MARK: - Client side

    /// Sends a request to the daemon of the vault, if one runs; nil when none does.
    /// Blocking POSIX I/O, so it runs on a thread of its own, off the cooperative pool.
    static func callDaemon(_ request: ControlRequest, directory: VaultDirectory) async throws -> Data? {
        let body = try JSONEncoder().encode(request)
        let limit: Duration = request.command == .inspect && request.verify == true ? .seconds(600) : .seconds(30)
        return try await withDeadline(limit, "the daemon of \(directory.path) did not answer within \(limit); if it resumes it may still carry the request out (a `send` may still be delivered: check `log` before sending again)") {
            try await offPool {
                guard let client = LocalControlClient.connect(path: directory.controlSocket) else { return nil }
                try client.send(Array(body))
                guard let line = try client.readLine() else { throw CLIError("the daemon closed the connection without an answer") }
                return try unwrap(line)
            }
        }
    }

    /// Runs `body`, or fails with `message` after `limit` (a daemon that stops answering
    /// gives an error line rather than a command that hangs). Unstructured on purpose: the
    /// blocking read cannot be cancelled, and a task group would wait for it.
    static func withDeadline<T: Sendable>(_ limit: Duration, _ message: String,
                                          _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let done = Once()
            let timer = Task {
                try? await Task.sleep(for: limit)
                if !Task.isCancelled, done.claim() { continuation.resume(throwing: CLIError(message)) }
            }
            Task {
                let result = await Result(catching: { try await body() })
                timer.cancel()
                if done.claim() { continuation.resume(with: result) }
            }
        }
    }

    static func unwrap(_ line: [UInt8]) throws -> Data {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw CLIError("the daemon sent a malformed answer")
        }
        if let ok = object["ok"] as? Bool, ok, let result = object["result"] {
            return try JSONSerialization.data(withJSONObject: result, options: [.fragmentsAllowed])
        }
        throw CLIError(object["error"] as? String ?? "the daemon refused the request")
    }

    /// Runs a request: through the daemon if one runs, else on the vault in this process.
    static func call<T: Decodable>(_ request: ControlRequest, _ options: VaultOptions, as type: T.Type) async throws -> T {
        while true {
            if let answer = try await callDaemon(request, directory: options.directory) {
                return try JSONDecoder().decode(T.self, from: answer)
            }
            let peer: LocalPeer
            do {
                peer = try await openLocal(options, role: request.command.rawValue)
            } catch is DaemonAppeared {
                continue
            }
            do {
                let data = try await execute(request, on: peer.messenger)
                await peer.close()
                return try JSONDecoder().decode(T.self, from: data)
            } catch {
                await peer.close()
                throw error
            }
        }
    }

    /// Opens the vault in this process. If a daemon holds it but its socket did not answer
    /// (it is starting), waits a little for the socket rather than failing at once.
    static func openLocal(_ options: VaultOptions, role: String) async throws -> LocalPeer {
        var attempt = 0
        while true {
            do {
                return try LocalPeer.open(options, role: role)
            } catch let error as VaultError where error.code == .locked && attempt < 20 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(100))
                if LocalControlClient.connect(path: options.directory.controlSocket) != nil { throw DaemonAppeared() }
            }
        }
    }

    struct DaemonAppeared: Error {}
}

/// True for the first caller of `claim` only.
final class Once: Sendable {
    private let claimed = Atomic<Bool>(false)
    func claim() -> Bool { claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// Runs blocking work on a thread of its own and returns its result.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
