import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The chat screen's bottom line: a prompt and what the person is typing, which incoming
/// lines never garble. Every output goes through `print(_:)`, which clears the prompt line
/// (`\r` + erase line), writes the incoming line, and redraws the prompt with the partial
/// input. On a terminal the input is read in non-canonical mode without echo and edited by
/// a `LineEditor` (cursor keys, history, word deletion; see there), which also draws it;
/// elsewhere (a pipe) lines are read as they come.
final class ChatTerminal: @unchecked Sendable {
    let prompt: String
    let isTerminal: Bool
    private let lock = NSLock()
    private var editor = LineEditor()
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
        lock.withLock { write(promptLine()) }
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
                write("\r\u{1b}[2K" + line + "\r\n" + promptLine())
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
                        if Self.isQuit(line) { break }
                        continuation.yield(line)
                    }
                    continuation.finish()
                    return
                }
                var byte: UInt8 = 0
                loop: while Glibc.read(STDIN_FILENO, &byte, 1) == 1 {
                    let outcome = lock.withLock { () -> LineEditor.Outcome in
                        let outcome = editor.feed(byte)
                        if outcome != .none { write(promptLine()) }
                        return outcome
                    }
                    switch outcome {
                    case .none, .redraw:
                        continue
                    case .interrupt, .endOfInput:
                        break loop
                    case let .submit(line):
                        if Self.isQuit(line) { break loop }
                        if !line.trimmingCharacters(in: .whitespaces).isEmpty { continuation.yield(line) }
                    }
                }
                continuation.finish()
            }
        }
    }

    /// `/quit`, with white space around it or not.
    static func isQuit(_ line: String) -> Bool { line.trimmingCharacters(in: .whitespaces) == "/quit" }

    /// The prompt line as the editor draws it for the terminal's width now (asked each
    /// time, so a resized window is drawn right at the next key or line).
    private func promptLine() -> String {
        var size = winsize()
        let columns = ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
        return editor.render(prompt: prompt, columns: columns)
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
