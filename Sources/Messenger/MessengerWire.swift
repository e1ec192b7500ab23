import Books
import Swarm

/// The messenger's own channel inside a session (PROTOCOL.md §10.4): how a peer tells a
/// member which book it writes for it in a task. Per DESIGN decision 5 there is no byte
/// stream: the one message is idempotent state (my book for you in this task), re-sent
/// until acknowledged.
///
/// * Label: `"bsmsg/1"` ‖ task id (16 bytes). Each side opens its own channel per task.
/// * Messages: `u8 type ‖ 32-byte book id`; type 1 `book` (opener → remote), type 2 `ack`
///   (remote → opener, same book id). Anything else is dropped and counted.
///
/// `package`: the fuzz target (Sources/FuzzMessenger) reads through it.
package enum MessengerWire {
    static let labelTag: [UInt8] = Array("bsmsg/1".utf8)
    static let messageLength = 33

    package enum Message: Equatable {
        case book(BookID)
        case ack(BookID)
    }

    package static func label(_ task: TaskID) -> [UInt8] { labelTag + task.bytes }

    package static func task(inLabel label: [UInt8]) -> TaskID? {
        guard label.count == labelTag.count + TaskID.length, Array(label.prefix(labelTag.count)) == labelTag else { return nil }
        return TaskID(bytes: Array(label.suffix(TaskID.length)))
    }

    package static func encode(_ message: Message) -> [UInt8] {
        switch message {
        case let .book(id): return [1] + id.bytes
        case let .ack(id): return [2] + id.bytes
        }
    }

    package static func decode(_ bytes: [UInt8]) -> Message? {
        guard bytes.count == messageLength, let id = try? BookID(bytes: Array(bytes.dropFirst())) else { return nil }
        switch bytes[0] {
        case 1: return .book(id)
        case 2: return .ack(id)
        default: return nil
        }
    }
}
