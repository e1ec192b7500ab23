// JSONLines: the one-JSON-object-per-line event output of the processes the integration
// tests and benchmarks spawn (swarm-peer, replication-peer, bootstrap-peer,
// bookswarm-bootstrap), and their shared way to fail.
//
//     say("ready", ["peer": .string(id), "endpoint": .string(endpoint)])
//     → {"event":"ready","peer":"…","endpoint":"…"}
//
// `event` is always the first field; the others follow in the order given. No spaces, so a
// reader that looks for `"event":"connection"` or `"ms":` in the raw text finds them.
import Foundation
import Glibc
import Synchronization

public enum JSONLines {
    /// One event as JSON text, without the newline.
    public static func line(_ event: String, _ fields: KeyValuePairs<String, JSONValue> = [:]) -> String {
        line(event, fields: fields.map { ($0.key, $0.value) })
    }

    public static func line(_ event: String, fields: [(key: String, value: JSONValue)]) -> String {
        // `event` is the line's first field; a second one would make a duplicate key.
        precondition(!fields.contains { $0.key == "event" }, "\"event\" is given as the first argument, not as a field")
        var out = ""
        JSONValue.writeObject([("event", .string(event))] + fields, to: &out)
        return out
    }
}

/// Writes events to a file descriptor, one line per event. Each line goes out whole under a
/// lock (one `write(2)`, repeated only if the kernel takes part of it), so lines written by
/// concurrent tasks never interleave. If the descriptor fails (the reader is gone), the
/// rest of that line is dropped: a helper process has nobody else to tell.
public final class JSONLinesWriter: Sendable {
    public static let standardOutput = JSONLinesWriter(fileDescriptor: STDOUT_FILENO)

    private let fileDescriptor: Int32
    private let lock = Mutex(())

    public init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    public func say(_ event: String, _ fields: KeyValuePairs<String, JSONValue> = [:]) {
        writeLine(JSONLines.line(event, fields))
    }

    private func writeLine(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        lock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        return
                    }
                }
            }
        }
    }
}

/// One event on standard output (see `JSONLinesWriter`).
public func say(_ event: String, _ fields: KeyValuePairs<String, JSONValue> = [:]) {
    JSONLinesWriter.standardOutput.say(event, fields)
}

/// `TOOL: message` on standard error, then exit status 2 (bad arguments or a failed start).
public func fail(tool: String, _ message: String) -> Never {
    FileHandle.standardError.write(Data("\(tool): \(message)\n".utf8))
    exit(2)
}
