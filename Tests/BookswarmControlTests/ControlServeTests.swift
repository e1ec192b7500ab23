import Books
import BookswarmControl
import Foundation
import Messenger
import Sodium
import Synchronization
import Testing

/// The daemon's answers to request lines (PROTOCOL.md §10.7), over a store of its own.
@Suite("Control requests answered")
struct ControlServeTests {
    /// Answers `line` as the daemon does; the answer lines.
    func serve(_ line: String, _ messenger: Messenger) async -> [String] {
        let answers = Mutex<[String]>([])
        await Control.serve(Array(line.utf8), reply: { answer in
            answers.withLock { $0.append(String(decoding: answer, as: UTF8.self)) }
        }, messenger: messenger, network: { NetworkStatus() })
        return answers.withLock { $0 }
    }

    func withMessenger(_ body: (Messenger) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "bookswarm-control-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try BookStore.open(directory: directory, masterSecret: SecretBytes(copying: [UInt8](repeating: 7, count: 32)))
        defer { store.close() }
        let identity = try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 8, count: 32)))
        try await body(try Messenger(identity: identity, store: store))
    }

    @Test func aLineThatIsNoRequestGetsTheMalformedAnswer() async throws {
        try await withMessenger { messenger in
            for line in ["send roof hi", #"{"command":"delete"}"#, #"{"command":"inspect","verify":"yes"}"#, "[[[[[[[["] {
                #expect(await serve(line, messenger) == [#"{"ok":false,"error":"malformed control request"}"#], "\(line)")
            }
        }
    }

    /// Found by fuzz-control: an error quoting what was typed carried its control characters
    /// as they were, and `bookswarm` printed them to the terminal (an escape sequence acted).
    @Test func anErrorQuotingTheRequestIsOnePrintableLine() async throws {
        try await withMessenger { messenger in
            _ = try await messenger.newTask(title: "Fix the roof")
            let answers = await serve(#"{"command":"send","task":"Fix\u001b[2J\u0007 the\nroof\u202e","text":"hi"}"#, messenger)
            #expect(answers.count == 1)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(answers[0].utf8)) as? [String: Any])
            #expect(object["ok"] as? Bool == false)
            let error = try #require(object["error"] as? String)
            #expect(error == #"unknown task "Fix\u{1b}[2J\u{7} the roof\u{202e}" (see: bookswarm tasks)"#)
        }
    }

    @Test func aFollowOfAnUnknownTaskGetsOneErrorLine() async throws {
        try await withMessenger { messenger in
            let answers = await serve(#"{"command":"follow","task":"nothing"}"#, messenger)
            #expect(answers == [#"{"ok":false,"error":"unknown task \"nothing\" (see: bookswarm tasks)"}"#])
        }
    }
}
