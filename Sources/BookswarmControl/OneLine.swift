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

/// What a terminal would act on instead of showing, and how it is shown instead.
public enum TerminalText {
    /// C0 control characters (escape sequences start with one; carriage returns, bells), DEL,
    /// the C1 controls, and the invisible bidirectional marks and overrides that reorder
    /// what is shown.
    public static func acts(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    /// `\u{1b}` for ESC.
    public static func escaped(_ scalar: Unicode.Scalar) -> String { "\\u{" + String(scalar.value, radix: 16) + "}" }
}
