import Sodium

/// The one public error of the Swarm module, compared by code.
public struct SwarmError: CodedError {
    public enum Code: Hashable, Sendable {
        /// `run()` was called twice, or after `shutdown()`.
        case invalidState
        /// The session with the peer ended.
        case sessionClosed
        /// The channel was closed (by either side).
        case channelClosed
        /// A message or label exceeds `ChannelLimits.maxMessage`.
        case messageTooLarge
        /// The remote never accepted the channel, or no channel id was free.
        case channelOpenFailed
    }

    public let code: Code
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}
