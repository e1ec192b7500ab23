import Testing
@testable import BookswarmCLI

/// The chat prompt's line editor, in memory: keys as a terminal sends them.
@Suite struct LineEditorTests {
    static let left = "\u{1b}[D", right = "\u{1b}[C", up = "\u{1b}[A", down = "\u{1b}[B"
    static let home = "\u{1b}[H", end = "\u{1b}[F", delete = "\u{1b}[3~", backspace = "\u{7f}"

    /// Feeds the bytes; returns the outcomes other than `.none` and `.redraw`.
    @discardableResult
    static func type(_ keys: String, into editor: inout LineEditor) -> [LineEditor.Outcome] {
        Array(keys.utf8).map { editor.feed($0) }.filter { $0 != .none && $0 != .redraw }
    }

    @Test("cursor keys move through the line; text goes in at the cursor")
    func movingAndInserting() {
        var e = LineEditor()
        Self.type("helo" + Self.left + "l" + Self.home + "Oh, " + Self.end + "!", into: &e)
        #expect(e.line == "Oh, hello!")
        // Other spellings of the same keys: SS3 arrows, `1~`/`4~` Home/End, Ctrl-A/E/B/F.
        Self.type("\u{1b}OD\u{1b}OD" + "\u{1b}[1~" + "\u{06}" + "\u{05}" + "\u{02}" + "?", into: &e)
        #expect(e.line == "Oh, hello?!" && e.cursor == 10)
    }

    @Test("no key inserts the pieces of its escape sequence")
    func unknownSequencesAreSwallowed() {
        var e = LineEditor()
        // F5, Page Up, Insert, an SGR mouse report, bracketed-paste markers, Alt-x.
        Self.type("a\u{1b}[15~\u{1b}[5~\u{1b}[2~\u{1b}[<0;12;5Mb\u{1b}[200~c\u{1b}[201~\u{1b}xd", into: &e)
        #expect(e.line == "abcd")
        // A runaway sequence is dropped after its limit, and typing goes on.
        Self.type("\u{1b}[" + String(repeating: "1;", count: 40), into: &e)
        Self.type("~e", into: &e)
        #expect(e.line.hasSuffix("e") && !e.line.contains("["))
    }

    @Test("deleting: backspace, Delete, Ctrl-D, Ctrl-U, Ctrl-K, Ctrl-W, Alt-Backspace")
    func deleting() {
        var e = LineEditor()
        Self.type("one two three" + Self.backspace + Self.home + Self.delete + "\u{04}", into: &e)
        #expect(e.line == "e two thre")
        Self.type(Self.end + "\u{17}", into: &e)  // Ctrl-W: the word before the cursor
        #expect(e.line == "e two ")
        Self.type("\u{1b}\u{7f}", into: &e)  // Alt-Backspace: the word, its white space with it
        #expect(e.line == "e ")
        Self.type("x y z" + Self.left + Self.left + "\u{0b}", into: &e)  // Ctrl-K
        #expect(e.line == "e x y")
        Self.type("\u{15}", into: &e)  // Ctrl-U
        #expect(e.line == "" && e.cursor == 0)
        #expect(Self.type("\u{04}", into: &e) == [.endOfInput], "Ctrl-D on an empty line ends the input")
    }

    @Test("words: Ctrl-← Ctrl-→ and Alt-B Alt-F")
    func words() {
        var e = LineEditor()
        Self.type("alpha beta gamma" + "\u{1b}[1;5D", into: &e)
        #expect(e.cursor == 11)
        Self.type("\u{1b}b\u{1b}b", into: &e)
        #expect(e.cursor == 0)
        Self.type("\u{1b}f\u{1b}[1;5C", into: &e)
        #expect(e.cursor == 10)
        // Alt-← as some terminals send it (ESC ESC [ D): a move, no "[D" typed.
        Self.type("\u{1b}\u{1b}[D", into: &e)
        #expect(e.cursor == 9 && e.line == "alpha beta gamma")
    }

    @Test("Enter submits; ↑ ↓ walk the history and keep the line being typed")
    func history() {
        var e = LineEditor()
        #expect(Self.type("first\r", into: &e) == [.submit("first")])
        #expect(Self.type("second\n", into: &e) == [.submit("second")])
        #expect(Self.type("   \r", into: &e) == [.submit("   ")], "blank lines are submitted, not remembered")
        Self.type("third, half", into: &e)
        Self.type(Self.up, into: &e)
        #expect(e.line == "second")
        Self.type(Self.up + Self.up + Self.up, into: &e)
        #expect(e.line == "first")
        Self.type(Self.down, into: &e)
        #expect(e.line == "second")
        Self.type(Self.down, into: &e)
        #expect(e.line == "third, half", "the draft comes back")
        // An entry taken from the history and edited is a new line; the history keeps the old.
        Self.type("\u{10}" + " again\r", into: &e)  // Ctrl-P
        #expect(e.history == ["first", "second", "second again"])
        // A lone Escape does not swallow the Enter after it.
        #expect(Self.type("ok\u{1b}\r", into: &e) == [.submit("ok")])
        #expect(Self.type("\u{03}", into: &e) == [.interrupt])
    }

    @Test("text is edited by character: accents, emoji sequences, CJK; invisible controls are not typed")
    func unicode() {
        var e = LineEditor()
        // "e" then a combining acute accent: one character.
        Self.type("cafe\u{301}", into: &e)
        #expect(e.text.count == 4 && e.line == "cafe\u{301}")
        Self.type(Self.backspace, into: &e)
        #expect(e.line == "caf")
        // A family emoji (ZWJ sequence) is one character; a right-to-left override is refused.
        Self.type(" 👩‍👩‍👧 日本\u{202E}x", into: &e)
        #expect(e.text.count == 9, "\(e.text)")
        #expect(!e.line.unicodeScalars.contains("\u{202E}"))
        Self.type(Self.left + Self.backspace, into: &e)
        #expect(e.line == "caf 👩‍👩‍👧 日x")
        // A stray continuation byte or a broken sequence inserts nothing.
        #expect(Self.type("", into: &e).isEmpty)
        for byte: UInt8 in [0x80, 0xC3, 0x41] { _ = e.feed(byte) }
        #expect(e.line == "caf 👩‍👩‍👧 日x")
    }

    @Test("a character typed before others that it joins with leaves the cursor in the line")
    func insertingJoinsCharactersAfterTheCursor() {
        // A zero-width joiner and a house are two characters; a man typed before them makes
        // one (👨‍🏠): fewer characters than were after the cursor. The cursor went negative,
        // and drawing the line trapped (`widths[0..<-1]`).
        var e = LineEditor()
        Self.type("\u{200D}🏠" + Self.home + "👨", into: &e)
        #expect(e.line == "👨\u{200D}🏠" && e.text.count == 1, "\(e.text)")
        #expect((0...e.text.count).contains(e.cursor), "cursor \(e.cursor)")
        _ = e.render(prompt: "> ", columns: 80)
        // Regional indicators pair by position: after deleting what stood between them,
        // four single ones sit side by side; a fifth before them pairs them up anew.
        var flags = LineEditor()
        Self.type("🇦x🇧x🇨x🇩" + Self.home + Self.right + Self.delete + Self.right + Self.delete + Self.right + Self.delete,
                  into: &flags)
        Self.type(Self.home + "🇪", into: &flags)
        #expect((0...flags.text.count).contains(flags.cursor), "cursor \(flags.cursor) in \(flags.text)")
        _ = flags.render(prompt: "> ", columns: 80)
        Self.type("z" + Self.end + "!", into: &flags)
        #expect(flags.line.hasSuffix("!") && flags.line.unicodeScalars.contains("z"), "\(flags.line)")
    }

    @Test("widths in columns")
    func widths() {
        #expect(LineEditor.width("a") == 1)
        #expect(LineEditor.width("日") == 2)
        #expect(LineEditor.width("😀") == 2)
        #expect(LineEditor.width("👩‍👩‍👧") == 2)
        #expect(LineEditor.width("é") == 1)
        #expect(LineEditor.width("ｱ") == 1, "half-width katakana")
        #expect(LineEditor.width("Ａ") == 2, "full-width Latin")
    }

    @Test("a line wider than the terminal scrolls under the cursor and never wraps")
    func rendering() {
        var e = LineEditor()
        Self.type("hello", into: &e)
        #expect(e.render(prompt: "ab> ", columns: 80) == "\r\u{1b}[2Kab> hello\r\u{1b}[9C")
        Self.type(Self.home, into: &e)
        #expect(e.render(prompt: "ab> ", columns: 80) == "\r\u{1b}[2Kab> hello\r\u{1b}[4C")
        // 30 wide characters in 20 columns: 4 for the prompt, 1 kept for the cursor.
        var wide = LineEditor()
        Self.type(String(repeating: "日", count: 30), into: &wide)
        for columns in [20, 21, 37] {
            let drawn = wide.render(prompt: "ab> ", columns: columns)
            let shown = drawn.split(separator: "\r")[0].dropFirst("\u{1b}[2K".count)
            let width = shown.reduce(0) { $0 + LineEditor.width($1) }
            #expect(width < columns, "\(columns): \(shown)")
            #expect(shown.hasPrefix("ab> …"), "scrolled: \(shown)")
            let column = Int(drawn.split(separator: "[").last!.dropLast())!
            #expect(column == width && column < columns, "the cursor after the last character shown: \(drawn)")
        }
        Self.type(Self.home, into: &wide)
        let start = wide.render(prompt: "ab> ", columns: 20)
        #expect(start.hasPrefix("\r\u{1b}[2Kab> 日日日日日日日\r"), "at Home the start shows: \(start)")
    }
}
