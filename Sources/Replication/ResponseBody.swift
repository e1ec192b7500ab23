import Books

/// The answer to a request before it is cut into fragments (PROTOCOL.md §9.3):
/// `u64 start ‖ u64 end ‖ u16 node count ‖ (u64 flat index ‖ 32-byte hash)* ‖
/// (u32 page length ‖ page)*` for the pages `start..<end`. The tree length and the length
/// it upgrades from are the request's; the signed root is the one the requester already
/// holds or was pushed, so neither travels again with every answer.
package struct ResponseBody: Equatable {
    package var pages: Range<UInt64>
    var nodes: [TreeNode]
    /// Views of the pages (of the received answer's buffer, when decoded: no copy).
    var pageData: [ArraySlice<UInt8>]

    /// §9.3: a proof of a range never needs more nodes than two per tree level for the
    /// range's two edges plus the upgrade path; 256 bounds it with room to spare.
    static let maxNodes = 256
    static let nodeSize = 8 + PageHash.length

    package func encoded() -> EncodedAnswer {
        var answer = EncodedAnswer(pages: self.pages, nodes: nodes)
        for page in pageData { answer.appendPage(page) }
        return answer
    }

    /// Decodes an answer; nil when malformed or when it contradicts `request` (another
    /// start, pages beyond the requested ones, or none when pages were asked for).
    package static func decode(_ bytes: [UInt8], for request: ReplicationMessage.Request) -> ResponseBody? {
        var cursor = WireCursor(bytes)
        guard let start = cursor.readUInt64(), let end = cursor.readUInt64(), start <= end,
              start == request.pages.lowerBound, end <= request.pages.upperBound,
              request.pages.isEmpty || end > start,
              let nodeCount = cursor.readUInt16(), Int(nodeCount) <= maxNodes else { return nil }
        var nodes: [TreeNode] = []
        nodes.reserveCapacity(Int(nodeCount))
        for _ in 0..<Int(nodeCount) {
            guard let index = cursor.readUInt64(), let hashBytes = cursor.readBytes(PageHash.length),
                  let hash = try? PageHash(bytes: hashBytes) else { return nil }
            nodes.append(TreeNode(index: index, hash: hash))
        }
        let count = end - start
        guard count <= UInt64(cursor.remaining / 4) else { return nil }
        var pageData: [ArraySlice<UInt8>] = []
        pageData.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let length = cursor.readUInt32(), Int(length) <= Book.maximumPageSize,
                  let page = cursor.readSlice(Int(length)) else { return nil }
            pageData.append(page)
        }
        guard cursor.isAtEnd else { return nil }
        return ResponseBody(pages: start..<end, nodes: nodes, pageData: pageData)
    }

    /// The data messages carrying `body` for request `requestID`: all of them, or those
    /// whose indices fall in `only` when it is not empty. Each is a whole encoded message.
    static func fragments(of body: EncodedAnswer, requestID: UInt32, only: [Range<UInt16>] = []) -> [[UInt8]] {
        let size = ReplicationWire.fragmentPayload
        let count = max(1, (body.count + size - 1) / size)
        precondition(count <= Int(UInt16.max), "an answer is bounded far below 65 535 fragments")
        // A re-request may name fragments beyond this answer's count (any u16, §9.2.4): those
        // are none of its fragments. Clamped before the range is made: `first..<count` with
        // `first > count` is no range (it trapped the holder).
        var wanted: [Range<Int>] = only.isEmpty ? [0..<count] : only.compactMap { range in
            let first = Int(range.lowerBound), end = min(Int(range.upperBound), count)
            return first < end ? first..<end : nil
        }
        wanted.sort { $0.lowerBound < $1.lowerBound }
        var messages: [[UInt8]] = []
        messages.reserveCapacity(wanted.reduce(0) { $0 + $1.count })
        for range in wanted {
            for index in range {
                let from = index * size
                let to = min(body.count, from + size)
                var message: [UInt8] = []
                message.reserveCapacity(ReplicationWire.dataHeader + to - from)
                message.append(ReplicationWire.version)
                message.append(ReplicationWire.MessageType.data.rawValue)
                message.appendLE(requestID)
                message.appendLE(UInt16(index))
                message.appendLE(UInt16(count))
                body.append(from..<to, to: &message)
                messages.append(message)
            }
        }
        return messages
    }
}

/// An answer's encoding (§9.3) as a holder keeps it: the head (range and proof nodes) and
/// the framed pages in two buffers, so that the pages are written once, straight from the
/// store, and cut into fragments from there.
package struct EncodedAnswer {
    private(set) var head: [UInt8] = []
    private(set) var pages: [UInt8] = []

    init(pages range: Range<UInt64>, nodes: [TreeNode]) {
        head.reserveCapacity(18 + nodes.count * ResponseBody.nodeSize)
        head.appendLE(range.lowerBound)
        head.appendLE(range.upperBound)
        head.appendLE(UInt16(nodes.count))
        for node in nodes {
            head.appendLE(node.index)
            node.hash.withUnsafeBytes { head.append(contentsOf: $0) }
        }
    }

    /// Pages framed ahead of their head, which needs the proof of the pages served.
    init(framedPages: [UInt8], range: Range<UInt64>, nodes: [TreeNode]) {
        self.init(pages: range, nodes: nodes)
        pages = framedPages
    }

    package var count: Int { head.count + pages.count }

    mutating func appendPage<Page: Collection<UInt8>>(_ page: Page) {
        EncodedAnswer.frame(page, into: &pages)
    }

    /// Appends `page` with its length, as §9.3 frames it.
    static func frame<Page: Collection<UInt8>>(_ page: Page, into out: inout [UInt8]) {
        out.appendLE(UInt32(page.count))
        out.append(contentsOf: page)
    }

    /// Appends bytes `range` of the whole encoding to `out`.
    package func append(_ range: Range<Int>, to out: inout [UInt8]) {
        let split = head.count
        if range.lowerBound < split { out.append(contentsOf: head[range.lowerBound..<min(range.upperBound, split)]) }
        if range.upperBound > split { out.append(contentsOf: pages[max(range.lowerBound, split) - split..<range.upperBound - split]) }
    }
}

/// Collects the fragments of one answer in place (one buffer, no copy per fragment kept)
/// and says which are still missing.
struct FragmentAssembly: Sendable {
    let count: Int
    private var buffer: [UInt8]
    private var received: [Bool]
    private var lastLength = 0
    private(set) var receivedCount = 0

    /// nil when `count` fragments would exceed `maxBytes`: the answer is larger than the
    /// request allows.
    init?(count: Int, maxBytes: Int) {
        guard count > 0, (count - 1) * ReplicationWire.fragmentPayload < maxBytes else { return nil }
        self.count = count
        // Not zeroed: `take` returns it only once every fragment has written its part.
        buffer = [UInt8](unsafeUninitializedCapacity: count * ReplicationWire.fragmentPayload) { _, initialized in
            initialized = count * ReplicationWire.fragmentPayload
        }
        received = [Bool](repeating: false, count: count)
    }

    var isComplete: Bool { receivedCount == count }

    /// Stores a fragment; false for a duplicate.
    mutating func insert(_ fragment: ReplicationMessage.DataFragment) -> Bool {
        let index = Int(fragment.index)
        guard index < count, !received[index] else { return false }
        received[index] = true
        receivedCount += 1
        let start = index * ReplicationWire.fragmentPayload
        buffer.withUnsafeMutableBytes { out in
            fragment.chunk.withUnsafeBytes { chunk in
                out.baseAddress!.advanced(by: start).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count)
            }
        }
        if index == count - 1 { lastLength = fragment.chunk.count }
        return true
    }

    /// The reassembled answer; only when complete.
    mutating func take() -> [UInt8] {
        precondition(isComplete, "we only take a complete answer")
        buffer.removeLast(ReplicationWire.fragmentPayload - lastLength)
        defer { buffer = [] }
        return buffer
    }

    /// The missing fragments as ranges, at most `limit` of them (the lowest).
    func missing(limit: Int) -> [Range<UInt16>] {
        var result: [Range<UInt16>] = []
        var index = 0
        while index < count, result.count < limit {
            if received[index] { index += 1; continue }
            let start = index
            while index < count, !received[index] { index += 1 }
            result.append(UInt16(start)..<UInt16(index))
        }
        return result
    }
}
