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

/// "1 message", "2 messages": a count with its noun, singular for one (`plural`: the noun's
/// plural when it is not the noun with an "s").
public func counted(_ n: Int, _ noun: String, plural: String? = nil) -> String {
    n == 1 ? "1 \(noun)" : "\(n) \(plural ?? noun + "s")"
}

/// Any error as the one line a person reads: the CLI's stderr line, and the `error` of a
/// control answer (PROTOCOL.md §10.7). Line breaks become spaces; other characters that
/// would act on a terminal (an error may quote what was typed: a task name, a book name)
/// become visible `\u{…}` escapes, so the line shows as one plain line.
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
    var line = ""
    for scalar in text.split(whereSeparator: \.isNewline).joined(separator: " ").unicodeScalars {
        if scalar == "\t" {
            line += " "
        } else if TerminalText.acts(scalar) {
            line += TerminalText.escaped(scalar)
        } else {
            line.unicodeScalars.append(scalar)
        }
    }
    return line
}
