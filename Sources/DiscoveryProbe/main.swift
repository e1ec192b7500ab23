// discovery-probe: one LAN discovery participant as its own process, for the multi-process
// and namespace tests (and for looking at a LAN by hand).
//
//   discovery-probe --interface lo|NAME|A.B.C.D --port P --topic HEX64 [--seconds S]
//                   [--session-port N] [--announce-interval MS] [--lookup-only | --announce-only]
//                   [--ipv4-only]
//   discovery-probe --lan-default … (the same options, no --interface)
//   discovery-probe --list-interfaces
//
// `--list-interfaces` prints the host's interfaces as discovery sees them
// (`NetworkInterface.all()`), one `interface NAME index=N up=0|1 loopback=0|1 multicast=0|1
// ipv4=A,B|- ipv6=LINK-LOCAL|-` line each, and exits.
//
// Prints `peer <hex>` first, `interfaces <as the daemon shows them>` once discovery has
// started, `flushed` when the first lookup round is over, then
// `sighting <peer hex> <endpoint> <ms since join>` once per peer and endpoint, and
// `interfaces …` and `counters …` on exit; in between, `interfaces-now <ms since join>
// <as the daemon shows them>` each time that changes (looked at every 100 ms). Discovery runs
// on both families unless `--ipv4-only`; an interface without an address yet waits for it.
// `--lan-default` runs on the LAN default, followed as interfaces come and go, like a
// daemon without --interface: it multicasts on the host's real interfaces, so run it only
// inside a network namespace of your own (MACHINE.md's network rule). It must be asked for.
// Runs for S seconds (default 5, at most 120) and exits by itself; SIGTERM ends the run
// early the same way (the closing `interfaces` and `counters` lines are printed), so a test
// can stop a probe once it has seen what it waited for.
import Foundation
import Synchronization
import Sodium
import Swarm
import SwarmNIO
import Synchronization

/// One line on stdout, unbuffered, so a test reading the pipe sees it at once.
func say(_ line: String) {
    FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("discovery-probe: \(message)\n".data(using: .utf8)!)
    exit(2)
}

if CommandLine.arguments.dropFirst() == ["--list-interfaces"] {
    for i in NetworkInterface.all() {
        let v4 = i.ipv4Addresses.map { Endpoint(address: $0, port: 0).description.replacingOccurrences(of: ":0", with: "") }
        let v6 = i.ipv6LinkLocal.map { Endpoint(address: $0, port: 0).description.replacingOccurrences(of: "]:0", with: "").dropFirst() }
        say("interface \(i.name) index=\(i.index) up=\(i.isUp ? 1 : 0) loopback=\(i.isLoopback ? 1 : 0) multicast=\(i.isMulticast ? 1 : 0) "
            + "ipv4=\(v4.isEmpty ? "-" : v4.joined(separator: ",")) ipv6=\(v6.map(String.init) ?? "-")")
    }
    exit(0)
}

var options: [String: String] = [:]
var flags: Set<String> = []
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--lookup-only", "--announce-only", "--ipv4-only", "--lan-default": flags.insert(arg)
    case "--interface", "--port", "--topic", "--seconds", "--session-port", "--announce-interval":
        guard let value = args.popFirst() else { fail("\(arg) needs a value") }
        options[arg] = value
    default: fail("unknown argument \(arg)")
    }
}
let lanDefault = flags.contains("--lan-default")
guard lanDefault != (options["--interface"] != nil) else {
    fail("--interface or --lan-default is required (never a default), not both")
}
guard let port = options["--port"].flatMap(UInt16.init) else { fail("--port is required") }
guard let topicHex = options["--topic"], let topic = Topic(bytes: [UInt8](hex: topicHex) ?? []) else {
    fail("--topic must be 64 hex digits")
}
let seconds = min(120, Double(options["--seconds"] ?? "5") ?? 5)
let sessionPort = options["--session-port"].flatMap(UInt16.init) ?? UInt16.random(in: 40_000...49_999)
var machine = LANDiscoveryMachine.Configuration()
if let text = options["--announce-interval"] {
    guard let ms = Int64(text), (100...60_000).contains(ms) else { fail("--announce-interval is 100…60000 ms") }
    machine.announceInterval = .milliseconds(ms)
}
let givenInterfaces = options["--interface"].map { [InterfaceSpec(parsing: $0)] } ?? []

let identity = Ed25519.KeyPair.generate()
let peer = PeerID(identity.publicKey)
say("peer \(peer)")

do {
    let discovery = try await LANDiscovery.start(
        peer: peer, sessionPort: sessionPort, configuration: {
            var configuration = lanDefault ? LANDiscovery.Configuration.lanDefault(port: port, machine: machine)
                : LANDiscovery.Configuration(interfaces: givenInterfaces, port: port, machine: machine)
            // No session socket here: both families, to look at a LAN.
            configuration.ipv6 = !flags.contains("--ipv4-only")
            return configuration
        }())
    say("interfaces \(await discovery.interfaces.map(\.description).joined(separator: ", "))")
    let joined = ContinuousClock.now
    let reader = Task {
        var seen = Set<String>()
        for await sighting in discovery.sightings {
            let key = "\(sighting.peer) \(sighting.endpoint)"
            if seen.insert(key).inserted {
                let ms = (ContinuousClock.now - joined) / .milliseconds(1)
                say("sighting \(key) \(String(format: "%.1f", ms))")
            }
        }
    }
    let watcher = Task {
        var shown = await discovery.interfaces
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let now = await discovery.interfaces
            guard now != shown, !Task.isCancelled else { continue }
            shown = now
            let ms = (ContinuousClock.now - joined) / .milliseconds(1)
            say("interfaces-now \(String(format: "%.1f", ms)) \(now.map(\.description).joined(separator: ", "))")
        }
    }
    // SIGTERM ends the run whenever it comes, the closing lines printed: one that comes
    // before the run (while joining) ends it as soon as it starts.
    let stop = Mutex<(requested: Bool, run: Task<Void, Never>?)>((false, nil))
    signal(SIGTERM, SIG_IGN)
    let terminated = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
    // @Sendable: it runs on a dispatch queue, not the main actor.
    terminated.setEventHandler { @Sendable in stop.withLock { $0.requested = true; $0.run?.cancel() } }
    terminated.resume()
    await discovery.join(topic, announce: !flags.contains("--lookup-only"), lookup: !flags.contains("--announce-only"))
    await discovery.flushed(topic)
    say("flushed")
    let run = Task<Void, Never> { try? await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }
    stop.withLock { s in
        s.run = run
        if s.requested { run.cancel() }
    }
    await run.value
    watcher.cancel()
    await watcher.value
    let c = await discovery.counters
    let interfaces = await discovery.interfaces
    await discovery.close()
    await reader.value
    say("interfaces \(interfaces.map(\.description).joined(separator: ", "))")
    say("counters received=\(c.machine.received) own=\(c.machine.own) malformed=\(c.machine.malformed) rateLimited=\(c.machine.rateLimited) queries=\(c.machine.queriesSent) announcements=\(c.machine.announcementsSent) answers=\(c.machine.answersSent) sightings=\(c.machine.sightings) sendErrors=\(c.sendErrors) socketRestarts=\(c.socketRestarts) socketReopenFailures=\(c.socketReopenFailures) socketsOpenedLate=\(c.socketsOpenedLate) interfacesTakenUp=\(c.interfacesTakenUp) interfacesDropped=\(c.interfacesDropped) looksOnChange=\(c.looksOnChange)")
} catch {
    fail("\(error)")
}
