import Foundation
import JSONLines
import Synchronization
import Testing

/// The event lines the test-helper processes print: valid JSON whatever the text, typed
/// values, `event` first and the order given.
@Suite struct JSONLinesTests {
    /// The line parsed as the tests' reader (JSONLinesProcess) parses it.
    static func parse(_ line: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any], "not an object: \(line)")
    }

    @Test func stringsThatLookLikeNumbersStayStrings() throws {
        // Session ids are 12 hex digits; some parse as a Double (an overflowing one, or one
        // with leading zeros) and must still be written quoted.
        for text in ["1e5", "123456e78901", "0012", "001234567890", "42", "-7", "3.25", "NaN", "inf", "true", "null", ""] {
            let line = JSONLines.line("connection", ["session": .string(text)])
            #expect(line == "{\"event\":\"connection\",\"session\":\"\(text)\"}")
            #expect(try Self.parse(line)["session"] as? String == text)
        }
    }

    @Test func escapesQuotesBackslashesAndControlCharacters() throws {
        #expect(JSONLines.line("m", ["text": "say \"hi\""]) == #"{"event":"m","text":"say \"hi\""}"#)
        #expect(JSONLines.line("m", ["text": #"C:\dir\"#]) == #"{"event":"m","text":"C:\\dir\\"}"#)
        #expect(JSONLines.line("m", ["text": "a\nb\rc\td\u{08}e\u{0C}f"]) == #"{"event":"m","text":"a\nb\rc\td\be\ff"}"#)
        #expect(JSONLines.line("m", ["text": "\u{00}\u{01}\u{1B}\u{1F}"]) == #"{"event":"m","text":"\u0000\u0001\u001B\u001F"}"#)
        // U+007F and "/" need no escape; a line holds no raw newline whatever the text.
        #expect(JSONLines.line("m", ["text": "\u{7F}/"]) == "{\"event\":\"m\",\"text\":\"\u{7F}/\"}")
        let every = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init)))
        #expect(!JSONLines.line("m", ["text": .string(every)]).contains("\n"))
    }

    @Test func everyLineParsesAndRoundTripsItsStrings() throws {
        let texts = [
            "plain", "say \"hi\"", #"back\slash"#, "\\\"", "line\nbreak", "\r\n", "tab\there",
            String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init))),
            "\u{7F}", "é", "e\u{301}", "日本語", "😀👩‍👩‍👧", "\u{2028}\u{2029}", "\u{FFFD}", "\u{10FFFF}",
            "{\"event\":\"fake\"}", "1e5", "123456e78901", "0012", "",
        ]
        for text in texts {
            // Keys are escaped the same way.
            let line = JSONLines.line(text, ["text": .string(text), text: .string(text)])
            #expect(!line.contains("\n"))
            let object = try Self.parse(line)
            #expect(object["event"] as? String == text)
            #expect(object["text"] as? String == text)
            #expect(object[text] as? String == text)
        }
    }

    @Test func numbersAreNumbers() throws {
        let line = JSONLines.line("exit", [
            "int": .int(-42), "int64": .int(Int64.min), "uint64": .int(UInt64.max), "uint32": .int(UInt32(7)),
            "uint8": .int(UInt8(255)), "literal": 12, "yes": .bool(true), "no": false, "nothing": .null,
        ])
        #expect(line == #"{"event":"exit","int":-42,"int64":-9223372036854775808,"uint64":18446744073709551615,"#
            + #""uint32":7,"uint8":255,"literal":12,"yes":true,"no":false,"nothing":null}"#)
        let object = try Self.parse(line)
        #expect((object["int"] as? NSNumber)?.intValue == -42)
        #expect((object["int64"] as? NSNumber)?.int64Value == Int64.min)
        #expect((object["uint64"] as? NSNumber)?.uint64Value == UInt64.max)
        #expect((object["uint32"] as? NSNumber)?.intValue == 7)
        #expect(object["yes"] as? Bool == true)
        #expect(object["no"] as? Bool == false)
        #expect(object["nothing"] is NSNull)
    }

    @Test func doublesHaveTheirFixedDecimals() throws {
        #expect(JSONLines.line("t", ["ms": .fixed(12.345, decimals: 1)]) == #"{"event":"t","ms":12.3}"#)
        #expect(JSONLines.line("t", ["ms": .fixed(12.3456, decimals: 3)]) == #"{"event":"t","ms":12.346}"#)
        #expect(JSONLines.line("t", ["r": .fixed(0, decimals: 4)]) == #"{"event":"t","r":0.0000}"#)
        #expect(JSONLines.line("t", ["r": .fixed(-2.5, decimals: 2)]) == #"{"event":"t","r":-2.50}"#)
        #expect(JSONLines.line("t", ["r": .fixed(7.6, decimals: 0)]) == #"{"event":"t","r":8}"#)
        #expect(JSONLines.line("t", ["r": .fixed(1, decimals: -3)]) == #"{"event":"t","r":1}"#)
        #expect((try Self.parse(JSONLines.line("t", ["ms": .fixed(12.345, decimals: 1)]))["ms"] as? NSNumber)?.doubleValue == 12.3)
        #expect(try Self.parse(JSONLines.line("t", ["big": .fixed(1e300, decimals: 1)]))["big"] is NSNumber)
    }

    @Test func nonFiniteDoublesAreNull() throws {
        for value in [Double.nan, .infinity, -.infinity, .signalingNaN] {
            let line = JSONLines.line("t", ["ms": .fixed(value, decimals: 1)])
            #expect(line == #"{"event":"t","ms":null}"#)
            #expect(try Self.parse(line)["ms"] is NSNull)
        }
    }

    @Test func nestedObjectsKeepTheirOrder() throws {
        let line = JSONLines.line("exit", [
            "refusals": .object(["zeta": .int(1), "alpha": .int(2), "mid\"dle": .object(["deep": "x\ny"])]),
            "empty": .object([]),
            "pairs": .object([(key: "b", value: .int(UInt64(3))), (key: "a", value: .fixed(0.5, decimals: 1))]),
        ])
        #expect(line == #"{"event":"exit","refusals":{"zeta":1,"alpha":2,"mid\"dle":{"deep":"x\ny"}},"empty":{},"pairs":{"b":3,"a":0.5}}"#)
        let object = try Self.parse(line)
        let refusals = try #require(object["refusals"] as? [String: Any])
        #expect((refusals["zeta"] as? NSNumber)?.intValue == 1)
        #expect((refusals["mid\"dle"] as? [String: Any])?["deep"] as? String == "x\ny")
        #expect((object["empty"] as? [String: Any])?.isEmpty == true)
    }

    @Test func eventComesFirstThenTheOrderGiven() {
        #expect(JSONLines.line("ready") == #"{"event":"ready"}"#)
        #expect(JSONLines.line("ready", ["peer": "p", "endpoint": "e", "a": 1]) == #"{"event":"ready","peer":"p","endpoint":"e","a":1}"#)
        #expect(JSONLines.line("ready", fields: [(key: "z", value: 1), (key: "y", value: "2")]) == #"{"event":"ready","z":1,"y":"2"}"#)
    }

    /// Lines longer than a pipe's atomic write (PIPE_BUF, 4096 bytes) and than its whole
    /// buffer (64 KiB on Linux, so each write blocks part-way) from several threads at once:
    /// each arrives whole, on a line of its own.
    @Test func concurrentWritersNeverInterleaveWithinALine() throws {
        let pipe = Pipe()
        let writer = JSONLinesWriter(fileDescriptor: pipe.fileHandleForWriting.fileDescriptor)
        final class Received: Sendable { let data = Mutex(Data()) }
        let received = Received()
        let done = DispatchSemaphore(value: 0)
        let reader = Thread { [handle = pipe.fileHandleForReading] in
            let data = handle.readDataToEndOfFile()
            received.data.withLock { $0 = data }
            done.signal()
        }
        reader.start()
        let threads = 6, linesEach = 12
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for n in 0..<linesEach {
                let text = String(repeating: Character(Unicode.Scalar(UInt8(65 + t))), count: 100_000 + n) + "\"\\\n"
                writer.say("message", ["thread": .int(t), "n": .int(n), "text": .string(text)])
            }
        }
        try pipe.fileHandleForWriting.close()
        done.wait()
        let text = String(decoding: received.data.withLock { $0 }, as: UTF8.self)
        #expect(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == threads * linesEach)
        var seen = Set<[Int]>()
        for line in lines {
            let object = try Self.parse(String(line))
            let t = try #require((object["thread"] as? NSNumber)?.intValue)
            let n = try #require((object["n"] as? NSNumber)?.intValue)
            let expected = String(repeating: Character(Unicode.Scalar(UInt8(65 + t))), count: 100_000 + n) + "\"\\\n"
            #expect(object["text"] as? String == expected)
            seen.insert([t, n])
        }
        #expect(seen.count == threads * linesEach)
    }
}
