import Foundation
import Synchronization

/// How a benchmark result is printed: one line per figure,
/// `RESULT <name> <value> <unit> [floor=<value> ratio=<value>]`, the floor measured in the
/// same run so that ratios hold on a noisy machine where absolute figures do not.
enum Report {
    static func result(_ name: String, _ value: Double, _ unit: String, floor: Double? = nil) {
        var line = "RESULT \(name) \(format(value)) \(unit)"
        if let floor, floor > 0 {
            line += " floor=\(format(floor)) ratio=\(String(format: "%.3f", value / floor))"
        }
        print(line)
        fflush(nil)
    }

    static func note(_ text: String) {
        print("# \(text)")
        fflush(nil)
    }

    static func format(_ v: Double) -> String {
        if v >= 1000 { return String(format: "%.0f", v) }
        if v >= 10 { return String(format: "%.1f", v) }
        return String(format: "%.3f", v)
    }
}

/// Monotonic time in seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs `body` (which performs `operationsPerCall` operations) repeatedly for at least
/// `seconds`, after one warm-up call, and returns operations per second. The best of
/// `rounds` rounds is kept: interference from a noisy machine only ever slows a round down.
func measureRate(seconds: Double = 1.0, rounds: Int = 3, operationsPerCall: Int = 1, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var best = 0.0
    for _ in 0..<rounds {
        let start = now()
        var calls = 0
        var elapsed = 0.0
        repeat {
            try body()
            calls += 1
            elapsed = now() - start
        } while elapsed < seconds / Double(rounds)
        best = max(best, Double(calls * operationsPerCall) / elapsed)
    }
    return best
}

/// CPU time of the whole process (every thread, user and system), in seconds.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Percentile of a sample (nearest rank), e.g. `percentile(xs, 0.5)` for the median.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[rank]
}

/// Peak resident set size of this process, in bytes.
func peakResidentBytes() -> Int { procStatusBytes("VmHWM") }

/// One field of `/proc/PROCESS/status` in bytes (e.g. "RssAnon"), 0 if absent; `process` is
/// "self" or a pid.
func procStatusBytes(_ field: String, process: String = "self") -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(process)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
        let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return kb * 1024
    }
    return 0
}

/// The largest anonymous resident memory (heap, stacks: `RssAnon`) seen while `body`
/// runs, sampled every 5 ms. Unlike `VmHWM` it leaves out file pages mapped from the page
/// cache (a store reading through a memory map), which the kernel can drop at any time.
func peakAnonymousBytes<T>(during body: () async throws -> T) async rethrows -> (T, Int) {
    let peak = Mutex(procStatusBytes("RssAnon"))
    let sampler = Task {
        while !Task.isCancelled {
            let now = procStatusBytes("RssAnon")
            peak.withLock { $0 = max($0, now) }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
    let result = try await body()
    sampler.cancel()
    _ = await sampler.value
    let last = procStatusBytes("RssAnon")
    return (result, peak.withLock { max($0, last) })
}

/// A benchmark suite: `Tools/bench NAME` runs the suite of that name.
struct Suite {
    let name: String
    let summary: String
    let run: () async throws -> Void
}

/// CPU time of this process's threads, by thread name (`/proc/self/task/*/stat`), in
/// seconds: compared before and after a run, it shows which threads the run kept busy —
/// NIO's event loops, the concurrency pool — and whether it was CPU-bound.
func threadCPUSeconds() -> [String: Double] {
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    var out: [String: Double] = [:]
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return out }
    for task in tasks {
        guard let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
        let name = String(stat[stat.index(after: open)..<close])
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        // After the name: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
        // Pool and loop threads share names; group by name with the digits dropped.
        let group = String(name.filter { !$0.isNumber })
        out[group, default: 0] += (user + system) / ticks
    }
    return out
}

/// "NIO-ELT 0.91 s, swift-concurrency 1.20 s" — the threads whose CPU time grew between two
/// `threadCPUSeconds()` readings, busiest first, and the cores they used over `seconds`.
func describeCPU(from before: [String: Double], to after: [String: Double], seconds: Double) -> String {
    let used = after.map { ($0.key, $0.value - (before[$0.key] ?? 0)) }.filter { $0.1 >= 0.01 }.sorted { $0.1 > $1.1 }
    let total = cpuSeconds(from: before, to: after)
    return String(format: "CPU %.2f s over %.2f s wall = %.2f cores: ", total, seconds, total / max(seconds, 1e-9))
        + used.map { String(format: "%@ %.2f s", $0.0, $0.1) }.joined(separator: ", ")
}

/// The CPU seconds that all threads together used between two `threadCPUSeconds()` readings.
func cpuSeconds(from before: [String: Double], to after: [String: Double]) -> Double {
    after.reduce(0) { $0 + max(0, $1.value - (before[$1.key] ?? 0)) }
}

/// Marks the measured part of a run for `perf record --control=fifo:CTL,ACK -D -1`: with
/// `BOOKSWARM_PERF_CTL=CTL,ACK` set, sampling covers only what runs between `enable` and
/// `disable` (e.g. the replication, not the writing of the author's book before it).
enum Profiler {
    static let paths: (control: String, ack: String)? = {
        guard let value = ProcessInfo.processInfo.environment["BOOKSWARM_PERF_CTL"] else { return nil }
        let parts = value.split(separator: ",").map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }()

    static func enable() { command("enable") }
    static func disable() { command("disable") }

    private static func command(_ word: String) {
        guard let paths, let control = FileHandle(forWritingAtPath: paths.control),
              let ack = FileHandle(forReadingAtPath: paths.ack) else { return }
        control.write((word + "\n").data(using: .utf8)!)
        _ = ack.availableData
        try? control.close()
        try? ack.close()
    }
}

/// A benchmark that could not run to its end (a peer that did not answer, a copy that does
/// not verify): the suite stops with this text.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The repository the benchmarks run from (`Tools/bench` sets `BOOKSWARM_REPO`).
var benchRepository: String {
    ProcessInfo.processInfo.environment["BOOKSWARM_REPO"] ?? FileManager.default.currentDirectoryPath
}

/// Runs a command to its end and returns what it printed; throws if it exits non-zero.
@discardableResult
func runCommand(_ argv: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else { throw BenchFailure("\(argv.joined(separator: " ")) failed: \(text)") }
    return text
}

/// The path of the release build of `product`, a helper process a suite spawns, or nil when
/// it cannot be built. `Tools/bench` builds only the bench product; the helpers share its
/// modules, so building one here is quick, and it keeps a stale binary from being measured.
func releaseProduct(_ product: String) -> String? {
    let bin = ProcessInfo.processInfo.environment["BOOKSWARM_BIN"] ?? benchRepository + "/.build/release"
    _ = try? runCommand(["/usr/bin/env", "swift", "build", "-c", "release", "--product", product,
                         "--package-path", benchRepository])
    let path = bin + "/" + product
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}

/// A child process of a benchmark (a `swarm-peer`, a `replication-peer`) whose standard
/// output, one JSON object per line, is collected as it comes.
final class ChildProcess: Sendable {
    private final class Buffer: Sendable { let text = Mutex("") }
    private let process: Process
    private let buffer = Buffer()

    init(_ argv: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        output.fileHandleForReading.readabilityHandler = { [buffer] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            buffer.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The first complete line with `"event":"EVENT"` (and `where` true of it), or nil after
    /// `timeout` seconds (the output is read at least once) or when the process has ended
    /// without one.
    func line(event: String, timeout: Double, where accept: (Substring) -> Bool = { _ in true }) async -> String? {
        let end = now() + timeout
        while true {
            let ended = !process.isRunning
            let text = buffer.text.withLock { $0 }
            let complete = text.hasSuffix("\n") ? Substring(text) : text[..<(text.lastIndex(of: "\n") ?? text.startIndex)]
            for line in complete.split(separator: "\n") where line.contains("\"event\":\"\(event)\"") && accept(line) {
                return String(line)
            }
            if ended || now() >= end { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The number after `"FIELD":` in a JSON line.
    static func number(_ field: String, in line: String) -> Double? {
        guard let range = line.range(of: "\"\(field)\":") else { return nil }
        return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "-" })
    }

    /// The string after `"FIELD":"` in a JSON line (no escapes expected: ids, endpoints).
    static func string(_ field: String, in line: String) -> String? {
        guard let range = line.range(of: "\"\(field)\":\"") else { return nil }
        return String(line[range.upperBound...].prefix { $0 != "\"" })
    }

    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
