#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system's text for an errno value ("No such file or directory"), for the one-line
/// messages that say why a file, lock or socket could not be used.
///
/// Not cryptography: it sits here, beside `CodedError` and `Hex`, because Sodium is the lowest
/// module that every module writing such messages (Books, SwarmNIO, Vault, the bookswarm
/// command) already depends on. glibc's `strerror` is thread-safe since 2.32 (an unknown code
/// is formatted in a per-thread buffer), and the text is copied out at once.
public func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
