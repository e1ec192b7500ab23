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
