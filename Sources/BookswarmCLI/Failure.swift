import ArgumentParser
import BookswarmControl
import Books
import Foundation
import Messenger
import Sodium
import SwarmNIO
import Vault

/// Errors reach the person as one line on stderr and a non-zero exit (issue 6): every
/// command runs its body through `reportingErrors` (`oneLine`, `CLIError`: BookswarmControl).
func reportingErrors(_ body: () async throws -> Void) async throws {
    // A daemon that goes away mid-request must give an error line, not a silent SIGPIPE death.
    signal(SIGPIPE, SIG_IGN)
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let usage as UsageError {
        FileHandle.standardError.write(Data("bookswarm: \(oneLine(usage))\n".utf8))
        throw ExitCode.validationFailure
    } catch where Control.isInputMistake(error) {
        FileHandle.standardError.write(Data("bookswarm: \(oneLine(error))\n".utf8))
        throw ExitCode.validationFailure
    } catch {
        FileHandle.standardError.write(Data("bookswarm: \(oneLine(error))\n".utf8))
        throw ExitCode(1)
    }
}

/// A mistake on the command line found only once a command runs (an `--interface` no
/// interface here has): one line and exit 64 (EX_USAGE), like those the parser finds.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

func printOut(_ text: String) {
    writeOut(Data((text + "\n").utf8))
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    writeOut(try encoder.encode(value) + Data("\n".utf8))
}

/// Writes to standard output. When the reader went away (`bookswarm log | head`) the
/// command stops quietly, as `cat` would; any other failure to write (output closed, disk
/// full) is one line on stderr and exit 74 (EX_IOERR), never a crash.
func writeOut(_ data: Data) {
    data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(STDOUT_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            let code = errno
            if code == EPIPE { exit(0) }
            FileHandle.standardError.write(Data("bookswarm: cannot write the output: \(errnoText(code))\n".utf8))
            exit(74)
        }
    }
}
