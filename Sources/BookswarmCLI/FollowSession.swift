import BookswarmControl
import Foundation
import Messenger
import Synchronization
import SwarmNIO

/// A task's live view for `log --follow` and `chat`: from the daemon over the control
/// socket, or — without a daemon — from this process with the network up for as long as
/// the session lasts.
final class FollowSession: @unchecked Sendable {
    let items: AsyncStream<FollowItem>
    let taskTitle: String?
    /// Runs a request (`task` already set): on the daemon, or on the vault this process holds.
    private let caller: @Sendable (ControlRequest) async throws -> Data
    /// The task as requests name it: its id here, the text given on the command line with a
    /// daemon (which resolves it).
    private let task: String
    private let closer: @Sendable () -> Void
    private let local: LocalPeer?
    /// The vault's directory, for the line that says its daemon went away.
    let directory: String
    /// Set by `close`: the stream ends because this process ended it.
    private let closedHere = Atomic<Bool>(false)

    private init(items: AsyncStream<FollowItem>, taskTitle: String?, task: String,
                 caller: @escaping @Sendable (ControlRequest) async throws -> Data,
                 closer: @escaping @Sendable () -> Void, local: LocalPeer?, directory: String) {
        self.items = items
        self.directory = directory
        self.taskTitle = taskTitle
        self.task = task
        self.caller = caller
        self.closer = closer
        self.local = local
    }

    /// `role` names the command in the vault's lock, for the message another command gets
    /// while this one holds the vault ("in use by a bookswarm chat").
    static func open(task: String, options: VaultOptions, role: String) async throws -> FollowSession {
        if let session = try await viaDaemon(task: task, options: options) { return session }
        let peer: LocalPeer
        do {
            // A full disk: online all the same, as a daemon is (PROTOCOL.md §10.6).
            peer = try await Control.openLocal(options, role: role, creating: false, readingIfFull: true)
        } catch is Control.DaemonAppeared {
            guard let session = try await viaDaemon(task: task, options: options) else { throw CLIError("the daemon went away") }
            return session
        }
        do {
            let id = try await peer.messenger.resolveTask(task)
            let messenger = peer.messenger
            // Subscribed before the network comes up: a member whose session opens at once
            // is shown coming online.
            let events = await messenger.subscribe()
            try await peer.goOnline(try options.network)
            let title = try? await messenger.summary(of: id).title
            return FollowSession(items: Control.follow(messenger, task: id, events: events), taskTitle: title, task: id.hex,
                                 caller: { request in try await Control.execute(request, on: messenger, vault: peer.vault) },
                                 closer: {}, local: peer, directory: options.directory.path)
        } catch {
            await peer.close()
            throw error
        }
    }

    private static func viaDaemon(task: String, options: VaultOptions) async throws -> FollowSession? {
        let request = try JSONEncoder().encode(ControlRequest(command: .follow, task: task))
        let opened: (ClientBox, [UInt8])? = try await offPool {
            guard let client = LocalControlClient.connect(path: options.directory.controlSocket) else { return nil }
            try client.send(Array(request))
            guard let first = try client.readLine() else {
                throw CLIError("the daemon of \(options.directory.path) went away without answering")
            }
            return (ClientBox(client: client), first)
        }
        guard let (box, first) = opened else { return nil }
        let decoder = JSONDecoder()
        guard let firstItem = try? decoder.decode(FollowItem.self, from: Data(first)) else {
            _ = try Control.unwrap(first)  // an error answer: throws it
            throw CLIError("the daemon sent a malformed answer")
        }
        let (items, continuation) = AsyncStream<FollowItem>.makeStream()
        continuation.yield(firstItem)
        Thread.detachNewThread {
            while let line = try? box.client.readLine() {
                guard let item = try? JSONDecoder().decode(FollowItem.self, from: Data(line)) else { continue }
                continuation.yield(item)
            }
            continuation.finish()
        }
        let directory = options.directory
        return FollowSession(
            items: items, taskTitle: nil, task: task,
            caller: { request in
                guard let answer = try await Control.callDaemon(request, directory: directory) else { throw CLIError("the daemon stopped") }
                return answer
            },
            closer: { box.client.finish() }, local: nil, directory: directory.path)
    }

    /// Runs a request on the session's task (`chat`'s messages, /attach, /files, /save) the
    /// way the session runs: through the daemon, or on the vault this process holds.
    func call<T: Decodable>(_ request: ControlRequest, as type: T.Type) async throws -> T {
        var request = request
        request.task = task
        return try JSONDecoder().decode(T.self, from: try await caller(request))
    }

    @discardableResult
    func send(_ text: String) async throws -> LogEntry { try await call(ControlRequest(command: .send, text: text), as: LogEntry.self) }

    /// Whether `close` was called: what arrives after (a local network going down: every
    /// member "left") is not for the person, who asked to stop.
    var isClosed: Bool { closedHere.load(ordering: .acquiring) }

    /// Stops the stream (the daemon ends its side when the client closes).
    func close() {
        closedHere.store(true, ordering: .releasing)
        closer()
    }

    /// True once the items have ended without `close`: the daemon the session runs through
    /// stopped or crashed, and nothing more will arrive (a session in this process ends
    /// only when closed). `log --follow` and `chat` then say so and exit non-zero rather
    /// than end quietly or go on showing nothing.
    var daemonWentAway: Bool { local == nil && !closedHere.load(ordering: .acquiring) }

    /// Brings a local network down and releases the vault.
    func finish() async {
        if let local { await local.close() }
    }
}

/// The follow connection's client: one thread reads it; `finish` (a `shutdown(2)`, safe
/// from any thread) only ends the sending side.
private final class ClientBox: @unchecked Sendable {
    let client: LocalControlClient
    init(client: LocalControlClient) { self.client = client }
}
