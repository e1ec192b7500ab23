import Foundation

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

/// Percentile of a sample (nearest rank), e.g. `percentile(xs, 0.5)` for the median.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[rank]
}

/// Peak resident set size of this process, in bytes.
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return kb * 1024
    }
    return 0
}

/// A benchmark suite: `Tools/bench NAME` runs the suite of that name.
struct Suite {
    let name: String
    let summary: String
    let run: () async throws -> Void
}
