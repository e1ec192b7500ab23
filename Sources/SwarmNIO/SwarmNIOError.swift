import Foundation
import NIOCore
import Sodium

/// The one public error of SwarmNIO: what went wrong while opening or configuring a socket.
/// Network garbage never becomes an error here; it is dropped and counted by the owners of
/// the sockets.
public struct SwarmNIOError: CodedError {
    public enum Code: Hashable, Sendable {
        /// The address or interface given cannot be used (wrong family, not configured here).
        case invalidAddress
        /// `bind`, `setsockopt` or joining a multicast group failed.
        case socketSetupFailed
        /// The transport or discovery instance was already closed.
        case closed
    }

    public var code: Code
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }

    /// A socket error as a person reads it: the system's text for an errno ("Address
    /// already in use"), NIO's description otherwise.
    static func reason(_ error: any Error) -> String {
        if let io = error as? IOError { return errnoText(io.errnoCode).lowercased() }
        return "\(error)"
    }
}
