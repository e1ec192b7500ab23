import Foundation
import Messenger
import Synchronization
import Vault

/// The daemon's control protocol (PROTOCOL.md §10.7): one JSON request line per connection
/// on `<dir>/control.sock`; the answer is one line `{"ok":true,"result":…}` or
/// `{"ok":false,"error":"one line"}`; `follow` answers with one event per line
/// (`FollowItem`) until the client closes; `backup` and `save` stop when their client goes
/// away before the answer (`stopsWithItsClient`). Without a daemon, the same requests run in the
/// command's own process on the vault directly (`execute`), so every command behaves the
/// same either way. The client side is the bookswarm command's (`Control.call`).
public enum Control {
    /// Runs one request against a messenger (in the daemon, or in the command's process);
    /// `vault`, the messenger's, for what concerns the vault as a whole (`backup`).
    /// `fileRoot`: where `attach` may read and `save` may write (nil: anywhere this user may;
    /// a fuzzer keeps them inside a directory of its own).
    public static func execute(_ request: ControlRequest, on messenger: Messenger, vault: Vault? = nil,
                               network: NetworkStatus = NetworkStatus(), fileRoot: String? = nil) async throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // A vault opened online on a full disk (a daemon, a chat): a request that writes
        // tries the store for writing first, so that it works as soon as there is space.
        if !request.onlyReads { await messenger.resumeWriting() }
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
                throw CLIError("leaving deletes \(summary.title.map { "\"\($0)\"" } ?? "task \(task.hex)") from this vault, "
                               + "with its \(counted(summary.messages, "message")); run again with --yes to leave")
            }
            return try encoder.encode(try await messenger.leave(task))
        case .taskRemove:
            let task = try await messenger.resolveTask(request.task ?? "")
            let without = try await messenger.resolveMembers(request.members ?? [], in: task)
            return try encoder.encode(try await messenger.moveOn(task, without: without))
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
        case .backup:
            guard let vault else { throw CLIError("no vault to back up here") }
            let destination = request.path ?? ""
            // Seconds of disk work for a large store: off the cooperative pool, stopped between
            // its steps if this task is cancelled (its client went away).
            return try encoder.encode(try await offPool(stoppable: { try vault.backup(to: destination, stopped: $0) }))
        case .attach:
            let task = try await messenger.resolveTask(request.task ?? "")
            let path = try allowed(request.path ?? "", under: fileRoot)
            let name = request.name
            // Up to 64 MiB read to its end and hashed: off the cooperative pool. `attach`
            // reads it again a part at a time, beside each part's write to the store.
            let source = try await offPool { try Attachments.read(path: path, name: name) }
            return try encoder.encode(try await messenger.attach(source, caption: request.text ?? "", to: task))
        case .files:
            let task = try await messenger.resolveTask(request.task ?? "")
            return try encoder.encode(try await messenger.files(of: task))
        case .withdraw:
            let task = try await messenger.resolveTask(request.task ?? "")
            return try encoder.encode(try await messenger.withdraw(request.name ?? "", in: task))
        case .save:
            let task = try await messenger.resolveTask(request.task ?? "")
            let path = try allowed(request.path ?? "", under: fileRoot)
            let source = try await messenger.fileSource(request.name ?? "", in: task)
            return try encoder.encode(try await offPool(stoppable: { try source.write(to: path, stopped: $0) }))
        case .follow:
            throw CLIError("follow is a streaming request")
        }
    }

    /// `path` if it is absolute and, with a `root`, inside it (as written, `..` resolved).
    static func allowed(_ path: String, under root: String?) throws -> String {
        guard path.hasPrefix("/") else { throw CLIError("a path must be absolute (got \"\(path)\")") }
        if let root {
            let standardized = (path as NSString).standardizingPath
            guard standardized.hasPrefix(root + "/") else { throw CLIError("\(path) is outside \(root)") }
        }
        return path
    }

    public static func parseInvite(_ text: String) throws -> InviteCode {
        do { return try InviteCode(parsing: text) } catch {
            throw MessengerError(.invalidInvite, error.description)
        }
    }

    /// A task's messages, then live events: what `log --follow` and `chat` show — members
    /// coming and going, each file of another member's that becomes whole here, and each
    /// file shown that its author withdraws.
    /// `events`: a subscription made beforehand (by a process that subscribes before it
    /// goes online, so that no member coming online falls before it); else one is made here.
    public static func follow(_ messenger: Messenger, task: TaskID, events subscribed: AsyncStream<MessengerEvent>? = nil) -> AsyncStream<FollowItem> {
        AsyncStream(bufferingPolicy: .bufferingNewest(4096)) { continuation in
            let worker = Task {
                // Subscribe before reading the history, so nothing falls between the two.
                let events: AsyncStream<MessengerEvent>
                if let subscribed { events = subscribed } else { events = await messenger.subscribe() }
                let me = messenger.localPeer.publicKey.hex
                var seen: Set<String> = []
                // Where this follower stands in the log: a change then hands over only the
                // entries it added, however long the task.
                var cursor: Messenger.LogCursor?
                // Others' files not whole here yet (keys): each is told once when it is.
                var arriving: Set<String> = []
                // Files shown withdrawn, or told so (keys): each withdrawal is told once.
                var withdrawn: Set<String> = []
                func catchUp(history: Bool) async {
                    guard let (entries, next) = try? await messenger.logEntries(of: task, after: cursor) else { return }
                    cursor = next
                    for entry in entries {
                        guard seen.insert(entry.key).inserted else {
                            // Shown before, withdrawn since (the log hands it over again).
                            if entry.withdrawn, withdrawn.insert(entry.key).inserted {
                                arriving.remove(entry.key)
                                continuation.yield(FollowItem(event: .withdrawn, entry: entry))
                            }
                            continue
                        }
                        if entry.withdrawn { withdrawn.insert(entry.key) }
                        continuation.yield(FollowItem(event: .message, entry: entry))
                        if entry.kind == .file && entry.author != me && !entry.withdrawn { arriving.insert(entry.key) }
                    }
                    try? await messenger.markRead(task)
                    // Only while some file is arriving: one more read of the log's files.
                    guard !arriving.isEmpty, let files = try? await messenger.files(of: task) else { return }
                    for report in files where report.whole && !report.entry.withdrawn && arriving.contains(report.entry.key) {
                        arriving.remove(report.entry.key)
                        // Whole already in the history: nothing to tell.
                        if !history { continuation.yield(FollowItem(event: .whole, entry: report.entry)) }
                    }
                }
                await catchUp(history: true)
                continuation.yield(FollowItem(event: .live, summary: try? await messenger.summary(of: task)))
                for await event in events {
                    switch event {
                    case let .changed(changed) where changed == task:
                        await catchUp(history: false)
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

    /// Answers one request line from a local client through `reply` (one line per call,
    /// without its `\n`; it throws once the client has gone). Whatever the line holds, the
    /// answer is one `{"ok":false,"error":…}` line or a result: never a crash of the daemon.
    /// `clientClosed` returns when the client has closed its end: it ends a `follow` stream
    /// (an idle one writes nothing, so a failed write would not). `clientGone` returns when
    /// the client went away altogether (its connection closed, not only its sending side): it
    /// stops a request that `stopsWithItsClient` (`backup`, `save`) at its next step, with
    /// nothing of it left, and the messenger's events say so. Any other request is carried
    /// out and answered whatever the client did after sending it.
    public static func serve(_ line: [UInt8], reply: @escaping @Sendable ([UInt8]) async throws -> Void,
                             clientClosed: (@Sendable () async -> Void)? = nil, clientGone: (@Sendable () async -> Void)? = nil,
                             messenger: Messenger,
                             vault: Vault? = nil, fileRoot: String? = nil, network: @Sendable () async -> NetworkStatus) async {
        guard let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(line)) else {
            try? await reply(envelope(error: "malformed control request"))
            return
        }
        if request.command == .follow {
            do {
                let task = try await messenger.resolveTask(request.task ?? "")
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                        for await item in follow(messenger, task: task) {
                            try await reply(Array(try encoder.encode(item)))
                        }
                    }
                    if let clientClosed { group.addTask { await clientClosed() } }
                    try await group.next()
                    group.cancelAll()
                }
            } catch {
                try? await reply(envelope(error: oneLine(error)))
            }
            return
        }
        do {
            let status = request.command == .inspect ? await network() : NetworkStatus()
            let work: @Sendable () async throws -> Data = {
                try await execute(request, on: messenger, vault: vault, network: status, fileRoot: fileRoot)
            }
            let result = if request.command.stopsWithItsClient, let clientGone {
                try await stoppingIfGone(request, clientGone: clientGone, messenger: messenger, work)
            } else {
                try await work()
            }
            try? await reply(successPrefix + Array(result) + Array("}".utf8))
        } catch {
            var line = oneLine(error)
            // Refused by a store that could not be written since the daemon started: before
            // anything was written (every write is), and the daemon writes again by itself.
            if !request.onlyReads, let refusal = messenger.store.writeRefusal, line.contains(refusal.detail) {
                let mend = refusal.code == .diskFull ? "once there is space" : "once the vault can be written"
                line += "; nothing was changed: the daemon stores and sends again by itself \(mend), without a restart"
            }
            try? await reply(envelope(error: line, inputMistake: isInputMistake(error)))
        }
    }

    /// Runs `work`, cancelled if `clientGone` returns first: the client went away before the
    /// answer, and the work stops at its next step, leaving nothing (PROTOCOL.md §10.7). Nobody
    /// reads the answer then, so what became of the request goes into the messenger's events:
    /// stopped (`cancelled`), failed anyway, or complete before the daemon saw the client go.
    static func stoppingIfGone(_ request: ControlRequest, clientGone: @escaping @Sendable () async -> Void, messenger: Messenger,
                               _ work: @escaping @Sendable () async throws -> Data) async throws -> Data {
        let (outcome, wentAway) = await withTaskGroup(of: Result<Data, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await work()) } catch { return .failure(error) }
            }
            group.addTask {
                await clientGone()
                return nil
            }
            var wentAway = false
            while let next = await group.next() {
                guard let outcome = next else {
                    // Gone (or this task cancelled: the daemon is stopping): stop the work.
                    wentAway = true
                    group.cancelAll()
                    continue
                }
                group.cancelAll()
                return (outcome, wentAway)
            }
            preconditionFailure("the work's task always returns")
        }
        if wentAway {
            let what = "\(request.command.rawValue) to \(request.path ?? "")"
            switch outcome {
            case .success:
                await messenger.record("control", "\(what) was complete when its client went away: kept")
            case let .failure(error) where isCancellation(error):
                await messenger.record("cancelled", "\(oneLine(error)) (its client went away)")
            case let .failure(error):
                await messenger.record("error", "\(what) failed after its client went away: \(oneLine(error))")
            }
        }
        return try outcome.get()
    }

    /// Whether `error` says that work stopped because it was asked to.
    static func isCancellation(_ error: any Error) -> Bool {
        switch error {
        case let error as VaultError: error.code == .cancelled
        case let error as MessengerError: error.code == .cancelled
        default: error is CancellationError
        }
    }

    /// How a success answer begins (`{"ok":true,"result":R}`, §10.7): a client can take `R`
    /// out as it is, between these bytes and the last.
    public static let successPrefix = Array(#"{"ok":true,"result":"#.utf8)

    static func envelope(error: String, inputMistake: Bool = false) -> [UInt8] {
        let quoted = (try? JSONEncoder().encode(error)) ?? Data("\"error\"".utf8)
        return Array("{\"ok\":false,\"error\":".utf8) + Array(quoted) + Array((inputMistake ? ",\"input\":true}" : "}").utf8)
    }

    /// Whether `error` is a mistake in what the person typed — a name, a title, a message,
    /// an invite code — which the CLI answers with exit 64, like any mistake on the command
    /// line (an answer of the daemon says so: `"input": true`, §10.7).
    public static func isInputMistake(_ error: any Error) -> Bool {
        guard let error = error as? MessengerError else { return false }
        return [.invalidName, .invalidMessage, .invalidInvite].contains(error.code)
    }
}

/// Runs blocking work (disk, a blocking socket) on a thread of its own, off Swift's
/// cooperative pool, and returns its result. A cancellation of the calling task does not
/// reach it: see `offPool(stoppable:)`.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// `offPool` for work that can stop part-way: `body` gets a check, to ask between its parts,
/// that turns true once the calling task is cancelled (in the daemon: the request's client
/// went away).
public func offPool<T: Sendable>(stoppable body: @escaping @Sendable (_ stopped: () -> Bool) throws -> T) async throws -> T {
    let cancelled = CancelledFlag()
    return try await withTaskCancellationHandler {
        try await offPool { try body { cancelled.isRaised } }
    } onCancel: {
        cancelled.raise()
    }
}

/// A flag raised once, read from any thread.
final class CancelledFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    func raise() { raised.store(true, ordering: .releasing) }
    var isRaised: Bool { raised.load(ordering: .acquiring) }
}
