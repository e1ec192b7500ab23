import Foundation
import Sodium
import Swarm

/// A task's random 128-bit id.
public struct TaskID: Hashable, Sendable, CustomStringConvertible {
    public static let length = 16
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == TaskID.length else { return nil }
        self.bytes = bytes
    }

    public static func random() -> TaskID { TaskID(bytes: SecureRandom.bytes(length))! }

    /// 32 lower-case hex digits.
    public var hex: String { bytes.hexString }
    public var description: String { hex }

    public init?(hex: String) {
        guard let bytes = [UInt8](hex: hex) else { return nil }
        self.init(bytes: bytes)
    }
}

/// The invite code of a task: the creator's peer id and the task id (DESIGN decision 3).
///
/// Anyone in a task shares the same code: it names the task's creator, whom a newcomer
/// dials first, and the topic that every member announces. Text form (PROTOCOL.md §10):
/// `bsw1-` followed by Crockford base32 of `version ‖ creator ‖ task ‖ checksum`, grouped by
/// dashes. The 4-byte keyed-BLAKE2b checksum turns any typo into an error, never a silent
/// join of another task.
public struct InviteCode: Hashable, Sendable, CustomStringConvertible {
    public let creator: PeerID
    public let task: TaskID

    /// Text prefix: the project and the format version a person can see.
    static let prefix = "bsw1-"
    static let formatVersion: UInt8 = 1
    static let checksumLength = 4
    static let checksumKey = Array("bookswarm/invite/checksum/v1....".utf8)  // 32 bytes
    static let topicDomain = Array("bookswarm/topic/v1".utf8)
    static let groupSize = 6
    static let payloadLength = 1 + 32 + TaskID.length
    /// The base32 characters of a code's body: its payload and checksum, 5 bits each.
    static let bodyCharacters = ((payloadLength + checksumLength) * 8 + 4) / 5

    public init(creator: PeerID, task: TaskID) {
        self.creator = creator
        self.task = task
    }

    /// The task's topic: BLAKE2b-256 keyed with the task id (the secret part) over the domain
    /// tag and the creator's id. Never sent anywhere; beacons and capabilities derive from it.
    public var topic: Topic {
        var data = InviteCode.topicDomain
        data += creator.bytes
        return Topic(bytes: BLAKE2b.hash(data, outputLength: 32, key: task.bytes))!
    }

    var payload: [UInt8] { [InviteCode.formatVersion] + creator.bytes + task.bytes }

    static func checksum(_ payload: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(payload, outputLength: 16, key: checksumKey).prefix(checksumLength).map { $0 }
    }

    public var text: String {
        let body = Base32.encode(payload + InviteCode.checksum(payload))
        var groups: [Substring] = []
        var rest = Substring(body)
        while !rest.isEmpty {
            groups.append(rest.prefix(InviteCode.groupSize))
            rest = rest.dropFirst(InviteCode.groupSize)
        }
        return InviteCode.prefix + groups.joined(separator: "-")
    }

    public var description: String { text }

    /// Why a pasted code was refused. Each case reads as a one-line message.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingPrefix
        /// "bsw2-" and on: a code of a later format.
        case newerPrefix(String)
        case invalidCharacter(Character)
        /// The characters of the body (after `bsw1-`, separators left out), against the
        /// `InviteCode.bodyCharacters` a code has: a person can count those, not bytes.
        case wrongLength(Int)
        case checksumMismatch
        case unsupportedVersion(UInt8)
        case invalidCreator

        public var description: String {
            switch self {
            case .missingPrefix: return "not a Bookswarm invite code: it should start with \"bsw1-\""
            case let .newerPrefix(tag): return "an invite code of a newer Bookswarm (\(tag)-): this one reads bsw1- codes; update it"
            case let .invalidCharacter(c): return "invalid invite code: it contains \(ParseError.show(c)), which no invite code has: check for a typo"
            case let .wrongLength(n):
                return "invalid invite code: it has \(n) character\(n == 1 ? "" : "s") after bsw1- instead of \(InviteCode.bodyCharacters): "
                    + "part of it is \(n < InviteCode.bodyCharacters ? "missing" : "repeated")"
            case .checksumMismatch: return "invalid invite code: its checksum does not match: a character was mistyped"
            case let .unsupportedVersion(v): return "an invite code of version \(v), newer than this program understands: update it"
            case .invalidCreator: return "invalid invite code: it names an invalid peer id"
            }
        }

        /// A character as a one-line message can show it: quoted when it is visible, else
        /// by its code points (a control character, a line break, a bidirectional override,
        /// a space that is not U+0020), so that the message stays one plain line.
        static func show(_ c: Character) -> String {
            let visible = c.unicodeScalars.allSatisfy { scalar in
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator, .spaceSeparator, .surrogate, .privateUse, .unassigned:
                    false
                default:
                    true
                }
            }
            guard !visible else { return "\"\(c)\"" }
            return c.unicodeScalars.map { scalar in
                let hex = String(scalar.value, radix: 16, uppercase: true)
                return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            }.joined(separator: " ")
        }
    }

    public init(parsing raw: String) throws(ParseError) {
        let trimmed = InviteCode.pasted(raw)
        // "bsw1", then the body; the dash after it is a separator like the others (a code
        // retyped with spaces for dashes, or with none, reads the same).
        let tag = InviteCode.prefix.dropLast()
        guard trimmed.lowercased().hasPrefix(tag) else {
            let lower = trimmed.lowercased()
            if lower.hasPrefix("bsw"), let digit = lower.dropFirst(3).first, digit.isNumber, digit != "0", digit != "1" {
                throw .newerPrefix(String(lower.prefix(3 + lower.dropFirst(3).prefix(while: \.isNumber).count)))
            }
            throw .missingPrefix
        }
        let body = trimmed.dropFirst(tag.count)
        let bytes: [UInt8]
        do {
            bytes = try Base32.decode(body, strictPadding: false)
        } catch let Base32.DecodeError.invalidCharacter(c) {
            throw .invalidCharacter(c)
        } catch {
            throw .checksumMismatch
        }
        guard bytes.count == InviteCode.payloadLength + InviteCode.checksumLength else {
            throw .wrongLength(body.filter { !"- \t\r\n".contains($0) }.count)
        }
        // Right length but stray bits after the last byte: the last symbol was mistyped.
        guard (try? Base32.decode(body)) != nil else { throw .checksumMismatch }
        let payload = Array(bytes.prefix(InviteCode.payloadLength))
        guard constantTimeEquals(InviteCode.checksum(payload), Array(bytes.suffix(InviteCode.checksumLength))) else {
            throw .checksumMismatch
        }
        guard payload[0] == InviteCode.formatVersion else { throw .unsupportedVersion(payload[0]) }
        guard let creator = try? PeerID(bytes: Array(payload[1..<33])), (try? creator.publicKey.x25519()) != nil else {
            throw .invalidCreator
        }
        self.creator = creator
        task = TaskID(bytes: Array(payload[33...]))!
    }

    /// The code in text pasted from a message: `Invite: bsw1-…`, `<bsw1-…>`, `"bsw1-…".`
    /// — from the first `bsw` followed by a digit (or by `l` or `i`, read as `1` there as in
    /// the body) up to the first punctuation mark after it (a sentence's, a quote's). The
    /// checksum still decides: nothing here can turn a wrong code into a valid one.
    static func pasted(_ raw: String) -> String {
        var text = Substring(raw.trimmingCharacters(in: .whitespacesAndNewlines))
        let lower = text.lowercased()
        if !lower.hasPrefix("bsw"), let found = lower.range(of: #"bsw[0-9li]"#, options: .regularExpression) {
            text = text.dropFirst(lower.distance(from: lower.startIndex, to: found.lowerBound))
        }
        // No code has punctuation: the first mark of it ends the code, and what was pasted after.
        if let end = text.firstIndex(where: { ".,;:!?()[]{}<>\"'«»“”‘’".contains($0) }) { text = text[..<end] }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        if text.count > 3, let mark = text.dropFirst(3).first, "lLiI".contains(mark), text.lowercased().hasPrefix("bsw") {
            text = text.prefix(3) + "1" + text.dropFirst(4)
        }
        return String(text)
    }
}
