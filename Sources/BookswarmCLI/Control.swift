import BookswarmControl
import Foundation
import Messenger
import Synchronization
import Sodium
import Swarm
import SwarmNIO
import Vault

/// The client side of the daemon's control protocol (BookswarmControl has the requests
/// and the daemon side): a request goes to the daemon of the vault if one runs, else it runs
/// in this process on the vault directly.
extension Control {
    /// Sends a request to the daemon of the vault, if one runs; nil when none does.
    /// Blocking POSIX I/O, so it runs on a thread of its own, off the cooperative pool.
    static func callDaemon(_ request: ControlRequest, directory: VaultDirectory) async throws -> Data? {
        let body = try JSONEncoder().encode(request)
        // Seconds of disk work: re-checking every book, up to 64 MiB written to every book of a
        // task (attach) or read, hashed and written out (save), or a copy of the whole store
        // (backup).
        let long = (request.command == .inspect && request.verify == true) || request.command == .attach
            || request.command == .save || request.command == .backup
        let limit: Duration = long ? .seconds(600) : .seconds(30)
        // This command exits then, closing its connection: a `backup` or `save` stops there
        // (§10.7), anything else may still be carried out.
        let late = if request.command.stopsWithItsClient {
            "the \(request.command.rawValue) is given up (the daemon stops it, leaving nothing, if it resumes)"
        } else if request.onlyReads {
            "is it stopped (kill -STOP) or stuck? Without a daemon, commands read the vault themselves"
        } else if request.command == .send {
            "if it resumes it may still carry the request out (the message may still be delivered: check `log` before sending again)"
        } else {
            "if it resumes it may still carry the request out: check (log, files, tasks) before trying again"
        }
        return try await withDeadline(limit, "the daemon of \(directory.path) did not answer within \(limit); \(late)") {
            try await offPool {
                guard let client = LocalControlClient.connect(path: directory.controlSocket) else { return nil }
                // The daemon stopped or crashed while at it (the connection closed, or reset):
                // what it did of the request is unknown.
                func wentAway(_ why: String?) -> CLIError {
                    CLIError("the daemon of \(directory.path) went away without answering\(why.map { " (\($0))" } ?? ""); "
                             + "the request may have been carried out: check (log, files, tasks) before trying again")
                }
                let answer: [UInt8]?
                do {
                    try client.send(Array(body))
                    answer = try client.readLine()
                } catch {
                    throw wentAway(oneLine(error))
                }
                guard let line = answer else { throw wentAway(nil) }
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
        // The daemon writes a success as these very bytes around the result: taken as they
        // are, the result is decoded once, by the caller. Parsed into objects and written
        // again, a `log` of 33 000 messages spent 1.7 of its 2.4 s here.
        if line.count > successPrefix.count, line.last == UInt8(ascii: "}"), line.starts(with: successPrefix) {
            return Data(line[successPrefix.count..<(line.count - 1)])
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw CLIError("the daemon sent a malformed answer")
        }
        if let ok = object["ok"] as? Bool, ok, let result = object["result"] {
            return try JSONSerialization.data(withJSONObject: result, options: [.fragmentsAllowed])
        }
        let message = object["error"] as? String ?? "the daemon refused the request"
        if object["input"] as? Bool == true { throw UsageError(message) }
        throw CLIError(message)
    }

    /// Runs a request: through the daemon if one runs, else on the vault in this process.
    /// `creating`: whether a new vault may be made where there is none (default: as the
    /// command goes, `makesAVault`; `log`, `files` and `chat` ask for the `id` of a vault
    /// that must be there).
    static func call<T: Decodable>(_ request: ControlRequest, _ options: VaultOptions, as type: T.Type,
                                   creating: Bool? = nil) async throws -> T {
        while true {
            if let answer = try await callDaemon(request, directory: options.directory) {
                return try JSONDecoder().decode(T.self, from: answer)
            }
            let peer: LocalPeer
            do {
                peer = try await openLocal(options, role: request.command.rawValue, creating: creating ?? request.command.makesAVault,
                                           readingIfUnwritable: request.onlyReads)
            } catch is DaemonAppeared {
                continue
            }
            do {
                let data = try await execute(request, on: peer.messenger, vault: peer.vault)
                await peer.close()
                return try JSONDecoder().decode(T.self, from: data)
            } catch {
                await peer.close()
                throw error
            }
        }
    }

    /// Opens the vault in this process. If a daemon holds it but its socket did not answer
    /// (it is starting), waits a little for the socket rather than failing at once; another
    /// holder (a chat, a log --follow without a daemon) is said at once.
    static func openLocal(_ options: VaultOptions, role: String, creating: Bool, readingIfUnwritable: Bool = false,
                          readingIfFull: Bool = false) async throws -> LocalPeer {
        var attempt = 0
        while true {
            do {
                return try LocalPeer.open(options, role: role, creating: creating, readingIfUnwritable: readingIfUnwritable,
                                          readingIfFull: readingIfFull)
            } catch let error as VaultError where error.code == .locked && attempt < 20 && VaultLock.heldByDaemon(options.directory) {
                attempt += 1
                try await Task.sleep(for: .milliseconds(100))
                if LocalControlClient.connect(path: options.directory.controlSocket) != nil { throw DaemonAppeared() }
            }
        }
    }

    struct DaemonAppeared: Error {}
}

extension ControlRequest.Command {
    /// Whether the command may make a new vault where there is none (`LocalPeer.open`):
    /// those a newcomer starts with. The rest need a vault that is there.
    var makesAVault: Bool {
        switch self {
        case .id, .name, .taskNew, .join: true
        case .taskLeave, .taskRemove, .tasks, .send, .log, .inspect, .compile, .check, .follow, .backup, .attach, .files, .save,
             .withdraw: false
        }
    }
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

