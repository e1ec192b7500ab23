// bookswarm-bootstrap: a bootstrap node (PROTOCOL.md §11) as its own process.
//
//   bookswarm-bootstrap --port P [--bind A.B.C.D] [--capture FILE] [--stats-interval S]
//
// Serves rendezvous, introductions and relay on UDP port P of the bind address (default
// 0.0.0.0), and prints one JSON object per line (JSONLines): {"event":"ready","endpoint":…}
// at start, {"event":"stats",…} every S seconds (default 0: never) and {"event":"exit",…}
// with the same counters at exit (SIGTERM/SIGINT): numbers, worstUnprovenRatio with 4
// decimals, and "refusals":{REASON:N,…} for every refusal reason.
// --capture FILE is a test mode: every datagram in and out is appended to FILE.
import Bootstrap
import BootstrapNIO
import Foundation
import JSONLines
import Swarm

func fail(_ message: String) -> Never { fail(tool: "bookswarm-bootstrap", message) }

var options: [String: String] = [:]
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--port", "--bind", "--capture", "--stats-interval":
        guard let value = args.popFirst() else { fail("\(arg) needs a value") }
        options[arg] = value
    case "--help", "-h":
        print("usage: bookswarm-bootstrap --port P [--bind A.B.C.D] [--capture FILE] [--stats-interval S]")
        exit(0)
    default: fail("unknown argument \(arg)")
    }
}
guard let port = options["--port"].flatMap(UInt16.init) else { fail("--port P is required") }
guard let bind = Endpoint(options["--bind"] ?? "0.0.0.0", defaultPort: port) else { fail("--bind must be an IP address") }
// A day at most: a sleep far longer (or infinite) trapped the node.
guard let interval = Double(options["--stats-interval"] ?? "0"), (0...86_400).contains(interval) else {
    fail("--stats-interval takes seconds from 0 to 86400, not \(options["--stats-interval"] ?? "")")
}

func stats(_ server: BootstrapServer, event: String) {
    let c = server.counters
    let refusals = RefusalReason.allCases.map { (key: "\($0)", value: JSONValue.int(c.refusals[$0] ?? 0)) }
    say(event, ["registrations": .int(server.registrationCount), "received": .int(c.received),
                "malformed": .int(c.malformed), "cookieReplies": .int(c.cookieReplies),
                "cookieRepliesSuppressed": .int(c.cookieRepliesSuppressed), "lookups": .int(c.lookups),
                "introductions": .int(c.introductions), "relayedDatagrams": .int(c.relayedDatagrams),
                "relayedBytes": .int(c.relayedBytes), "relayDropped": .int(c.relayDropped),
                "unprovenBytesIn": .int(c.unprovenBytesIn), "unprovenBytesOut": .int(c.unprovenBytesOut),
                "worstUnprovenRatio": .fixed(c.worstUnprovenRatio, decimals: 4), "refusals": .object(refusals)])
}

do {
    let server = try await BootstrapServer.start(bind: bind, capturePath: options["--capture"])
    say("ready", ["endpoint": "\(server.localEndpoint)"])
    for sig in [SIGTERM, SIGINT] { signal(sig, SIG_IGN) }
    let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0) }
    for source in signals {
        source.setEventHandler { Task { await server.stop() } }
        source.resume()
    }
    if interval > 0 {
        Task {
            while true {
                try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                stats(server, event: "stats")
            }
        }
    }
    await server.run()
    stats(server, event: "exit")
} catch {
    fail("\(error)")
}
