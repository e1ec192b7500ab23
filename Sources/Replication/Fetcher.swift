import Books
import Swarm

/// The reader's half of one book's replication with one peer (PROTOCOL.md §9.6): it knows
/// what the remote holds from its status, asks for what this side lacks and wants within
/// a window of bytes, reassembles the fragments of each answer, re-asks for the missing
/// ones on timeout, and hands complete answers to the book, which verifies before storing.
///
/// Lengths: a request for pages below the verified length is proven against the root
/// held at that length. Pages beyond it need an *upgrade* — a proof from the verified
/// length to the remote's signed root — and only one upgrade is in flight at a time, so
/// every other answer stays valid whatever order they arrive in.
struct Fetcher: Sendable {
    /// What the remote said it holds, its root checked.
    struct RemoteView {
        var length: UInt64
        var root: SignedRoot?
        var held: [Range<UInt64>]
    }

    struct InFlight {
        var request: ReplicationMessage.Request
        /// The root the answer is checked against.
        var root: SignedRoot
        var isUpgrade: Bool
        var firstSent: Timestamp
        var deadline: Timestamp
        var retries: Int
        var assembly: FragmentAssembly?
        /// The order of its latest (re)transmission among all requests sent.
        var sendOrder: UInt64
        var lastSent: Timestamp
    }

    /// What an input led to, for the machine to act on.
    enum Outcome: Equatable {
        case nothing
        /// Pages were verified and stored.
        case stored(pages: Int)
        /// The remote broke the protocol or sent data that does not verify.
        case refuse(RefuseReason, String, ForkProof?)
        /// The local store failed (closed, damaged): not the remote's fault.
        case localFailure(String)
        /// The local store could not take verified pages for a reason that may pass (a full
        /// disk, …): they are asked for again after a pause (`storeRetryInitial`).
        case storeFailed(String)
    }

    var interest: Interest
    let configuration: ReplicationConfiguration
    private(set) var remote: RemoteView?
    private(set) var inFlight: [UInt32: InFlight] = [:]
    private var nextID: UInt32 = 1
    private var rtt: RoundTripEstimator
    /// Mean page size seen, to size requests in pages. Starts at 1 KiB, a chat page.
    private var pageSizeEstimate = 1024.0
    private var staleInARow = 0
    /// After `busy` or `notAuthorized`, or a store failure, no new request before this time.
    private var backoffUntil: Timestamp?
    /// Store failures in a row (`storeFailed`), and whether the pause they set is running.
    private var storeFailuresInARow = 0
    private var storePauseUntil: Timestamp?
    /// Roots the remote announced, by length, to catch it announcing two at one length.
    private var remoteRoots: [UInt64: SignedRoot] = [:]
    /// Counts (re)transmissions of requests, to order them.
    private var sendCounter: UInt64 = 0
    /// When the last fragment arrived: while answers flow, a request is not given up on
    /// merely for taking long (the reader or the holder is busy, not the path lossy).
    private var lastArrival: Timestamp?
    private(set) var stats = ReplicationStats()

    init(interest: Interest, configuration: ReplicationConfiguration) {
        self.interest = interest
        self.configuration = configuration
        rtt = RoundTripEstimator(initial: configuration.initialRetransmit, minimum: configuration.minRetransmit,
                                 maximum: configuration.maxRetransmit)
    }

    var smoothedRoundTrip: Duration? { rtt.smoothedRoundTrip }

    var nextDeadline: Timestamp? {
        var earliest = inFlight.values.lazy.map(\.deadline).min()
        // `timeouts` waits while answers flow: its deadline moves with the last arrival.
        if let due = earliest, let lastArrival { earliest = max(due, lastArrival + rtt.timeout(retries: 0)) }
        guard let backoffUntil else { return earliest }
        return min(earliest ?? backoffUntil, backoffUntil)
    }

    // MARK: - The remote's status

    /// Takes in a newer status of the remote. Its root must be validly signed by the
    /// book's author and agree with every root held or seen at the same length.
    mutating func remoteStatus(_ status: ReplicationMessage.Status, book: any ReplicatedBook) -> Outcome {
        guard let announced = status.root else {
            remote = RemoteView(length: 0, root: nil, held: [])
            return .nothing
        }
        let root = SignedRoot(book: book.id, length: status.length, rootHash: announced.hash, signature: announced.signature)
        if remote?.root != root {
            guard root.isValid else {
                return .refuse(.invalidData, "the status root at length \(root.length) is not signed by the book's author", nil)
            }
            if let seen = remoteRoots[root.length], seen.rootHash != root.rootHash {
                // Both validly signed: a proof anyone can check, kept like one found here.
                let fork = ForkProof(first: seen, second: root)
                do {
                    try book.keep(fork)
                } catch {
                    return .localFailure("keeping a fork proof: \(error)")
                }
                return .refuse(.forked, "the remote announced two roots at length \(root.length)", fork)
            }
            // A root seen before was checked then (a remote alternating between two
            // statuses costs no lookups); one held or conflicting since is found by `apply`.
            if remoteRoots[root.length] != root {
                do {
                    try book.check(signedRoot: root)
                } catch let error as BooksError where error.code == .forked {
                    return .refuse(.forked, error.detail, book.forkProof)
                } catch let error as BooksError where error.code == .invalidProof {
                    // A root of more pages than any book holds (`Book.maximumLength`).
                    return .refuse(.invalidData, error.detail, nil)
                } catch {
                    return .localFailure("checking a root: \(error)")
                }
                if remoteRoots.count >= 16, let oldest = remoteRoots.keys.min() { remoteRoots[oldest] = nil }
                remoteRoots[root.length] = root
            }
        }
        remote = RemoteView(length: root.length, root: root, held: status.held)
        return .nothing
    }

    // MARK: - Requests

    /// Sends requests until the window is full or nothing more is wanted from this remote.
    mutating func fill(book: any ReplicatedBook, now: Timestamp, into out: inout [[UInt8]]) {
        guard windowHasRoom, let remote, remote.length > 0, !book.isWritable else { return }
        if let backoffUntil {
            guard now >= backoffUntil else { return }
            self.backoffUntil = nil
        }
        let wanted = interest.wanted(length: remote.length)
        guard !wanted.isEmpty else { return }
        var missing = PageSpans.intersect(wanted, remote.held)
        missing = PageSpans.subtract(missing, book.heldRanges().ranges)
        missing = PageSpans.subtract(missing, PageSpans.normalized(inFlight.values.map(\.request.pages)))
        guard !missing.isEmpty else { return }

        let latest = book.signedRoot
        let verified = latest?.length ?? 0
        var upgrading = inFlight.values.contains { $0.isUpgrade }
        // Below the verified length, answers are checked against a root held here: the
        // verified one, or the remote's shorter one if this side verified it once.
        var base: (length: UInt64, root: SignedRoot)?
        if let latest, remote.length >= verified {
            base = (verified, latest)
        } else if remote.length < verified, let held = try? book.signedRoot(atLength: remote.length) {
            base = (remote.length, held)
        }

        while windowHasRoom {
            if remote.length > verified, !upgrading, let root = remote.root {
                // New pages first: they are what a reader following the book waits for.
                let beyond = PageSpans.intersect(missing, [verified..<remote.length])
                if let chunk = nextChunk(beyond.isEmpty ? missing : beyond) {
                    issue(chunk, atLength: remote.length, fromLength: verified, root: root, isUpgrade: true, now: now, into: &out)
                    missing = PageSpans.subtract(missing, [chunk])
                    upgrading = true
                    continue
                }
            }
            guard let base, let chunk = nextChunk(PageSpans.intersect(missing, [0..<base.length])) else { return }
            issue(chunk, atLength: base.length, fromLength: 0, root: base.root, isUpgrade: false, now: now, into: &out)
            missing = PageSpans.subtract(missing, [chunk])
        }
    }

    private var windowHasRoom: Bool {
        inFlight.count * configuration.requestBytes + configuration.requestBytes <= configuration.windowBytes
            || inFlight.isEmpty
    }

    /// The first run of at most one request's worth of pages.
    private func nextChunk(_ ranges: [Range<UInt64>]) -> Range<UInt64>? {
        guard let first = ranges.first else { return nil }
        let pages = UInt64(max(1, min(Double(configuration.maxPagesPerRequest),
                                      Double(configuration.requestBytes) / max(1, pageSizeEstimate))))
        return first.lowerBound..<min(first.upperBound, first.lowerBound + pages)
    }

    private mutating func issue(_ pages: Range<UInt64>, atLength: UInt64, fromLength: UInt64, root: SignedRoot,
                                isUpgrade: Bool, now: Timestamp, into out: inout [[UInt8]]) {
        let id = nextID
        nextID &+= 1
        if nextID == 0 { nextID = 1 }
        let request = ReplicationMessage.Request(id: id, pages: pages, atLength: atLength, fromLength: fromLength,
                                                 maxBytes: UInt32(configuration.requestBytes), fragments: [])
        sendCounter += 1
        inFlight[id] = InFlight(request: request, root: root, isUpgrade: isUpgrade, firstSent: now,
                                deadline: now + rtt.timeout(retries: 0), retries: 0, assembly: nil, sendOrder: sendCounter,
                                lastSent: now)
        stats.requestsSent += 1
        out.append(ReplicationMessage.request(request).encoded())
    }

    /// Re-asks for what timed out: only the missing fragments when some arrived. A request
    /// whose pages arrived meanwhile (from another peer) is cancelled instead.
    mutating func timeouts(book: any ReplicatedBook, now: Timestamp, into out: inout [[UInt8]]) {
        if let lastArrival, now < lastArrival + rtt.timeout(retries: 0) { return }
        for (id, flight) in inFlight where flight.deadline <= now {
            if book.heldRanges().containsAll(flight.request.pages), !flight.request.pages.isEmpty {
                inFlight[id] = nil
                out.append(ReplicationMessage.cancel(requestID: id).encoded())
                continue
            }
            retransmit(id, now: now, into: &out)
        }
    }

    /// Asks again for what request `id` lacks: the missing fragments, or all of it when
    /// none arrived.
    private mutating func retransmit(_ id: UInt32, now: Timestamp, into out: inout [[UInt8]]) {
        guard var flight = inFlight[id] else { return }
        flight.retries += 1
        var request = flight.request
        request.fragments = flight.assembly?.missing(limit: ReplicationWire.maxFragmentRanges) ?? []
        flight.deadline = now + rtt.timeout(retries: flight.retries)
        sendCounter += 1
        flight.sendOrder = sendCounter
        flight.lastSent = now
        inFlight[id] = flight
        stats.retransmissions += 1
        out.append(ReplicationMessage.request(request).encoded())
    }

    /// A holder answers requests in the order they arrive, each answer whole before the
    /// next. So when a fragment answering a later (re)transmission arrives, whatever an
    /// earlier one still lacks was lost: ask again at once instead of waiting for the
    /// timeout — with 20 % loss nearly every answer of many fragments loses one.
    /// A fragment cannot tell which transmission of its request it answers, so a request
    /// is asked again this way at most once per smoothed round trip: a late fragment of an
    /// earlier answer then cannot set off a cascade of re-requests.
    private mutating func fastRetransmit(after order: UInt64, now: Timestamp, into out: inout [[UInt8]]) {
        let grace = rtt.smoothedRoundTrip.map { max($0, rtt.minimum) } ?? rtt.initial
        let lagging = inFlight.filter { $0.value.sendOrder < order && now >= $0.value.lastSent + grace }
            .sorted { $0.value.sendOrder < $1.value.sendOrder }
        for (id, _) in lagging { retransmit(id, now: now, into: &out) }
    }

    // MARK: - Answers

    mutating func receive(_ fragment: ReplicationMessage.DataFragment, book: any ReplicatedBook, now: Timestamp,
                          into out: inout [[UInt8]]) -> Outcome {
        // The request stays in the table and is mutated there, through its index: moved out
        // and back, or copied, its answer's buffer would be touched twice per fragment.
        let id = fragment.requestID
        guard var slot = inFlight.index(forKey: id) else {
            stats.lateFragments += 1
            return .nothing
        }
        lastArrival = now
        // One in-place access per fragment (a getter of the table's values would copy
        // the whole entry).
        switch Fetcher.insert(fragment, into: &inFlight.values[slot]) {
        case .tooLarge:
            inFlight[id] = nil
            return .refuse(.malformed, "an answer of \(fragment.count) fragments exceeds its request", nil)
        case .countMismatch:
            inFlight[id] = nil
            return .refuse(.malformed, "fragments of one answer disagree on their count", nil)
        case .duplicate:
            stats.duplicateFragments += 1
            return .nothing
        case let .added(order, complete):
            stats.fragmentsReceived += 1
            if order > 1, inFlight.values.contains(where: { $0.sendOrder < order }) {
                fastRetransmit(after: order, now: now, into: &out)
                // It rewrote other entries: the index may have moved.
                slot = inFlight.index(forKey: id)!
            }
            guard complete else { return .nothing }
        }
        var flight = inFlight.remove(at: slot).value
        let bytes = flight.assembly!.take()
        guard let body = ResponseBody.decode(bytes, for: flight.request) else {
            return .refuse(.malformed, "an answer to request \(fragment.requestID) does not parse", nil)
        }
        let proof = MerkleProof(pages: body.pages, length: flight.request.atLength,
                                fromLength: flight.request.fromLength, nodes: body.nodes)
        do {
            try book.applyAnswer(signedRoot: flight.root, proof: proof, pages: body.pageData)
        } catch let error as BooksError {
            return verdict(error, book: book, now: now)
        } catch {
            return .localFailure("storing pages: \(error)")
        }
        staleInARow = 0
        storeFailuresInARow = 0
        if flight.retries == 0 { rtt.sample(now - flight.firstSent) }
        if !body.pageData.isEmpty {
            let bytes = body.pageData.reduce(0) { $0 + $1.count }
            pageSizeEstimate = Double(bytes) / Double(body.pageData.count)
            stats.bytesStored += UInt64(bytes)
        }
        stats.pagesStored += UInt64(body.pageData.count)
        return .stored(pages: body.pageData.count)
    }

    private enum Insertion {
        case added(sendOrder: UInt64, complete: Bool)
        case duplicate
        case countMismatch
        case tooLarge
    }

    /// Adds a fragment to its request's answer, creating the assembly at the first one.
    private static func insert(_ fragment: ReplicationMessage.DataFragment, into flight: inout InFlight) -> Insertion {
        if flight.assembly == nil {
            // The answer may exceed the requested bytes by one whole page, a full proof and
            // the framing of every page.
            let bound = Int(flight.request.maxBytes) + Book.maximumPageSize + 18
                + ResponseBody.maxNodes * ResponseBody.nodeSize + 4 * Int(flight.request.pages.count)
            guard let assembly = FragmentAssembly(count: Int(fragment.count), maxBytes: bound) else { return .tooLarge }
            flight.assembly = assembly
        }
        guard flight.assembly!.count == Int(fragment.count) else { return .countMismatch }
        guard flight.assembly!.insert(fragment) else { return .duplicate }
        return .added(sendOrder: flight.sendOrder, complete: flight.assembly!.isComplete)
    }

    /// Sorts a store error into the remote's fault, a benign race, or a local failure —
    /// one that may pass, or not.
    private mutating func verdict(_ error: BooksError, book: any ReplicatedBook, now: Timestamp) -> Outcome {
        switch error.code {
        case .invalidProof, .invalidSignature, .pageTooLarge:
            return .refuse(.invalidData, error.detail, nil)
        case .forked:
            return .refuse(.forked, error.detail, book.forkProof)
        case .staleProof:
            // This side moved on (another answer upgraded it) while the answer travelled:
            // the pages are missing again and will be asked for at the new length.
            stats.staleAnswers += 1
            staleInARow += 1
            if staleInARow > configuration.maxStaleInARow {
                return .refuse(.invalidData, "\(staleInARow) answers in a row did not fit the verified length", nil)
            }
            return .nothing
        case .diskFull, .storageReadOnly, .storage:
            return storeFailed(error.description, now: now)
        case .notHeld, .outOfRange:
            return .localFailure(error.description)
        case .corruptDatabase, .unsupportedSchemaVersion, .notABookStore, .storeLocked, .wrongMasterSecret,
             .invalidName, .unknownBook, .closed, .stopped, .readOnly:
            return .localFailure(error.description)
        }
    }

    /// The store could not take an answer's verified pages for a reason that may pass: they
    /// are missing again (the request is over), and no request goes out before a pause that
    /// doubles with each failure in a row, from `storeRetryInitial` to `storeRetryMax` —
    /// the channel stays, so pages sent meanwhile arrive as soon as the disk takes them
    /// again. Answers to the other requests in flight fail alike during the pause: they
    /// neither lengthen it nor are reported again.
    private mutating func storeFailed(_ detail: String, now: Timestamp) -> Outcome {
        stats.storeFailures += 1
        if let pause = storePauseUntil, now < pause { return .nothing }
        storeFailuresInARow += 1
        var delay = configuration.storeRetryInitial
        for _ in 1..<min(storeFailuresInARow, 16) { delay *= 2 }
        delay = min(delay, configuration.storeRetryMax)
        storePauseUntil = now + delay
        backoffUntil = max(backoffUntil ?? now, now + delay)
        return .storeFailed(detail)
    }

    /// The remote cannot answer a request.
    mutating func noData(requestID: UInt32, reason: NoDataReason, now: Timestamp) {
        guard let flight = inFlight.removeValue(forKey: requestID) else { return }
        switch reason {
        case .notHeld, .outOfRange:
            // Its status overstated what it holds; believe it again at its next status.
            if var view = remote {
                view.held = PageSpans.subtract(view.held, [flight.request.pages])
                remote = view
            }
        case .busy, .notAuthorized:
            backoffUntil = now + rtt.timeout(retries: 1)
        case .forked:
            remote?.held = []
        }
    }

    /// Cancels every request (the channel closes or nothing is wanted any more).
    mutating func cancelAll(into out: inout [[UInt8]]) {
        for id in inFlight.keys.sorted() { out.append(ReplicationMessage.cancel(requestID: id).encoded()) }
        inFlight = [:]
    }
}
