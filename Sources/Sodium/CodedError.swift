/// An error compared by its code alone: the code is for programs to match on, the text
/// beside it for people. Every module's error type conforms (`SodiumError`, `NoiseError`,
/// `BooksError`, `SwarmError`, `SwarmNIOError`, `VaultError`, `MessengerError`), so
/// `error == SodiumError(.invalidLength, "")` and sets of errors mean "the same kind".
public protocol CodedError: Error, Hashable, CustomStringConvertible, Sendable {
    associatedtype Code: Hashable & Sendable
    var code: Code { get }
}

extension CodedError {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
