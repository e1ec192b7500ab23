/// A topic: 32 bytes that peers who share a task hold, and nobody else.
///
/// It is derived from an invite code (DESIGN decision 3) by the messenger; the swarm only
/// ever puts values *derived* from it on the wire (beacons per epoch, capabilities bound to
/// a session), never the topic itself.
public struct Topic: Hashable, Sendable, CustomStringConvertible {
    public static let length = 32
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Topic.length else { return nil }
        self.bytes = bytes
    }

    /// Short, non-reversible label for logs: never print the topic itself.
    public var description: String { "topic(\(bytes.count) bytes)" }
}
