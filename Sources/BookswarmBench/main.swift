import Foundation

// Each suite lives in its own file under Suites/ and is listed here once.
let suites: [Suite] = [
    noiseSuite,
    booksSuite,
    netSuite,
    SwarmBench.suite,
    SwarmBench.throughputSuite,
    ReplicationBench.suite,
    ReplicationBench.throughputSuite,
    BootstrapBench.suite,
    MessengerBench.suite,
]

let requested = Array(CommandLine.arguments.dropFirst())
if requested.contains("--help") || requested.contains("-h") {
    print("usage: bookswarm-bench [SUITE ...]   (no suite: all)")
    for s in suites { print("  \(s.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(s.summary)") }
    exit(0)
}
let unknown = requested.filter { name in !suites.contains { $0.name == name } }
if !unknown.isEmpty {
    FileHandle.standardError.write("bookswarm-bench: unknown suite \(unknown.joined(separator: ", ")); known: \(suites.map(\.name).joined(separator: ", "))\n".data(using: .utf8)!)
    exit(2)
}
for suite in suites where requested.isEmpty || requested.contains(suite.name) {
    Report.note("suite \(suite.name): \(suite.summary)")
    do {
        try await suite.run()
    } catch {
        FileHandle.standardError.write("bookswarm-bench: suite \(suite.name) failed: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}
