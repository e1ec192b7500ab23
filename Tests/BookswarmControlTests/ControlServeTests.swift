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
    /// Answers `line` as the daemon does (with paths kept under `fileRoot`, if given; its
    /// client gone when `clientGone` returns); the answer lines.
    func serve(_ line: String, _ messenger: Messenger, fileRoot: String? = nil,
               clientGone: (@Sendable () async -> Void)? = nil) async -> [String] {
        let answers = Mutex<[String]>([])
        await Control.serve(Array(line.utf8), reply: { answer in
            answers.withLock { $0.append(String(decoding: answer, as: UTF8.self)) }
        }, clientGone: clientGone, messenger: messenger, fileRoot: fileRoot, network: { NetworkStatus() })
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

    /// §10.7 `attach`, `files`, `save`: a file read from an absolute path, listed whole, written
    /// out; with a `fileRoot` (the control fuzz target's), nothing outside it is read or written.
    @Test func filesAreAttachedListedAndSaved() async throws {
        try await withMessenger { messenger in
            let root = NSTemporaryDirectory() + "bookswarm-control-files-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
            let bytes = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try bytes.write(to: URL(fileURLWithPath: root + "/roof.jpg"))
            _ = try await messenger.newTask(title: "Fix the roof")
            func result(_ line: String) async throws -> Any? {
                let answers = await serve(line, messenger, fileRoot: root)
                let first = try #require(answers.first)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
                #expect(answers.count == 1 && object["ok"] as? Bool == true, "\(line): \(answers)")
                return object["result"]
            }
            let entry = try #require(try await result(#"{"command":"attach","task":"Fix","path":"\#(root)/roof.jpg","text":"the leak"}"#) as? [String: Any])
            #expect(entry["kind"] as? String == "file" && entry["text"] as? String == "the leak")
            #expect((entry["file"] as? [String: Any])?["size"] as? Int == 300_000 && (entry["file"] as? [String: Any])?["parts"] as? Int == 2)
            let files = try #require(try await result(#"{"command":"files","task":"Fix"}"#) as? [[String: Any]])
            #expect(files.count == 1 && files[0]["whole"] as? Bool == true && files[0]["held"] as? Int == 300_000, "\(files)")
            let saved = try #require(try await result(#"{"command":"save","task":"Fix","name":"roof.jpg","path":"\#(root)/out"}"#) as? [String: Any])
            #expect(saved["path"] as? String == root + "/out/roof.jpg" && FileManager.default.contents(atPath: root + "/out/roof.jpg") == bytes)
            // Outside the root, or a relative path: refused, nothing read or written.
            for line in [#"{"command":"attach","task":"Fix","path":"/etc/hostname"}"#,
                         #"{"command":"save","task":"Fix","name":"roof.jpg","path":"\#(root)/../escaped.jpg"}"#,
                         #"{"command":"save","task":"Fix","name":"roof.jpg","path":"out"}"#] {
                let answers = await serve(line, messenger, fileRoot: root)
                #expect(answers.count == 1 && answers[0].hasPrefix(#"{"ok":false,"error":""#), "\(line): \(answers)")
            }
            #expect(!FileManager.default.fileExists(atPath: root + "/../escaped.jpg"))
            #expect(try await messenger.files(of: try await messenger.resolveTask("Fix")).count == 1)
        }
    }

    /// §10.7: a `save` whose client went away stops at its next step, leaves nothing, and the
    /// events say so; a `send` is carried out whatever its client did.
    @Test func aSaveWhoseClientWentAwayStopsAndLeavesNothing() async throws {
        try await withMessenger { messenger in
            let root = NSTemporaryDirectory() + "bookswarm-control-gone-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
            try Data(repeating: 7, count: 600_000).write(to: URL(fileURLWithPath: root + "/roof.jpg"))
            _ = try await messenger.newTask(title: "Fix the roof")
            let attached = await serve(#"{"command":"attach","task":"Fix","path":"\#(root)/roof.jpg"}"#, messenger)
            #expect(attached.first?.hasPrefix(#"{"ok":true"#) == true, "\(attached)")
            let sent = await serve(#"{"command":"send","task":"Fix","text":"hi"}"#, messenger, clientGone: {})
            #expect(sent.first?.hasPrefix(#"{"ok":true"#) == true, "\(sent)")
            // Gone before the daemon got to it: the serving task is cancelled from its start,
            // as the daemon's is when it stops, and `clientGone` has returned.
            let serving = Task {
                try? await Task.sleep(for: .seconds(60))
                return await serve(#"{"command":"save","task":"Fix","name":"roof.jpg","path":"\#(root)/out"}"#, messenger, clientGone: {})
            }
            serving.cancel()
            let answers = await serving.value
            let stopped = "saving roof.jpg to \(root)/out/roof.jpg was stopped before it was complete: nothing written"
            let answer = try #require(try JSONSerialization.jsonObject(with: Data((answers.first ?? "").utf8)) as? [String: Any])
            #expect(answers.count == 1 && answer["ok"] as? Bool == false && answer["error"] as? String == stopped, "\(answers)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/out").isEmpty)
            let events = try await messenger.inspect().events.filter { $0.kind == "cancelled" }
            #expect(events.map(\.detail) == [stopped + " (its client went away)"])
        }
    }

    @Test func aFollowOfAnUnknownTaskGetsOneErrorLine() async throws {
        try await withMessenger { messenger in
            let answers = await serve(#"{"command":"follow","task":"nothing"}"#, messenger)
            #expect(answers == [#"{"ok":false,"error":"unknown task \"nothing\" (see: bookswarm tasks)"}"#])
        }
    }
}
