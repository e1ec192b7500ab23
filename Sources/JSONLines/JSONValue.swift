import Foundation

/// One value of a JSON-lines event, typed by the caller: the writer never guesses a type from
/// text, so an id that happens to look like a number ("123456e78901", "0012") stays a string.
///
///     say("connection", ["peer": .string(peer), "ms": .fixed(ms, decimals: 1), "topics": .int(n)])
///
/// - `.string`: always quoted, escaped as RFC 8259 requires (`"`, `\` and U+0000…U+001F;
///   everything else, non-ASCII included, is written as UTF-8).
/// - `.int`: any integer type, as a JSON number (its decimal digits).
/// - `.fixed`: a `Double` with a fixed number of decimals (`"%.Nf"`). A NaN or an infinity
///   has no JSON number, so it is written as `null`.
/// - `.bool`: `true` or `false`; `.null`.
/// - `.object`: nested key/value pairs, written in the order given.
public struct JSONValue: Sendable {
    enum Kind: Sendable {
        /// Already valid JSON number text.
        case number(String)
        case string(String)
        case bool(Bool)
        case null
        case object([(key: String, value: JSONValue)])
    }

    let kind: Kind

    public static func string(_ text: String) -> JSONValue { JSONValue(kind: .string(text)) }

    public static func int<T: BinaryInteger>(_ value: T) -> JSONValue {
        // The decimal digits of an integer, with a leading "-" if negative, are a JSON number.
        JSONValue(kind: .number(String(value)))
    }

    /// `value` with `decimals` digits after the point (0…20; 0 writes an integer), or `null`
    /// when `value` is NaN or infinite.
    public static func fixed(_ value: Double, decimals: Int) -> JSONValue {
        guard value.isFinite else { return .null }
        let digits = min(max(decimals, 0), 20)
        return JSONValue(kind: .number(String(format: "%.\(digits)f", value)))
    }

    public static func bool(_ value: Bool) -> JSONValue { JSONValue(kind: .bool(value)) }

    public static let null = JSONValue(kind: .null)

    public static func object(_ fields: KeyValuePairs<String, JSONValue>) -> JSONValue {
        JSONValue(kind: .object(fields.map { ($0.key, $0.value) }))
    }

    public static func object(_ fields: [(key: String, value: JSONValue)]) -> JSONValue {
        JSONValue(kind: .object(fields))
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) { kind = .string(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { kind = .number(String(value)) }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { kind = .bool(value) }
}

extension JSONValue {
    /// Appends this value's JSON text to `out`.
    func write(to out: inout String) {
        switch kind {
        case let .number(text): out += text
        case let .string(text): JSONValue.writeString(text, to: &out)
        case let .bool(value): out += value ? "true" : "false"
        case .null: out += "null"
        case let .object(fields): JSONValue.writeObject(fields, to: &out)
        }
    }

    /// `{"key":value,…}` in the order given, without spaces.
    static func writeObject(_ fields: [(key: String, value: JSONValue)], to out: inout String) {
        out += "{"
        for (index, field) in fields.enumerated() {
            if index > 0 { out += "," }
            writeString(field.key, to: &out)
            out += ":"
            field.value.write(to: &out)
        }
        out += "}"
    }

    /// A JSON string (RFC 8259 §7): quotation mark, reverse solidus and the control
    /// characters U+0000…U+001F escaped (the short forms where JSON has one, else \u00XX);
    /// every other scalar as itself.
    static func writeString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
