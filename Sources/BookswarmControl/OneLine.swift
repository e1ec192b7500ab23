import Books
import Messenger
import SwarmNIO
import Vault

/// An error whose text is meant for the person as it is (STYLE: a bad input from the user
/// is a clear one-line message).
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Any error as the one line a person reads: the CLI's stderr line, and the `error` of a
/// control answer (PROTOCOL.md §10.7).
public func oneLine(_ error: any Error) -> String {
    let text: String
    switch error {
    case let e as VaultError: text = e.message
    case let e as MessengerError: text = e.message
    case let e as CLIError: text = e.description
    case let e as BooksError: text = e.file.map { "\(e.detail) (\($0))" } ?? e.detail
    case let e as SwarmNIOError: text = e.detail
    default: text = "\(error)"
    }
    return text.split(whereSeparator: \.isNewline).joined(separator: " ")
}
