import Books

/// The holder's half of one book's replication with one peer (PROTOCOL.md §9.7): requests
/// are checked, queued (a bounded queue: beyond it the answer is `busy`, and a peer that
/// keeps pushing is reported for a flood), and answered in order when the driver asks for
/// output, so one peer's requests cannot starve the others' or grow memory without bound.
/// Answers are rebuilt from the store on demand and cached briefly, so a request for a few
/// missing fragments does not read the pages again.
struct Server: Sendable {
    private struct Key: Hashable {
        var pages: Range<UInt64>
        var atLength: UInt64
        var fromLength: UInt64
        var maxBytes: UInt32
    }

    enum Outcome: Equatable {
        case nothing
        case refuse(RefuseReason, String)
    }

    let configuration: ReplicationConfiguration
    /// The remote is the book's author (the policy says so): a book this side refuses as
    /// forked is still served to it, from the history verified before (PROTOCOL.md §9.6).
    var servesForkedHistory = false
    private var queue: [ReplicationMessage.Request] = []
    private var cache: [Key: EncodedAnswer] = [:]
    private var cacheOrder: [Key] = []
    /// Requests refused as busy or unauthorized, against `floodLimit`.
    private var refused = 0
    private(set) var stats = ReplicationStats()

    /// Answers kept for re-requests of fragments: the window's worth of a reader (16) and
    /// some reordering slack.
    private static let cacheSize = 32

    init(configuration: ReplicationConfiguration) {
        self.configuration = configuration
    }

    var hasWork: Bool { !queue.isEmpty }

    /// Takes in a request; answers at once only when it cannot be served.
    mutating func receive(_ request: ReplicationMessage.Request, authorized: Bool, localLength: UInt64,
                          into out: inout [[UInt8]]) -> Outcome {
        guard authorized else {
            out.append(ReplicationMessage.noData(requestID: request.id, reason: .notAuthorized).encoded())
            return countRefusal("requests before proving the right to read")
        }
        guard request.atLength > 0, request.atLength <= localLength, request.pages.upperBound <= request.atLength,
              request.fromLength <= request.atLength,
              // Not `pages.count`: an Int, which traps for a range of more than 2^63 pages.
              request.pages.upperBound - request.pages.lowerBound <= configuration.maxPagesPerRequest else {
            stats.requestsRejected += 1
            out.append(ReplicationMessage.noData(requestID: request.id, reason: .outOfRange).encoded())
            return .nothing
        }
        if let i = queue.firstIndex(where: { $0.id == request.id }) {
            // A re-request while the first is still queued: serve the union once.
            if queue[i].pages == request.pages, queue[i].atLength == request.atLength, queue[i].fromLength == request.fromLength {
                queue[i].fragments = queue[i].fragments.isEmpty || request.fragments.isEmpty ? [] : queue[i].fragments + request.fragments
            }
            return .nothing
        }
        guard queue.count < configuration.maxQueuedServes else {
            out.append(ReplicationMessage.noData(requestID: request.id, reason: .busy).encoded())
            return countRefusal("more than \(configuration.maxQueuedServes) requests queued")
        }
        queue.append(request)
        return .nothing
    }

    /// Counts a request answered `no data(busy)` or `no data(not authorized)`; past the flood
    /// limit the channel is refused as a flood, whichever kind crossed it (PROTOCOL.md §9.6).
    private mutating func countRefusal(_ detail: String) -> Outcome {
        refused += 1
        stats.requestsRejected += 1
        return refused > configuration.floodLimit ? .refuse(.flood, "\(refused) requests refused: \(detail)") : .nothing
    }

    /// Drops a queued request the reader no longer needs.
    mutating func cancel(_ id: UInt32) {
        queue.removeAll { $0.id == id }
    }

    /// Answers queued requests until about `limit` messages were produced.
    mutating func produce(book: any ReplicatedBook, limit: Int, into out: inout [[UInt8]]) {
        var produced = 0
        while produced < limit, !queue.isEmpty {
            let request = queue.removeFirst()
            let key = Key(pages: request.pages, atLength: request.atLength, fromLength: request.fromLength, maxBytes: request.maxBytes)
            let body: EncodedAnswer
            if let cached = cache[key] {
                body = cached
            } else {
                switch build(request, book: book) {
                case let .success(built):
                    body = built
                    remember(key, built)
                case let .failure(reason):
                    out.append(ReplicationMessage.noData(requestID: request.id, reason: reason).encoded())
                    produced += 1
                    continue
                }
            }
            let fragments = ResponseBody.fragments(of: body, requestID: request.id, only: request.fragments)
            produced += fragments.count
            stats.fragmentsSent += UInt64(fragments.count)
            if request.fragments.isEmpty { stats.requestsServed += 1 } else { stats.retransmissions += 1 }
            out.append(contentsOf: fragments)
        }
    }

    private func build(_ request: ReplicationMessage.Request, book: any ReplicatedBook) -> Result<EncodedAnswer, NoDataReason> {
        let maxBytes = Int(min(UInt32(configuration.maxServeBytes), max(1, request.maxBytes)))
        do {
            // The pages go from the store's copy straight into the answer's buffer, sized at
            // the first page for pages like it (the answer stays cached: no room to spare
            // for a short one).
            var framed: [UInt8] = []
            let count = request.pages.count
            func frame(_ page: UnsafeRawBufferPointer) {
                if framed.isEmpty {
                    framed.reserveCapacity(min(count * (4 + page.count), maxBytes + 4 * count + page.count))
                }
                EncodedAnswer.frame(page, into: &framed)
            }
            let proof = servesForkedHistory
                ? try book.answerFromHistory(pages: request.pages, atLength: request.atLength, upgradingFrom: request.fromLength,
                                             maxBytes: maxBytes) { frame($0) }
                : try book.answer(pages: request.pages, atLength: request.atLength, upgradingFrom: request.fromLength,
                                  maxBytes: maxBytes) { frame($0) }
            let answer = EncodedAnswer(framedPages: framed, range: proof.pages, nodes: proof.nodes)
            // Fragments are numbered by a u16 (§9.2.4). A book's pages are at most 4 MiB, so an
            // answer stays far below that; a book that hands over more is refused, not cut.
            guard answer.count <= ReplicationWire.fragmentPayload * Int(UInt16.max) else { return .failure(.notHeld) }
            return .success(answer)
        } catch let error as BooksError {
            switch error.code {
            case .forked: return .failure(.forked)
            case .outOfRange: return .failure(.outOfRange)
            case .notHeld, .invalidProof, .staleProof, .invalidSignature, .pageTooLarge, .corruptDatabase,
                 .unsupportedSchemaVersion, .notABookStore, .storeLocked, .wrongMasterSecret, .invalidName,
                 .unknownBook, .closed, .storage, .diskFull, .storageReadOnly, .stopped, .readOnly:
                return .failure(.notHeld)
            }
        } catch {
            return .failure(.notHeld)
        }
    }

    private mutating func remember(_ key: Key, _ body: EncodedAnswer) {
        if cacheOrder.count >= Server.cacheSize {
            cache[cacheOrder.removeFirst()] = nil
        }
        cache[key] = body
        cacheOrder.append(key)
    }
}
