import ArgumentParser
import BookswarmControl
import Bootstrap
import BootstrapNIO
import Foundation
import Swarm

/// `bookswarm bootstrap --port P`: runs a bootstrap node in the foreground (issue 7). Peers
/// point at it with `--bootstrap HOST:P`. It sees only registrations, lookups and the
/// ciphertext it relays; see PROTOCOL.md §11 and README "Running a bootstrap node".
struct BootstrapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootstrap",
        abstract: "Run a bootstrap node: rendezvous, hole punching and relay for peers on other networks.")

    @Option(name: .long, help: "The UDP port to serve on.")
    var port: UInt16

    @Option(name: .long, help: "The address to bind (default: every IPv4 address).")
    var bind: String = "0.0.0.0"

    @Option(name: .customLong("stats-interval"), help: "Print the node's counters every this many seconds (0: never).")
    var statsInterval: Int = 0

    func validate() throws {
        // A day at most: a sleep far longer (towards Int.max seconds) traps in the runtime.
        guard (0...86_400).contains(statsInterval) else {
            throw ValidationError("--stats-interval takes seconds from 0 to 86400, not \(statsInterval)")
        }
    }

    /// One line of counters, `name=value` pairs a person can read and a script can split.
    static func statsLine(registrations: Int, _ c: BootstrapNode.Counters) -> String {
        var fields = [("registered", "\(registrations)"), ("received", "\(c.received)"), ("malformed", "\(c.malformed)"),
                      ("unexpected", "\(c.unexpected)"), ("cookies", "\(c.cookieReplies)"),
                      ("cookies-suppressed", "\(c.cookieRepliesSuppressed)"), ("registrations", "\(c.registrations)"),
                      ("lookups", "\(c.lookups)"), ("introductions", "\(c.introductions)"),
                      ("relayed", "\(c.relayedDatagrams)"), ("relayed-bytes", "\(c.relayedBytes)"),
                      ("relay-dropped", "\(c.relayDropped)"), ("expired", "\(c.expired)"),
                      ("unproven-in", "\(c.unprovenBytesIn)"), ("unproven-out", "\(c.unprovenBytesOut)"),
                      ("worst-unproven-ratio", String(format: "%.3f", c.worstUnprovenRatio))]
        for (reason, count) in c.refusals.sorted(by: { "\($0.key)" < "\($1.key)" }) { fields.append(("refused-\(reason)", "\(count)")) }
        return "stats " + fields.map { "\($0)=\($1)" }.joined(separator: " ")
    }

    func run() async throws {
        try await reportingErrors {
            guard let address = Endpoint(bind, defaultPort: port) else { throw CLIError("--bind \(bind) is not an IP address") }
            let server = try await BootstrapServer.start(bind: Endpoint(address: address.address, port: port))
            printOut("bootstrap node on \(server.localEndpoint) (udp); point peers at it with --bootstrap HOST:\(server.localEndpoint.port)")
            let stop = AsyncStream<Void>.makeStream()
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig)
                source.setEventHandler { stop.continuation.yield() }
                source.resume()
                signalSources.append(source)
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await server.run() }
                if statsInterval > 0 {
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(statsInterval))
                            printOut(Self.statsLine(registrations: server.registrationCount, server.counters))
                        }
                    }
                }
                for await _ in stop.stream { break }
                await server.stop()
                group.cancelAll()
            }
        }
    }
}

/// Signal sources must outlive `run()`'s setup.
nonisolated(unsafe) private var signalSources: [any DispatchSourceSignal] = []
