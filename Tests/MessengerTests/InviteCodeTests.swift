import Testing
import Sodium
import Swarm
@testable import Messenger

@Suite struct InviteCodeTests {
    let creator = PeerID(Ed25519.KeyPair.generate().publicKey)

    @Test func roundTrip() throws {
        let code = InviteCode(creator: creator, task: .random())
        #expect(code.text.hasPrefix("bsw1-"))
        #expect(try InviteCode(parsing: code.text) == code)
        #expect(try InviteCode(parsing: "  \(code.text)\n") == code)
    }

    @Test func forgivesCaseSeparatorsAndLookalikes() throws {
        let code = InviteCode(creator: creator, task: .random())
        let body = code.text.dropFirst(5)
        #expect(try InviteCode(parsing: "BSW1-" + body.uppercased()) == code)
        #expect(try InviteCode(parsing: "bsw1-" + body.replacingOccurrences(of: "-", with: " ")) == code)
        #expect(try InviteCode(parsing: "bsw1-" + body.replacingOccurrences(of: "-", with: "")) == code)
        #expect(try InviteCode(parsing: "bsw1-" + body.replacingOccurrences(of: "0", with: "O").replacingOccurrences(of: "1", with: "l")) == code)
    }

    /// A code pasted with the sentence around it was refused ("should start with bsw1-",
    /// "it contains \".\""), and so was `bswl-` (l for 1, which the body forgives).
    @Test func findsTheCodeInWhatWasPastedAroundIt() throws {
        let code = InviteCode(creator: creator, task: .random())
        for pasted in ["Invite: \(code.text)", "<\(code.text)>", "\"\(code.text)\".", "\(code.text).", "(\(code.text))",
                       "join with \(code.text), see you", "bswl-" + code.text.dropFirst(5), "BSWI-" + code.text.dropFirst(5).uppercased()] {
            #expect(try InviteCode(parsing: pasted) == code, "\(pasted)")
        }
        // The checksum still decides, whatever surrounds the code.
        var chars = Array(code.text)
        chars[chars.count - 3] = chars[chars.count - 3] == "a" ? "b" : "a"
        #expect(throws: InviteCode.ParseError.checksumMismatch) { try InviteCode(parsing: "Invite: \(String(chars)).") }
        #expect(throws: InviteCode.ParseError.missingPrefix) { try InviteCode(parsing: "an invite will follow.") }
    }

    @Test func everySingleSubstitutionIsCaught() {
        let code = InviteCode(creator: creator, task: .random())
        let chars = Array(code.text)
        var checked = 0
        for i in 5..<chars.count where chars[i] != "-" {
            for replacement in "0123456789abcdefghjkmnpqrstvwxyz" where replacement != chars[i] {
                var mutated = chars
                mutated[i] = replacement
                let result = Result { try InviteCode(parsing: String(mutated)) }
                // A substitution in the final symbol's padding bits may decode to the same
                // bytes only if it is an alias; every other change must be refused.
                if case let .success(parsed) = result { #expect(parsed != code) ; Issue.record("accepted a typo at \(i)") }
                checked += 1
            }
        }
        #expect(checked > 2000)
    }

    @Test func clearErrors() {
        #expect(throws: InviteCode.ParseError.missingPrefix) { try InviteCode(parsing: "hello") }
        #expect(throws: InviteCode.ParseError.invalidCharacter("u")) { try InviteCode(parsing: "bsw1-abcu") }
        let text = InviteCode(creator: creator, task: .random()).text
        do {
            _ = try InviteCode(parsing: String(text.dropLast(11)))
            Issue.record("a truncated code was accepted")
        } catch {
            guard case .wrongLength = error else { Issue.record("expected wrongLength, got \(error)"); return }
        }
        #expect(throws: InviteCode.ParseError.self) { try InviteCode(parsing: text + "aa") }
        for error in [InviteCode.ParseError.checksumMismatch, .missingPrefix, .wrongLength(3), .unsupportedVersion(9), .invalidCreator] {
            #expect(!error.description.contains("\n"))
        }
    }

    /// Found by fuzz-messenger: a code pasted with a byte that is not UTF-8 (0x90, read as
    /// U+FFFD) was refused for containing "ï", the first byte of U+FFFD's UTF-8, which the
    /// code does not contain; a pasted "é" was "Ã" the same way, and a vertical tab went
    /// into the message raw. The character named is now the one pasted, and one that does
    /// not show is named by its code points, so the message stays one plain line.
    @Test func refusedCharactersAreNamedAsPasted() throws {
        let fuzzed: [UInt8] = Array("bsw1-0658hr-yxeg4z-35fxab-djtf5t-bnscms-r9qwes-84gv8".utf8) + [0x90, 0x59, 0x95, 0x61]
        let pasted = String(decoding: fuzzed, as: UTF8.self)
        #expect(throws: InviteCode.ParseError.invalidCharacter("\u{FFFD}")) { try InviteCode(parsing: pasted) }
        #expect(throws: InviteCode.ParseError.invalidCharacter("é")) { try InviteCode(parsing: "bsw1-abé") }
        #expect(throws: InviteCode.ParseError.invalidCharacter("\u{0B}")) { try InviteCode(parsing: "bsw1-ab\u{0B}cd") }
        #expect(InviteCode.ParseError.invalidCharacter("é").description == "invalid invite code: it contains \"é\", which no invite code has: check for a typo")
        // A code of a later format says so, not that it is no invite code.
        #expect(throws: InviteCode.ParseError.newerPrefix("bsw2")) { try InviteCode(parsing: "bsw2-aaaa-bbbb") }
        #expect(throws: InviteCode.ParseError.newerPrefix("bsw23")) { try InviteCode(parsing: "BSW23-aaaa") }
        #expect(throws: InviteCode.ParseError.missingPrefix) { try InviteCode(parsing: "bswx-aaaa") }
        #expect(InviteCode.ParseError.invalidCharacter("\u{0B}").description.contains("contains U+000B,"))
        #expect(InviteCode.ParseError.invalidCharacter("\u{202E}").description.contains("contains U+202E,"))
        #expect(InviteCode.ParseError.invalidCharacter("\u{A0}").description.contains("contains U+00A0,"))
        // Separators inside a code are still skipped, CR LF (one Character) included.
        let code = InviteCode(creator: creator, task: .random())
        #expect(try InviteCode(parsing: code.text.replacingOccurrences(of: "-", with: "\r\n")) == code)
    }

    @Test func topicIsStableAndSeparatesTasksAndCreators() {
        let task = TaskID.random()
        let a = InviteCode(creator: creator, task: task)
        #expect(a.topic == InviteCode(creator: creator, task: task).topic)
        #expect(a.topic != InviteCode(creator: creator, task: .random()).topic)
        #expect(a.topic != InviteCode(creator: PeerID(Ed25519.KeyPair.generate().publicKey), task: task).topic)
        // The topic is not the task id or the creator in disguise.
        #expect(a.topic.bytes != creator.bytes)
    }

    @Test func base32KnownAnswers() throws {
        #expect(Base32.encode([]) == "")
        #expect(Base32.encode([0xff]) == "zw")
        #expect(Base32.encode(Array("hello".utf8)) == "d1jprv3f")
        #expect(try Base32.decode("d1jprv3f") == Array("hello".utf8))
        #expect(throws: Base32.DecodeError.nonZeroPadding) { try Base32.decode("zz") }
    }
}
