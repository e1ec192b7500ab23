import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The chat screen's bottom line: a prompt and what the person is typing, which incoming
/// lines never garble. Every output goes through `print(_:)`, which clears the prompt line
/// (`\r` + erase line), writes the incoming line, and redraws the prompt with the partial
/// input. On a terminal the input is read in non-canonical mode without echo, so this
/// class does the echo and knows the buffer; elsewhere (a pipe) lines are read as they come.
final class ChatTerminal: @unchecked Sendable {
    let prompt: String
    let isTerminal: Bool
    private let lock = NSLock()
    private var buffer: [UInt8] = []
    private var saved = termios()
    private var rawMode = false

    init(prompt: String) {
        self.prompt = prompt
        isTerminal = isatty(STDIN_FILENO) == 1
    }

    /// Switches the terminal to character-at-a-time input without echo (restored by `restore`).
    func start() {
        guard isTerminal else { return }
        tcgetattr(STDIN_FILENO, &saved)
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        rawMode = true
        lock.withLock { write("\(prompt)") }
    }

    func restore() {
        guard rawMode else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &saved)
        rawMode = false
        write("\r\u{1b}[2K")
    }

    /// Prints a line above the prompt, then redraws the prompt and the partial input.
    func print(_ line: String) {
        lock.withLock {
            if isTerminal {
                write("\r\u{1b}[2K" + line + "\r\n" + prompt + String(decoding: buffer, as: UTF8.self))
            } else {
                write(line + "\n")
            }
        }
    }

    /// Lines the person enters; finishes on /quit, Ctrl-D on an empty line, Ctrl-C, or EOF.
    func lines() -> AsyncStream<String> {
        AsyncStream { continuation in
            Thread.detachNewThread { [self] in
                if !isTerminal {
                    while let line = readLine() {
                        if line == "/quit" { break }
                        continuation.yield(line)
                    }
                    continuation.finish()
                    return
                }
                var byte: UInt8 = 0
                loop: while Glibc.read(STDIN_FILENO, &byte, 1) == 1 {
                    switch byte {
                    case 3:
                        break loop
                    case 4:
                        if lock.withLock({ buffer.isEmpty }) { break loop }
                    case 13, 10:
                        let line = lock.withLock { () -> String in
                            let text = String(decoding: buffer, as: UTF8.self)
                            buffer = []
                            write("\r\u{1b}[2K" + prompt)
                            return text
                        }
                        if line == "/quit" { break loop }
                        if !line.trimmingCharacters(in: .whitespaces).isEmpty { continuation.yield(line) }
                    case 127, 8:
                        lock.withLock {
                            guard !buffer.isEmpty else { return }
                            // Drop a whole UTF-8 character: continuation bytes first.
                            while let last = buffer.popLast(), last & 0xC0 == 0x80 {}
                            write("\r\u{1b}[2K" + prompt + String(decoding: buffer, as: UTF8.self))
                        }
                    case 21:  // Ctrl-U: clear the line
                        lock.withLock {
                            buffer = []
                            write("\r\u{1b}[2K" + prompt)
                        }
                    case 27, 0..<32:
                        break  // escape sequences and other controls are ignored
                    default:
                        lock.withLock {
                            buffer.append(byte)
                            if byte < 0x80 {
                                write(String(UnicodeScalar(byte)))
                            } else if String(validating: buffer, as: UTF8.self) != nil {
                                // A multi-byte character is complete: redraw to show it.
                                write("\r\u{1b}[2K" + prompt + String(decoding: buffer, as: UTF8.self))
                            }
                        }
                    }
                }
                continuation.finish()
            }
        }
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }
}
