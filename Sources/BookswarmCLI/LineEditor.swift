/// The chat prompt's line editor, without I/O: bytes from a terminal in non-canonical mode
/// go in (`feed`), what to do comes out, and `render` draws the line for a terminal of a
/// given width.
///
/// Keys, as readline and most shells have them: ← → (and Ctrl-B, Ctrl-F) move by a
/// character, Ctrl-← Ctrl-→ (and Alt-B, Alt-F) by a word; Home End (and Ctrl-A, Ctrl-E);
/// Backspace; Delete (and Ctrl-D on a line that is not empty); Ctrl-U, Ctrl-K and Ctrl-W
/// (and Alt-Backspace) delete to the start, to the end, and the word before the cursor;
/// ↑ ↓ (and Ctrl-P, Ctrl-N) walk the lines entered before, keeping the line being typed;
/// Ctrl-L redraws; Enter submits; Ctrl-C, and Ctrl-D on an empty line, end the chat.
/// Escape sequences it does not know are read whole and ignored, so no key ever inserts
/// stray characters. Text is edited by user-perceived character (a letter with its accents,
/// an emoji sequence), and drawn by its width in terminal columns: CJK and emoji take two,
/// combining marks none. A line wider than the terminal scrolls sideways under the cursor
/// instead of wrapping, so redrawing one line always redraws all of it.
struct LineEditor {
    enum Outcome: Equatable {
        /// Nothing visible changed (a byte of an unfinished sequence, an unknown key).
        case none
        /// The line or the cursor changed: draw it again.
        case redraw
        /// Enter: the line as typed (possibly blank), the editor empty again.
        case submit(String)
        /// Ctrl-D on an empty line.
        case endOfInput
        /// Ctrl-C.
        case interrupt
    }

    private(set) var text: [Character] = []
    /// Characters before the cursor.
    private(set) var cursor = 0
    private(set) var history: [String] = []
    /// The entry of `history` shown, or nil while editing the new line (`draft`).
    private var historyIndex: Int?
    private var draft: [Character] = []
    /// An escape sequence or a UTF-8 character not complete yet.
    private var pending: [UInt8] = []

    static let historyLimit = 500
    /// Longer escape sequences are not keys: dropped (they cannot grow without bound).
    static let maxSequence = 32

    var line: String { String(text) }

    // MARK: - Input

    mutating func feed(_ byte: UInt8) -> Outcome {
        if let first = pending.first {
            pending.append(byte)
            return first == 0x1B ? escape() : utf8()
        }
        switch byte {
        case 0x1B, 0x80...:
            pending = [byte]
            return byte == 0x1B ? .none : utf8()
        case 3: return .interrupt
        case 4: return text.isEmpty ? .endOfInput : deleteForward()
        case 13, 10: return submit()
        case 127, 8: return deleteBackward()
        case 1: return move(to: 0)
        case 5: return move(to: text.count)
        case 2: return move(to: cursor - 1)
        case 6: return move(to: cursor + 1)
        case 11: return delete(cursor..<text.count)
        case 21: return delete(0..<cursor)
        case 23: return delete(wordStart()..<cursor)
        case 16: return historyUp()
        case 14: return historyDown()
        case 12: return .redraw
        case 9: return insert(Unicode.Scalar(0x20))  // a tab would draw as a jump the editor cannot measure
        case 0..<32: return .none
        default: return insert(Unicode.Scalar(byte))
        }
    }

    /// `pending` starts with ESC: a CSI (`ESC [ params final`), an SS3 (`ESC O x`), or Alt
    /// with a key (`ESC x`).
    private mutating func escape() -> Outcome {
        guard pending.count >= 2 else { return .none }
        let kind = pending[1]
        // ESC ESC: Alt with an arrow in some terminals (`ESC ESC [ D`); the second starts
        // the sequence.
        if kind == 0x1B {
            pending = [0x1B]
            return .none
        }
        // A lone Escape, then Enter or another control key: the key counts as itself (Enter
        // still sends), not as Alt with it.
        if kind < 0x20 {
            pending = []
            return feed(kind)
        }
        if kind == UInt8(ascii: "[") {
            guard pending.count >= 3, let last = pending.last, (0x40...0x7E).contains(last) else {
                if pending.count > Self.maxSequence { pending = [] }
                return .none
            }
            let parameters = String(decoding: pending[2..<(pending.count - 1)], as: UTF8.self)
            pending = []
            return csi(parameters, final: last)
        }
        if kind == UInt8(ascii: "O") {
            guard pending.count >= 3 else { return .none }
            let final = pending[2]
            pending = []
            return csi("", final: final)
        }
        pending = []
        switch kind {
        case UInt8(ascii: "b"): return move(to: wordStart())
        case UInt8(ascii: "f"): return move(to: wordEnd())
        case 127, 8: return delete(wordStart()..<cursor)
        default: return .none
        }
    }

    private mutating func csi(_ parameters: String, final: UInt8) -> Outcome {
        // Ctrl, Alt or both on an arrow (`1;5C`, `1;3D`, …): by words.
        let modified = parameters.hasPrefix("1;") && parameters.count > 2
        switch final {
        case UInt8(ascii: "A"): return historyUp()
        case UInt8(ascii: "B"): return historyDown()
        case UInt8(ascii: "C"): return move(to: modified ? wordEnd() : cursor + 1)
        case UInt8(ascii: "D"): return move(to: modified ? wordStart() : cursor - 1)
        case UInt8(ascii: "H"): return move(to: 0)
        case UInt8(ascii: "F"): return move(to: text.count)
        case UInt8(ascii: "~"):
            switch parameters {
            case "1", "7": return move(to: 0)
            case "4", "8": return move(to: text.count)
            case "3": return deleteForward()
            default: return .none  // Insert, Page Up/Down, F5…, bracketed paste markers
            }
        default: return .none
        }
    }

    /// `pending` holds the start of a UTF-8 character: waits for the rest, then inserts it.
    private mutating func utf8() -> Outcome {
        let lead = pending[0]
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0
        if length == 0 || pending.dropFirst().contains(where: { $0 & 0xC0 != 0x80 }) {
            pending = []  // not UTF-8: a stray byte
            return .none
        }
        guard pending.count == length else { return .none }
        defer { pending = [] }
        guard let string = String(validating: pending, as: UTF8.self), let scalar = string.unicodeScalars.first else { return .none }
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned, .surrogate:
            return .none
        case .format where scalar != "\u{200D}":
            // Bidirectional overrides and other invisible formatting would reorder or hide
            // what the prompt shows; the zero-width joiner of emoji sequences is kept.
            return .none
        default:
            return insert(scalar)
        }
    }

    // MARK: - Editing

    /// Inserts a scalar at the cursor and re-forms the characters around it, so a combining
    /// accent joins the letter before it and an emoji sequence becomes one character.
    private mutating func insert(_ scalar: Unicode.Scalar) -> Outcome {
        var before = String(text[..<cursor])
        before.unicodeScalars.append(scalar)
        text = Array(before + String(text[cursor...]))
        // The cursor goes after the character that holds the scalar typed. Not "as many
        // characters as there were after it, from the end": the new one can join with those
        // (a man typed before a zero-width joiner and a house is one character where two
        // were; a regional indicator re-pairs the ones after it), and that count put the
        // cursor before the line's start.
        let typed = before.unicodeScalars.count
        var covered = 0
        cursor = 0
        while covered < typed, cursor < text.count {
            covered += text[cursor].unicodeScalars.count
            cursor += 1
        }
        leaveHistory()
        return .redraw
    }

    private mutating func move(to position: Int) -> Outcome {
        let position = min(max(position, 0), text.count)
        guard position != cursor else { return .none }
        cursor = position
        return .redraw
    }

    private mutating func delete(_ range: Range<Int>) -> Outcome {
        guard !range.isEmpty else { return .none }
        text.removeSubrange(range)
        cursor = range.lowerBound
        leaveHistory()
        return .redraw
    }

    private mutating func deleteBackward() -> Outcome { cursor > 0 ? delete((cursor - 1)..<cursor) : .none }
    private mutating func deleteForward() -> Outcome { cursor < text.count ? delete(cursor..<(cursor + 1)) : .none }

    /// Where the word before the cursor starts (white space before it skipped).
    private func wordStart() -> Int {
        var i = cursor
        while i > 0, text[i - 1].isWhitespace { i -= 1 }
        while i > 0, !text[i - 1].isWhitespace { i -= 1 }
        return i
    }

    /// Where the word after the cursor ends.
    private func wordEnd() -> Int {
        var i = cursor
        while i < text.count, text[i].isWhitespace { i += 1 }
        while i < text.count, !text[i].isWhitespace { i += 1 }
        return i
    }

    private mutating func submit() -> Outcome {
        let line = String(text)
        if !line.trimmingCharacters(in: .whitespaces).isEmpty, history.last != line {
            history.append(line)
            if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
        }
        text = []
        cursor = 0
        historyIndex = nil
        draft = []
        return .submit(line)
    }

    // MARK: - History

    private mutating func historyUp() -> Outcome {
        guard !history.isEmpty else { return .none }
        let index: Int
        if let current = historyIndex {
            guard current > 0 else { return .none }
            index = current - 1
        } else {
            draft = text
            index = history.count - 1
        }
        return show(index)
    }

    private mutating func historyDown() -> Outcome {
        guard let current = historyIndex else { return .none }
        if current + 1 < history.count { return show(current + 1) }
        historyIndex = nil
        text = draft
        cursor = text.count
        return .redraw
    }

    private mutating func show(_ index: Int) -> Outcome {
        historyIndex = index
        text = Array(history[index])
        cursor = text.count
        return .redraw
    }

    /// An edit of a line from the history makes it the new line (the history keeps it as it was).
    private mutating func leaveHistory() { historyIndex = nil }

    // MARK: - Drawing

    /// The line drawn in `columns` columns: carriage return, erase the line, the prompt, the
    /// part of the text around the cursor that fits (`…` first when the start is scrolled
    /// off), then the cursor put where it belongs.
    func render(prompt: String, columns: Int) -> String {
        let widths = text.map(Self.width)
        let promptWidth = prompt.reduce(0) { $0 + Self.width($1) }
        // One column kept free for the cursor after the last character.
        let room = max(columns - promptWidth - 1, 4)
        var start = 0
        if widths.reduce(0, +) > room {
            // Scrolled so the cursor sits at the right edge: its left neighbours fill the room
            // that the `…` marker leaves.
            var used = 0
            start = cursor
            while start > 0, used + widths[start - 1] <= room - 1 { start -= 1; used += widths[start] }
        }
        let marker = start > 0 ? "…" : ""
        let available = room - (start > 0 ? 1 : 0)
        var end = start, used = 0
        while end < text.count, used + widths[end] <= available { used += widths[end]; end += 1 }
        let column = promptWidth + (start > 0 ? 1 : 0) + widths[start..<cursor].reduce(0, +)
        return "\r\u{1b}[2K" + prompt + marker + String(text[start..<end]) + "\r" + (column > 0 ? "\u{1b}[\(column)C" : "")
    }

    /// Terminal columns a character takes: 0 for marks and invisible formatting alone, 2 for
    /// East Asian wide and full-width characters and emoji shown as emoji, 1 otherwise.
    static func width(_ character: Character) -> Int {
        let scalars = character.unicodeScalars
        guard let first = scalars.first else { return 0 }
        switch first.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format, .control: return 0
        default: break
        }
        if first.properties.isEmojiPresentation || scalars.contains("\u{FE0F}") { return 2 }
        switch first.value {
        case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF,
             0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3,
             0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
             0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x2FFFD, 0x30000...0x3FFFD:
            return 2
        default:
            return 1
        }
    }
}
