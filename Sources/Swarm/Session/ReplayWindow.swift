/// The sliding anti-replay window of RFC 6479: a ring of 64-bit words, so advancing the
/// window clears whole words instead of shifting bits.
///
/// The zero value (`ReplayWindow()`) accepts any first counter. Call `accept` only after the
/// packet authenticated, so forged counters cannot move the window.
public struct ReplayWindow: Sendable, Equatable {
    /// Bits in the ring (RFC 6479 §2: a power of two, a multiple of the word size).
    public static let ringBits = 2048
    static let wordBits = 64
    static let wordCount = ringBits / wordBits
    /// How far behind the highest counter a packet may be and still be accepted: one word
    /// less than the ring, because the word holding the highest counter is only partly used
    /// (RFC 6479 §2).
    public static let windowSize: UInt64 = UInt64(ringBits - wordBits)

    /// Highest counter accepted so far (meaningless while `isEmpty`).
    public private(set) var highest: UInt64 = 0
    private var isEmpty = true
    private var ring = [UInt64](repeating: 0, count: wordCount)

    public init() {}

    /// Whether `counter` would be accepted now, without recording it.
    public func wouldAccept(_ counter: UInt64) -> Bool {
        if isEmpty || counter > highest { return true }
        if highest - counter >= Self.windowSize { return false }
        let (word, bit) = Self.position(counter)
        return ring[word] & (1 << bit) == 0
    }

    /// Records `counter`; returns false for a replay or a counter too far behind.
    public mutating func accept(_ counter: UInt64) -> Bool {
        let (word, bit) = Self.position(counter)
        if isEmpty {
            isEmpty = false
            highest = counter
            ring[word] = 1 << bit
            return true
        }
        if counter > highest {
            // Clear the words between the old highest and the new one; at most the whole ring.
            let oldWord = highest / UInt64(Self.wordBits)
            let newWord = counter / UInt64(Self.wordBits)
            let steps = min(newWord - oldWord, UInt64(Self.wordCount))
            var i: UInt64 = 1
            while i <= steps {
                ring[Int((oldWord + i) % UInt64(Self.wordCount))] = 0
                i += 1
            }
            highest = counter
        } else if highest - counter >= Self.windowSize {
            return false
        }
        let mask: UInt64 = 1 << bit
        if ring[word] & mask != 0 { return false }
        ring[word] |= mask
        return true
    }

    private static func position(_ counter: UInt64) -> (word: Int, bit: UInt64) {
        (Int((counter / UInt64(wordBits)) % UInt64(wordCount)), counter % UInt64(wordBits))
    }
}
