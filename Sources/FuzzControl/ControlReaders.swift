import BookswarmControl
import Foundation
import FuzzSupport
import Messenger
import NIOCore
import NIOEmbedded
import Swarm
import SwarmNIO
import Synchronization
import Vault

/// The readers of the daemon's control socket (PROTOCOL.md §10.7), the bytes local clients
/// write to it, behind a selector byte:
///
/// 0. a request line, answered as the daemon answers it (`Control.serve`) against a vault
///    (`VaultBed`) with a task, messages, a joined task and a compiled book;
/// 1. the socket's framing (`LineDecoder`) fed a script: a line limit (1…64 bytes, for the
///    daemon's 1 MiB), then byte chunks as reads deliver them, then EOF.
///
/// Beyond "no crash" (a crash here is a dead daemon): every answer line is a JSON object
/// without a line break; a line that does not decode as a request gets exactly the
/// malformed-request answer; any other gets exactly one answer (`follow`: one error, or
/// messages up to its `live` event), whose `result` decodes as the type the command expects,
/// or whose `error` is one non-empty line of printable text. The framing delivers exactly
/// the stream's complete lines, in order, up to the first line over the limit, and none after.
enum ControlReaders: FuzzTarget {
    static let name = "control"

    static func fuzzOne(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let rest = Array(input.dropFirst())
        switch selector % 2 {
        case 0: request(rest)
        default: framing(FuzzInput(rest))
        }
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        Seeds.requests.map { ("request-\($0.name)", [0] + Array($0.line.utf8)) }
            + Seeds.framings.map { ("framing-\($0.name)", [1] + $0.script) }
    }

    // MARK: - Requests

    static let malformed = #"{"ok":false,"error":"malformed control request"}"#
    static let network = NetworkStatus(drops: ["bad-mac": 3, "replayed": 1],
                                       interfaces: [DiscoveryInterface(name: "lo", families: ["IPv4"])])

    /// What a client that went away makes `reply` throw.
    struct ClientGone: Error {}

    static func request(_ line: [UInt8]) {
        let bed = VaultBed.shared
        let decoded = try? JSONDecoder().decode(ControlRequest.self, from: Data(line))
        // The answer lines, and whether the client went away.
        let client = Mutex<(lines: [[UInt8]], gone: Bool)>(([], false))
        let messenger = bed.messenger
        VaultBed.wait {
            await Control.serve(line, reply: { answer in
                try client.withLock {
                    guard !$0.gone else { throw ClientGone() }
                    $0.lines.append(answer)
                    // A follow streams until the client goes: this one goes after the history.
                    if decoded?.command == .follow, $0.lines.count > 64 || isLive(answer) {
                        $0.gone = true
                        throw ClientGone()
                    }
                }
            }, messenger: messenger, fileRoot: bed.files, network: { network })
        }
        let answers = client.withLock { $0.lines }
        for answer in answers {
            precondition(!answer.contains(UInt8(ascii: "\n")), "an answer line holds a line break")
            precondition((try? JSONSerialization.jsonObject(with: Data(answer))) is [String: Any],
                         "an answer line is a JSON object: \(String(decoding: answer, as: UTF8.self).debugDescription)")
        }
        guard let decoded else {
            precondition(answers.map { String(decoding: $0, as: UTF8.self) } == [malformed],
                         "a line that is no request gets the malformed-request answer")
            return
        }
        if decoded.command == .follow {
            checkFollow(answers)
        } else {
            precondition(answers.count == 1, "\(answers.count) answers to one \(decoded.command) request")
            checkAnswer(answers[0], of: decoded.command)
        }
        if mayWrite(decoded) { bed.reset() }
    }

    /// Whether a request may change the vault (tasks, books, read markers).
    static func mayWrite(_ request: ControlRequest) -> Bool {
        switch request.command {
        // `save` writes into the bed's `files` only (`fileRoot`), which reset() empties again.
        case .taskNew, .join, .send, .compile, .follow, .attach, .save, .taskRemove, .withdraw: return true
        case .name: return request.text != nil
        case .taskLeave: return request.confirm == true
        case .log: return request.markRead ?? true
        // No vault is given to `serve` here: a backup is refused, nothing is written.
        case .id, .tasks, .inspect, .check, .backup, .files: return false
        }
    }

    static func isLive(_ line: [UInt8]) -> Bool {
        (try? JSONDecoder().decode(FollowItem.self, from: Data(line)))?.event == .live
    }

    static func checkFollow(_ answers: [[UInt8]]) {
        precondition(!answers.isEmpty, "a follow request got no answer")
        if answers.count == 1, let object = try? JSONSerialization.jsonObject(with: Data(answers[0])) as? [String: Any],
           object["ok"] != nil {
            checkError(object)
            return
        }
        let items = answers.map { try? JSONDecoder().decode(FollowItem.self, from: Data($0)) }
        precondition(items.allSatisfy { $0 != nil }, "a follow line that is no follow item")
        precondition(items.last??.event == .live, "a follow stream without its live event")
        precondition(items.dropLast().allSatisfy { $0?.event == .message && $0?.entry != nil }, "the history holds only messages")
    }

    static func checkAnswer(_ answer: [UInt8], of command: ControlRequest.Command) {
        let object = try! JSONSerialization.jsonObject(with: Data(answer)) as! [String: Any]
        guard object["ok"] as? Bool == true else {
            checkError(object)
            return
        }
        precondition(object.count == 2, "an answer holds ok and result only")
        guard let result = object["result"],
              let data = try? JSONSerialization.data(withJSONObject: result, options: [.fragmentsAllowed]) else {
            preconditionFailure("an ok answer without a result")
        }
        // What the client decodes it as (Control.call).
        let decoder = JSONDecoder()
        let decodes: Bool
        switch command {
        case .id, .name: decodes = (try? decoder.decode(PeerIdentity.self, from: data)) != nil
        case .taskNew, .join: decodes = (try? decoder.decode(TaskSummary.self, from: data)) != nil
        case .tasks: decodes = (try? decoder.decode([TaskSummary].self, from: data)) != nil
        case .send: decodes = (try? decoder.decode(LogEntry.self, from: data)) != nil
        case .log: decodes = (try? decoder.decode([LogEntry].self, from: data)) != nil
        case .inspect: decodes = (try? decoder.decode(InspectReport.self, from: data)) != nil
        case .compile: decodes = (try? decoder.decode(CompileResult.self, from: data)) != nil
        case .check: decodes = (try? decoder.decode([CopyCheck].self, from: data)) != nil
        case .taskLeave: decodes = (try? decoder.decode(LeaveResult.self, from: data)) != nil
        case .backup: decodes = (try? decoder.decode(VaultBackup.self, from: data)) != nil
        case .attach: decodes = (try? decoder.decode(LogEntry.self, from: data))?.kind == .file
        case .files: decodes = (try? decoder.decode([FileReport].self, from: data)) != nil
        case .save: decodes = (try? decoder.decode(SaveResult.self, from: data)) != nil
        case .taskRemove: decodes = (try? decoder.decode(MoveResult.self, from: data))?.entry.kind == .successor
        case .withdraw: decodes = (try? decoder.decode(WithdrawResult.self, from: data))?.entry.withdrawn == true
        case .follow: preconditionFailure("follow streams")
        }
        precondition(decodes, "the result of \(command) does not decode as the client reads it")
    }

    static func checkError(_ object: [String: Any]) {
        // `input`: true or absent (a mistake in what the person typed, §10.7).
        let input = object["input"].map { $0 as? Bool == true }
        precondition(object.count == (input == nil ? 2 : 3) && input != false && object["ok"] as? Bool == false,
                     "an answer is ok:true, or ok:false with an error (and input:true)")
        guard let error = object["error"] as? String else { preconditionFailure("an error answer without its text") }
        precondition(!error.isEmpty, "an empty error")
        precondition(error.unicodeScalars.allSatisfy(isPrintable), "an error is one printable line: \(error.debugDescription)")
    }

    /// Not a control character (C0, DEL, C1), a line or paragraph separator, or a
    /// bidirectional override: what would break or disguise the line on a terminal.
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return false
        default: return true
        }
    }

    // MARK: - Framing

    static func framing(_ script: FuzzInput) {
        var script = script
        let limit = 1 + Int(script.byte() % 64)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder(maxLength: limit)))
        var stream: [UInt8] = []
        var delivered: [[UInt8]] = []
        var refused = false
        func collect() {
            while let line = try? channel.readInbound(as: ByteBuffer.self) { delivered.append(Array(line.readableBytesView)) }
        }
        var chunks = 0
        while !script.isAtEnd, chunks < 256, !refused {
            let chunk = script.chunk()
            stream += chunk
            chunks += 1
            do { try channel.writeInbound(ByteBuffer(bytes: chunk)) } catch { refused = true }
            collect()
        }
        if !refused {
            do { _ = try channel.finish() } catch { refused = true }
            collect()
        } else {
            _ = try? channel.finish()
        }
        var lines = stream.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        lines.removeLast()  // what follows the last line break is no complete line
        let expected = Array(lines.prefix { $0.count <= limit })
        precondition(delivered == expected,
                     "lines delivered \(delivered.map(\.count)) for complete lines \(lines.map(\.count)), limit \(limit)")
        if expected.count < lines.count { precondition(refused, "a line over the limit did not end the connection") }
    }
}
