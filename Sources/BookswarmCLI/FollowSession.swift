import BookswarmControl
import Foundation
import Messenger
import SwarmNIO

/// A task's live view for `log --follow` and `chat`: from the daemon over the control
/// socket, or — without a daemon — from this process with the network up for as long as
/// the session lasts.
final class FollowSession: @unchecked Sendable {
    let items: AsyncStream<FollowItem>
    let taskTitle: String?
    private let sender: @Sendable (String) async throws -> Void
    private let closer: @Sendable () -> Void
    private let local: LocalPeer?

    private init(items: AsyncStream<FollowItem>, taskTitle: String?, sender: @escaping @Sendable (String) async throws -> Void,
                 closer: @escaping @Sendable () -> Void, local: LocalPeer?) {
        self.items = items
        self.taskTitle = taskTitle
        self.sender = sender
        self.closer = closer
        self.local = local
    }

    /// `role` names the command in the vault's lock, for the message another command gets
    /// while this one holds the vault ("in use by a bookswarm chat").
    static func open(task: String, options: VaultOptions, role: String) async throws -> FollowSession {
        if let session = try await viaDaemon(task: task, options: options) { return session }
        let peer: LocalPeer
        do {
            peer = try await Control.openLocal(options, role: role)
        } catch is Control.DaemonAppeared {
            guard let session = try await viaDaemon(task: task, options: options) else { throw CLIError("the daemon went away") }
            return session
        }
        do {
            let id = try await peer.messenger.resolveTask(task)
            try await peer.goOnline(try options.network)
            let messenger = peer.messenger
            let title = try? await messenger.summary(of: id).title
            return FollowSession(items: Control.follow(messenger, task: id), taskTitle: title,
                                 sender: { text in _ = try await messenger.send(text, to: id) },
                                 closer: {}, local: peer)
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
            guard let first = try client.readLine() else { throw CLIError("the daemon closed the connection without an answer") }
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
            items: items, taskTitle: nil,
            sender: { text in
                guard try await Control.callDaemon(ControlRequest(command: .send, task: task, text: text), directory: directory) != nil else {
                    throw CLIError("the daemon stopped")
                }
            },
            closer: { box.client.finish() }, local: nil)
    }

    func send(_ text: String) async throws { try await sender(text) }

    /// Stops the stream (the daemon ends its side when the client closes).
    func close() { closer() }

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
