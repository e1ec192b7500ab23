import Books
import Foundation
import Replication
import Sodium
import Swarm
import SwarmNIO

/// `Tools/bench replication`: book replication between two peers (store, swarm, replicator
/// each) in this process over UDP loopback —
/// (a) throughput, pages/s and MB/s of page bytes, for 1 KiB and 16 KiB pages, against raw
///     SwiftNIO UDP (1200-byte datagrams, `RawUDPFloor`) measured right before and right
///     after each run; `rounds` runs of each case, the one of median ratio reported;
/// (b) latency from the author's `append` returning to the page verified and stored at a
///     connected reader (median and p99 over 1000 appends);
/// (c) peak resident memory during the 100 000-page run;
/// and, to read (a) by, the work floor (`ReplicationWorkFloor`): the CPU that the bare
/// primitives need per MB of pages, and the ceiling that it sets on this machine's cores.
enum ReplicationBench {
    /// (a) alone, without the floor, for profiling the data path.
    /// `BOOKSWARM_BENCH_PAGE_SIZE=1024` or `16384` runs one of the two cases only.
    static var throughputSuite: Suite {
        Suite(name: "replication-throughput", summary: "replication (a) only, no floor: 100 000 × 1 KiB and 6 000 × 16 KiB") {
            let only = ProcessInfo.processInfo.environment["BOOKSWARM_BENCH_PAGE_SIZE"].flatMap(Int.init)
            for (count, size) in [(UInt64(100_000), 1024), (6000, 16 * 1024)] where only == nil || only == size {
                let run = try await throughput(count: count, size: size)
                Report.note(String(format: "%d × %d B: %.1f MB/s, %.2f ms of CPU per MB", count, size, run.bytes / 1e6,
                                   run.cpuMillisecondsPerMB))
            }
        }
    }

    static var suite: Suite {
        Suite(name: "replication", summary: "pages/s and MB/s vs raw UDP (1 KiB, 16 KiB), append-to-reader latency, peak memory") {
            try await run()
        }
    }

    /// Two peers joined over UDP loopback, found through an in-memory discovery hub.
    final class Pair: Sendable {
        let author: Peer
        let reader: Peer
        let directory: String

        init() async throws {
            directory = NSTemporaryDirectory() + "bench-replication-\(UUID().uuidString)"
            let hub = InMemoryDiscoveryHub()
            let topic = Topic(bytes: [UInt8](repeating: 0x42, count: 32))!
            author = try await Peer(seed: 1, directory: directory, hub: hub, topic: topic)
            reader = try await Peer(seed: 2, directory: directory, hub: hub, topic: topic)
        }

        func stop() async {
            await reader.stop()
            await author.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    final class Peer: Sendable {
        let swarm: Swarm
        let store: BookStore
        let replicator: Replicator
        let tasks: [Task<Void, Never>]

        init(seed: UInt8, directory: String, hub: InMemoryDiscoveryHub, topic: Topic) async throws {
            let secret = SecretBytes(copying: [UInt8](repeating: seed, count: 32))
            let identity = try Ed25519.KeyPair(seed: secret)
            let transport = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
            var configuration = SwarmConfiguration()
            configuration.channelBuffer = 16384
            swarm = try Swarm(identity: identity, transport: transport,
                              discovery: [hub.makeSource(peer: PeerID(identity.publicKey), endpoint: transport.localEndpoint)],
                              configuration: configuration)
            store = try BookStore.open(directory: directory + "/peer\(seed)", masterSecret: secret)
            replicator = Replicator(store: store, localPeer: swarm.localPeer, policy: .sharedSecret(topic.bytes))
            let swarm = swarm, replicator = replicator
            tasks = [Task { try? await swarm.run() }, Task { await replicator.attachAll(swarm.connections) }]
            await swarm.join(topic)
        }

        func stop() async {
            await replicator.shutdown()
            await swarm.shutdown()
            for task in tasks { task.cancel() }
            store.close()
        }
    }

    static func page(_ i: UInt64, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: size)
        withUnsafeBytes(of: i.littleEndian) { for (j, b) in $0.enumerated() { bytes[j] = b } }
        return bytes
    }

    /// One replication run's figures.
    struct Run {
        var pages: Double
        /// Page bytes per second.
        var bytes: Double
        var seconds: Double
        /// CPU seconds of the whole process, the reader's final checkpoint included.
        var cpu: Double
        /// Raw UDP floor (bytes/s) measured right before the clock started and right after
        /// it stopped, when asked for (`pairedFloor`).
        var floors: (before: Double, after: Double)?

        /// Milliseconds of CPU per MB (10⁶ bytes) of pages.
        var cpuMillisecondsPerMB: Double { cpu * 1000 / (bytes * seconds / 1e6) }
    }

    /// Replicates `count` pages of `size` bytes from a fresh author to a fresh reader;
    /// with `pairedFloor`, the raw UDP floor is measured (1 s) right before the clock starts
    /// and right after it stops, both peers up and idle.
    static func throughput(count: UInt64, size: Int, pairedFloor: Bool = false) async throws -> Run {
        let pair = try await Pair()
        defer { Task { await pair.stop() } }
        let book = try pair.author.store.createOrOpen(name: "ana-bob-bench\(size)")
        var i: UInt64 = 0
        while i < count {
            let end = min(count, i + 2000)
            try book.append(contentsOf: (i..<end).map { page($0, size: size) })
            i = end
        }
        // The author's WAL copied back first: its checkpoints would otherwise run during
        // the measured window, on the same two cores.
        try pair.author.store.checkpoint()
        let copy = try pair.reader.store.open(id: book.id)
        let floorBefore = pairedFloor ? try await RawUDPFloor.measure(datagramSize: 1200, duration: .seconds(1)).bytesPerSecond : 0
        let cpuBefore = threadCPUSeconds()
        let processBefore = processCPUSeconds()
        Profiler.enable()
        let start = ContinuousClock.now
        try await pair.reader.replicator.replicate(book.id)
        let deadline = start + .seconds(300)
        while copy.contiguousLength < count {
            guard ContinuousClock.now < deadline else { throw BenchFailure("replication of \(count) pages stalled at \(copy.contiguousLength)") }
            try await Task.sleep(for: .milliseconds(2))
        }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        Profiler.disable()
        // The reader's WAL copied back too (outside the clock, inside the CPU figure), as the
        // work floor's write includes its checkpoints.
        try pair.reader.store.checkpoint()
        let cpuAfter = threadCPUSeconds()
        let processCPU = processCPUSeconds() - processBefore
        let floorAfter = pairedFloor ? try await RawUDPFloor.measure(datagramSize: 1200, duration: .seconds(1)).bytesPerSecond : 0
        Report.note("\(count) × \(size) B: " + describeCPU(from: cpuBefore, to: cpuAfter, seconds: seconds))
        try copy.verify()
        let stats = pair.reader.replicator.stats(of: book.id)
        Report.note("\(count) × \(size) B: \(String(format: "%.2f", seconds)) s, \(stats.requestsSent) requests, \(stats.retransmissions) retransmissions")
        await pair.stop()
        return Run(pages: Double(count) / seconds, bytes: Double(count) * Double(size) / seconds, seconds: seconds, cpu: processCPU,
                   floors: pairedFloor ? (floorBefore, floorAfter) : nil)
    }

    /// One throughput run with the raw UDP floor measured right before and right after it
    /// (`throughput(pairedFloor:)`): its ratio is taken against the mean of the two, so a
    /// host that changes speed between the floor and the run (this VM does, from one
    /// minute to the next) moves both sides of the ratio alike.
    struct PairedRun {
        var run: Run
        var floor: Double
        var ratio: Double { run.bytes / floor }

        init(_ run: Run, count: UInt64, size: Int) {
            self.run = run
            let floors = run.floors ?? (0, 0)
            floor = (floors.before + floors.after) / 2
            Report.note(String(format: "%d × %d B: %.1f MB/s between raw floors of %.0f and %.0f MB/s: ratio %.3f", count, size,
                               run.bytes / 1e6, floors.before / 1e6, floors.after / 1e6, ratio))
        }
    }

    /// Of `rounds` paired runs, the one with the median ratio, and the spread.
    static func median(of runs: [PairedRun], label: String) -> PairedRun {
        let sorted = runs.sorted { $0.ratio < $1.ratio }
        let middle = sorted[(sorted.count - 1) / 2]
        Report.note("\(label): ratios of \(runs.count) rounds, in order: "
                    + runs.map { String(format: "%.3f", $0.ratio) }.joined(separator: " ")
                    + String(format: " (median %.3f)", middle.ratio))
        return middle
    }

    /// Rounds of each throughput case: `BOOKSWARM_BENCH_ROUNDS`, default 3.
    static var rounds: Int {
        max(1, ProcessInfo.processInfo.environment["BOOKSWARM_BENCH_ROUNDS"].flatMap(Int.init) ?? 3)
    }

    static func run() async throws {
        let rssBefore = peakResidentBytes()
        // The memory figures come from the first round (a fresh process heap).
        var anonymousPeak = 0
        var smallRuns: [PairedRun] = []
        for round in 0..<rounds {
            let run: Run
            if round == 0 {
                (run, anonymousPeak) = try await peakAnonymousBytes { try await throughput(count: 100_000, size: 1024, pairedFloor: true) }
            } else {
                run = try await throughput(count: 100_000, size: 1024, pairedFloor: true)
            }
            smallRuns.append(PairedRun(run, count: 100_000, size: 1024))
        }
        let rssAfter = peakResidentBytes()
        let small = median(of: smallRuns, label: "1 KiB")
        Report.result("replication.pages_per_s_1KiB", small.run.pages, "pages/s")
        Report.result("replication.MBps_1KiB", small.run.bytes / 1e6, "MB/s", floor: small.floor / 1e6)
        Report.result("replication.seconds_100k_1KiB", small.run.seconds, "s")
        Report.result("replication.peak_rss_100k_run", Double(rssAfter) / 1e6, "MB")
        Report.result("replication.peak_anonymous_100k_run", Double(anonymousPeak) / 1e6, "MB")
        Report.note("peak RSS before the 100k run \(rssBefore / 1_000_000) MB (author and reader share this process)")
        // The work floors after the memory figures: their 32 MB of pages would raise both.
        let scratch = NSTemporaryDirectory() + "bench-replication-work-\(getpid())"
        let work = (small: try await ReplicationWorkFloor.measure(pageSize: 1024, directory: scratch),
                    large: try await ReplicationWorkFloor.measure(pageSize: 16 * 1024, directory: scratch))
        Report.note("work floor, 1 KiB pages: \(work.small.description)")
        Report.note("work floor, 16 KiB pages: \(work.large.description)")
        reportAgainstWork(small.run, work.small, label: "1KiB", floor: small.floor)

        var largeRuns: [PairedRun] = []
        for _ in 0..<rounds {
            largeRuns.append(PairedRun(try await throughput(count: 6000, size: 16 * 1024, pairedFloor: true), count: 6000, size: 16 * 1024))
        }
        let large = median(of: largeRuns, label: "16 KiB")
        Report.result("replication.pages_per_s_16KiB", large.run.pages, "pages/s")
        Report.result("replication.MBps_16KiB", large.run.bytes / 1e6, "MB/s", floor: large.floor / 1e6)
        reportAgainstWork(large.run, work.large, label: "16KiB", floor: large.floor)
        try await latency(appends: 1000)
        try await readerProcessMemory()
    }

    /// (c) for the reader alone: a `replication-peer` reader process fetches 100 000 pages of
    /// 1 KiB from a `replication-peer` author process over loopback. Its anonymous memory
    /// (`RssAnon`: heap and stacks) is sampled every 5 ms until it reports every page held;
    /// `VmHWM` is read once it reported the copy complete (every page compared with what
    /// the author wrote, and `verify()` passed), so it also counts that check and the pages
    /// of its own database mapped from the page cache: up to the whole file, as SQLite reads
    /// through a memory map (`mmap_size`) that covers the file as it was at the first read
    /// through it. Its `VmRSS` is also sampled during the copy, which maps little.
    static func readerProcessMemory() async throws {
        guard let peer = releaseProduct("replication-peer") else {
            return Report.note("replication.reader_process_* skipped: replication-peer could not be built")
        }
        let directory = NSTemporaryDirectory() + "bench-replication-processes-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let topic = SecureRandom.bytes(32).hexString
        let port = 40_000 + Int(getpid() % 10_000)
        let count = 100_000
        let author = try ChildProcess([peer, "--dir", directory + "/author", "--seed", "1", "--bind", "127.0.0.1",
                                       "--port", "\(port)", "--topic", topic, "--author", "bench", "--pages", "\(count)",
                                       "--seconds", "180"])
        defer { author.kill() }
        guard let ready = await author.line(event: "ready", timeout: 120),
              let authorPeer = ChildProcess.string("peer", in: ready), let book = ChildProcess.string("book", in: ready) else {
            throw BenchFailure("the author process did not report ready")
        }
        let reader = try ChildProcess([peer, "--dir", directory + "/reader", "--seed", "2", "--bind", "127.0.0.1",
                                       "--port", "\(port + 1)", "--topic", topic, "--read", book, "--expect", "\(count)",
                                       "--connect", "\(authorPeer)@127.0.0.1:\(port)", "--seconds", "180"])
        defer { reader.kill() }
        let pid = String(reader.pid)
        var peakAnonymous = 0
        var peakResident = 0
        let deadline = now() + 120
        while now() < deadline {
            peakAnonymous = max(peakAnonymous, procStatusBytes("RssAnon", process: pid))
            peakResident = max(peakResident, procStatusBytes("VmRSS", process: pid))
            let allHeld = await reader.line(event: "progress", timeout: 0) {
                ChildProcess.number("contiguous", in: String($0)) == Double(count)
            }
            if allHeld != nil { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        guard let complete = await reader.line(event: "complete", timeout: 60) else {
            throw BenchFailure("the reader process did not complete")
        }
        let highWater = procStatusBytes("VmHWM", process: pid)
        guard ChildProcess.number("identical", in: complete) == 1, ChildProcess.number("verified", in: complete) == 1 else {
            throw BenchFailure("the reader's copy is not identical or does not verify: \(complete)")
        }
        Report.result("replication.reader_process_peak_anonymous_100k", Double(peakAnonymous) / 1e6, "MB")
        Report.result("replication.reader_process_peak_rss_during_copy_100k", Double(peakResident) / 1e6, "MB")
        Report.result("replication.reader_process_peak_rss_100k", Double(highWater) / 1e6, "MB")
        Report.note("reader process: \(complete)")
    }

    /// The run's CPU per MB beside the work floor's, the ceiling that the work floor sets
    /// (as a ratio of the raw UDP floor: the best ratio this work allows here), and the run
    /// as a fraction of that ceiling; and the reader's store against bare SQLite and BLAKE2b
    /// doing the same storing, in MB of pages per second of CPU (the ratio is the share of
    /// the store's CPU that the bare work would need).
    static func reportAgainstWork(_ run: Run, _ work: ReplicationWorkFloor, label: String, floor: Double) {
        Report.result("replication.cpu_ms_per_MB_\(label)", run.cpuMillisecondsPerMB, "ms/MB")
        Report.result("replication.work_floor_ms_per_MB_\(label)", work.total, "ms/MB")
        Report.result("replication.work_ceiling_MBps_\(label)", work.ceilingBytesPerSecond / 1e6, "MB/s", floor: floor / 1e6)
        Report.result("replication.MBps_\(label)_of_work_ceiling", run.bytes / 1e6, "MB/s", floor: work.ceilingBytesPerSecond / 1e6)
        Report.result("replication.reader_store_MB_per_cpu_s_\(label)", 1000 / work.store, "MB/s", floor: 1000 / (work.write + work.hash))
    }

    /// Append-to-stored latency at a connected, caught-up reader.
    static func latency(appends: Int) async throws {
        let pair = try await Pair()
        let book = try pair.author.store.createOrOpen(name: "ana-bob-latency")
        try book.append(page(0, size: 1024))
        let copy = try pair.reader.store.open(id: book.id)
        try await pair.reader.replicator.replicate(book.id)
        while copy.contiguousLength < 1 { try await Task.sleep(for: .milliseconds(5)) }
        var samples: [Double] = []
        samples.reserveCapacity(appends)
        let updates = copy.lengthUpdates
        var iterator = updates.makeAsyncIterator()
        for n in 1...appends {
            try book.append(page(UInt64(n), size: 1024))
            let appended = ContinuousClock.now
            while copy.contiguousLength <= UInt64(n) {
                guard await iterator.next() != nil else { throw BenchFailure("length updates ended") }
            }
            samples.append((ContinuousClock.now - appended) / .milliseconds(1))
        }
        Report.result("replication.append_to_reader_median", percentile(samples, 0.5), "ms")
        Report.result("replication.append_to_reader_p99", percentile(samples, 0.99), "ms")
        await pair.stop()
    }
}
