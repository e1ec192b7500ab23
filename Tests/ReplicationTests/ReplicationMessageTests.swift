import Books
import Sodium
import Swarm
import Testing
@testable import Replication

@Suite("ReplicationMessage")
struct ReplicationMessageTests {
    static let book = BookID(Ed25519.KeyPair.generate().publicKey)
    static let hash = try! PageHash(bytes: [UInt8](repeating: 3, count: 32))

    static let samples: [ReplicationMessage] = [
        .open(.init(book: book, capability: [UInt8](repeating: 1, count: 32))),
        .status(.init(sequence: 7, acknowledged: 3, needsAck: true, rangesTruncated: false, length: 0, root: nil, held: [])),
        .status(.init(sequence: 1, acknowledged: 0, needsAck: false, rangesTruncated: true, length: 900,
                      root: (hash, [UInt8](repeating: 9, count: 64)), held: [0..<10, 20..<900])),
        .request(.init(id: 42, pages: 10..<74, atLength: 1000, fromLength: 500, maxBytes: 65536, fragments: [])),
        .request(.init(id: 43, pages: 0..<1, atLength: 1, fromLength: 0, maxBytes: 1, fragments: [0..<3, 7..<8])),
        .data(.init(requestID: 42, index: 0, count: 1, chunk: [1, 2, 3])),
        .data(.init(requestID: 42, index: 0, count: 2, chunk: ArraySlice(repeating: 5, count: ReplicationWire.fragmentPayload))),
        .noData(requestID: 5, reason: .busy),
        .cancel(requestID: 6),
        .refuse(.forked),
    ]

    @Test("every message round-trips and fits a channel message")
    func roundTrip() {
        for message in Self.samples {
            let bytes = message.encoded()
            #expect(bytes.count <= ReplicationWire.maxMessage)
            #expect(bytes[0] == ReplicationWire.version)
            #expect(ReplicationMessage.decode(bytes) == .success(message))
        }
    }

    @Test("a full status (60 ranges with a root) fits one message")
    func fullStatus() {
        let held = (0..<UInt64(ReplicationWire.maxStatusRanges)).map { ($0 * 10)..<($0 * 10 + 5) }
        let status = ReplicationMessage.status(.init(sequence: 1, acknowledged: 1, needsAck: false, rangesTruncated: true,
                                                     length: 1000, root: (Self.hash, [UInt8](repeating: 9, count: 64)), held: held))
        #expect(status.encoded().count <= ReplicationWire.maxMessage)
        #expect(ReplicationMessage.decode(status.encoded()) == .success(status))
    }

    @Test("every truncation of every message is malformed, never a crash")
    func truncations() {
        for message in Self.samples {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                let result = ReplicationMessage.decode(Array(bytes.prefix(cut)))
                // A data fragment cut short is still a (shorter) last fragment when it is the last.
                if case .data = message, cut > ReplicationWire.dataHeader { continue }
                #expect(result == .failure(.malformed), "\(message) cut at \(cut)")
            }
        }
    }

    @Test("unknown versions and types are ignored, not malformed")
    func unknown() {
        #expect(ReplicationMessage.decode([2, 1]) == .failure(.unknown))
        #expect(ReplicationMessage.decode([1, 99, 0]) == .failure(.unknown))
    }

    @Test("held ranges must be ordered, disjoint and within the length")
    func badRanges() {
        for held in [[5..<10, 0..<3], [0..<5, 5..<6], [0..<2000]] as [[Range<UInt64>]] {
            let status = ReplicationMessage.status(.init(sequence: 1, acknowledged: 0, needsAck: false, rangesTruncated: false,
                                                         length: 1000, root: (Self.hash, [UInt8](repeating: 9, count: 64)), held: held))
            #expect(ReplicationMessage.decode(status.encoded()) == .failure(.malformed))
        }
    }

    @Test("answers split into full fragments and reassemble from any order")
    func fragments() throws {
        let body = ResponseBody(pages: 3..<6, nodes: [TreeNode(index: 1, hash: Self.hash)],
                                pageData: [ArraySlice(repeating: 1, count: 3000), [], ArraySlice(repeating: 2, count: 17)])
        let bytes = body.encoded()
        let messages = ResponseBody.fragments(of: bytes, requestID: 9)
        #expect(messages.count == (bytes.count + ReplicationWire.fragmentPayload - 1) / ReplicationWire.fragmentPayload)
        var assembly = FragmentAssembly(count: messages.count, maxBytes: 1 << 20)!
        for message in messages.reversed() {
            guard case let .success(.data(fragment)) = ReplicationMessage.decode(message) else { Issue.record("not data"); return }
            #expect(message.count <= ReplicationWire.maxMessage)
            let first = assembly.insert(fragment)
            let again = assembly.insert(fragment)
            #expect(first && !again)
        }
        #expect(assembly.isComplete)
        let request = ReplicationMessage.Request(id: 9, pages: 3..<10, atLength: 10, fromLength: 0, maxBytes: 1 << 20, fragments: [])
        let whole = assembly.take()
        #expect(ResponseBody.decode(whole, for: request) == body)
        let only = ResponseBody.fragments(of: bytes, requestID: 9, only: [1..<2])
        #expect(only == [messages[1]])
    }

    @Test("capabilities bind the secret, the session, the role and the book")
    func capabilities() {
        let hh = [UInt8](repeating: 1, count: 64)
        let secret = [UInt8](repeating: 2, count: 32)
        let cap = ReadCapability.make(secret: secret, book: Self.book, handshakeHash: hh, sender: .initiator)
        #expect(CapabilityCheck(book: Self.book, capability: cap, handshakeHash: hh, sender: .initiator).proves(secret: secret))
        #expect(!CapabilityCheck(book: Self.book, capability: cap, handshakeHash: hh, sender: .responder).proves(secret: secret))
        #expect(!CapabilityCheck(book: Self.book, capability: cap, handshakeHash: [UInt8](repeating: 3, count: 64), sender: .initiator).proves(secret: secret))
        let other = BookID(Ed25519.KeyPair.generate().publicKey)
        #expect(!CapabilityCheck(book: other, capability: cap, handshakeHash: hh, sender: .initiator).proves(secret: secret))
        #expect(!CapabilityCheck(book: Self.book, capability: cap, handshakeHash: hh, sender: .initiator).proves(secret: [UInt8](repeating: 4, count: 32)))
    }
}
