/// A handshake pattern as data (Noise §7): the pre-messages and the message patterns, each a
/// list of tokens. Initiator and responder messages alternate, starting with the initiator.
///
/// `named(_:)` knows the fundamental interactive patterns (§7.5), the one-way patterns
/// (§7.4), the deferred patterns (§18) and any combination of `pskN` modifiers (§9), e.g.
/// `"XXpsk3"` or `"NNpsk0+psk2"`.
public struct NoisePattern: Sendable, Hashable, CustomStringConvertible {
    public enum Token: String, Sendable, Hashable {
        case e, s, ee, es, se, ss, psk
    }

    /// The name as it appears in the protocol name, modifiers included.
    public let name: String
    /// Pre-message tokens known to both sides before the handshake (only `e` and `s`).
    public let initiatorPreMessage: [Token]
    public let responderPreMessage: [Token]
    /// The message patterns; message `i` is sent by the initiator when `i` is even.
    public let messages: [[Token]]

    public init(name: String, initiatorPreMessage: [Token] = [], responderPreMessage: [Token] = [], messages: [[Token]]) {
        precondition(!messages.isEmpty, "a handshake pattern has at least one message")
        precondition((initiatorPreMessage + responderPreMessage).allSatisfy { $0 == .e || $0 == .s },
                     "pre-messages hold only e and s")
        self.name = name
        self.initiatorPreMessage = initiatorPreMessage
        self.responderPreMessage = responderPreMessage
        self.messages = messages
    }

    /// True when the pattern has `psk` tokens: then `e` also mixes the key (§9.2).
    public var usesPresharedKeys: Bool { presharedKeyCount > 0 }

    public var presharedKeyCount: Int { messages.joined().filter { $0 == .psk }.count }

    /// One-way patterns (§7.4) have a single message; transport then flows initiator → responder only.
    public var isOneWay: Bool { messages.count == 1 }

    public var description: String { name }

    public static let IK = named("IK")!
    public static let XX = named("XX")!

    /// The pattern of a name such as `"IK"`, `"XX1"`, `"XXpsk3"` or `"NNpsk0+psk2"`; nil for
    /// names this implementation does not know.
    public static func named(_ s: String) -> NoisePattern? {
        let base: Substring
        var modifiers: [Substring] = []
        if let range = s.firstRange(of: "psk") {
            base = s[s.startIndex..<range.lowerBound]
            modifiers = s[range.lowerBound...].split(separator: "+", omittingEmptySubsequences: false)
        } else {
            base = s[...]
        }
        guard let notation = basePatterns[String(base)] else { return nil }
        guard let parsed = parse(notation) else { return nil }
        var messages = parsed.messages
        var seen = Set<Int>()
        for modifier in modifiers {
            // §9.1: "psk0" puts a psk token at the start of the first message, "pskN" at the
            // end of message N (1-based).
            guard modifier.hasPrefix("psk"), let n = Int(modifier.dropFirst(3)), String(n) == modifier.dropFirst(3),
                  n >= 0, n <= messages.count, seen.insert(n).inserted else { return nil }
            if n == 0 { messages[0].insert(.psk, at: 0) } else { messages[n - 1].append(.psk) }
        }
        return NoisePattern(name: s, initiatorPreMessage: parsed.initiatorPre, responderPreMessage: parsed.responderPre,
                            messages: messages)
    }

    /// Every base pattern name `named(_:)` accepts.
    public static var knownBaseNames: [String] { basePatterns.keys.sorted() }

    // The notation of §7: "->" lines are the initiator's, "<-" the responder's, and lines
    // before "..." are pre-messages. Kept as text so the table reads like the specification.
    private static let basePatterns: [String: String] = [
        // §7.4 one-way
        "N": "<- s | ... | -> e, es",
        "K": "-> s | <- s | ... | -> e, es, ss",
        "X": "<- s | ... | -> e, es, s, ss",
        // §7.5 interactive
        "NN": "-> e | <- e, ee",
        "NK": "<- s | ... | -> e, es | <- e, ee",
        "NX": "-> e | <- e, ee, s, es",
        "XN": "-> e | <- e, ee | -> s, se",
        "XK": "<- s | ... | -> e, es | <- e, ee | -> s, se",
        "XX": "-> e | <- e, ee, s, es | -> s, se",
        "KN": "-> s | ... | -> e | <- e, ee, se",
        "KK": "-> s | <- s | ... | -> e, es, ss | <- e, ee, se",
        "KX": "-> s | ... | -> e | <- e, ee, se, s, es",
        "IN": "-> e, s | <- e, ee, se",
        "IK": "<- s | ... | -> e, es, s, ss | <- e, ee, se",
        "IX": "-> e, s | <- e, ee, se, s, es",
        // §18.1 deferred
        "NK1": "<- s | ... | -> e | <- e, ee, es",
        "NX1": "-> e | <- e, ee, s | -> es",
        "X1N": "-> e | <- e, ee | -> s | <- se",
        "X1K": "<- s | ... | -> e, es | <- e, ee | -> s | <- se",
        "XK1": "<- s | ... | -> e | <- e, ee, es | -> s, se",
        "X1K1": "<- s | ... | -> e | <- e, ee, es | -> s | <- se",
        "X1X": "-> e | <- e, ee, s, es | -> s | <- se",
        "XX1": "-> e | <- e, ee, s | -> es, s, se",
        "X1X1": "-> e | <- e, ee, s | -> es, s | <- se",
        "K1N": "-> s | ... | -> e | <- e, ee | -> se",
        "K1K": "-> s | <- s | ... | -> e, es | <- e, ee | -> se",
        "KK1": "-> s | <- s | ... | -> e | <- e, ee, se, es",
        "K1K1": "-> s | <- s | ... | -> e | <- e, ee, es | -> se",
        "K1X": "-> s | ... | -> e | <- e, ee, s, es | -> se",
        "KX1": "-> s | ... | -> e | <- e, ee, se, s | -> es",
        "K1X1": "-> s | ... | -> e | <- e, ee, s | -> se, es",
        "I1N": "-> e, s | <- e, ee | -> se",
        "I1K": "<- s | ... | -> e, es, s | <- e, ee | -> se",
        "IK1": "<- s | ... | -> e, s | <- e, ee, se, es",
        "I1K1": "<- s | ... | -> e, s | <- e, ee, es | -> se",
        "I1X": "-> e, s | <- e, ee, s, es | -> se",
        "IX1": "-> e, s | <- e, ee, se, s | -> es",
        "I1X1": "-> e, s | <- e, ee, s | -> se, es",
    ]

    private static func parse(_ notation: String) -> (initiatorPre: [Token], responderPre: [Token], messages: [[Token]])? {
        let lines = notation.split(separator: "|").map { $0.trimmingCharacters(in: " ") }
        let split = lines.firstIndex(of: "...")
        let preLines = split.map { Array(lines[..<$0]) } ?? []
        let messageLines = split.map { Array(lines[($0 + 1)...]) } ?? lines
        var initiatorPre: [Token] = [], responderPre: [Token] = []
        for line in preLines {
            guard let (fromInitiator, tokens) = parseLine(line) else { return nil }
            if fromInitiator { initiatorPre = tokens } else { responderPre = tokens }
        }
        var messages: [[Token]] = []
        for (i, line) in messageLines.enumerated() {
            guard let (fromInitiator, tokens) = parseLine(line), fromInitiator == (i % 2 == 0) else { return nil }
            messages.append(tokens)
        }
        return (initiatorPre, responderPre, messages)
    }

    private static func parseLine(_ line: String) -> (Bool, [Token])? {
        let fromInitiator: Bool
        if line.hasPrefix("->") { fromInitiator = true } else if line.hasPrefix("<-") { fromInitiator = false } else { return nil }
        var tokens: [Token] = []
        for word in line.dropFirst(2).split(separator: ",") {
            guard let token = Token(rawValue: word.trimmingCharacters(in: " ")) else { return nil }
            tokens.append(token)
        }
        return (fromInitiator, tokens)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
