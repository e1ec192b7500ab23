// swarm-peer: one swarm node as its own process, for the multi-process and namespace tests
// and the join-to-session benchmark (and for looking at a LAN by hand).
//
//   swarm-peer --interface lo|NAME|A.B.C.D --port P --seed N|HEX64 --topic HEX64
//              [--discovery-port P] [--seconds S] [--dead-peer-timeout S]
//              [--keepalive S] [--announce-interval MS] [--trace]
//
// Binds the session socket to the interface's IPv4 address and port P, runs LAN discovery
// on that interface only, joins the topic, and prints one JSON object per line (JSONLines;
// after "event" the fields in alphabetical order):
//   {"event":"ready","endpoint":"A.B.C.D:P","peer":HEX}
//   {"event":"connection","ms":T,"peer":HEX,"session":HEX,"topics":N}   T: ms since join, 3 decimals
//   {"event":"established"|"restored","ms":T,"peer":HEX,"session":HEX}
//   {"event":"lost","ms":T,"peer":HEX,"reason":R,"session":HEX}
//   {"event":"exit","drops":{REASON:N,…},"sessions":N,"transport":{COUNTER:N,…}}
//                                                                      every drop reason, sorted
// With --trace, also one line per handshake datagram sent or received (transport packets
// are only counted), to see which side of a pair stops hearing the other:
//   {"event":"datagram","direction":"in"|"out","ms":T,"receiver":I,"remote":"A.B.C.D:P","sender":I,"type":N}
//   (I: the packet's indices, receiver 0 in initiations; N: its type, 1 IK initiation … 5)
// Exits by itself after S seconds (default 10, at most 300) with a clean shutdown, or on
// SIGTERM/SIGINT.
import Foundation
import JSONLines
import NIOCore
import Sodium
import Swarm
import SwarmNIO
import Synchronization

func fail(_ message: String) -> Never { fail(tool: "swarm-peer", message) }

/// When the topic was joined (until then, when the process started): every "ms" field,
/// events and traced datagrams alike, counts from here, so their times compare.
let joined = Mutex(ContinuousClock.now)

func msSinceJoin() -> JSONValue {
    .fixed(Double((ContinuousClock.now - joined.withLock { $0 }).nanosecondsForOutput) / 1e6, decimals: 3)
}

var options: [String: String] = [:]
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--interface", "--port", "--seed", "--topic", "--discovery-port", "--seconds", "--dead-peer-timeout",
         "--keepalive", "--announce-interval":
        guard let value = args.popFirst() else { fail("\(arg) needs a value") }
        options[arg] = value
    case "--trace":
        options[arg] = ""
    case "--help", "-h":
        print("usage: swarm-peer --interface lo|NAME|A.B.C.D --port P --seed N|HEX64 --topic HEX64 [--discovery-port P] [--seconds S] [--dead-peer-timeout S] [--keepalive S] [--announce-interval MS] [--trace]")
        exit(0)
    default: fail("unknown argument \(arg)")
    }
}
guard let interfaceText = options["--interface"] else { fail("--interface is required (never a default)") }
guard let port = options["--port"].flatMap(UInt16.init) else { fail("--port is required") }
guard let seedText = options["--seed"] else { fail("--seed is required") }
let seedBytes: [UInt8]
if let n = UInt8(seedText) {
    seedBytes = [UInt8](repeating: n, count: 32)
} else if let hex = [UInt8](hex: seedText), hex.count == 32 {
    seedBytes = hex
} else {
    fail("--seed is a number 0…255 or 64 hex digits")
}
guard let topicHex = options["--topic"], let topic = Topic(bytes: [UInt8](hex: topicHex) ?? []) else {
    fail("--topic must be 64 hex digits")
}
let seconds = min(300, Double(options["--seconds"] ?? "10") ?? 10)

var configuration = SwarmConfiguration()
if let s = options["--dead-peer-timeout"].flatMap(Double.init) { configuration.session.deadPeerTimeout = .milliseconds(Int64(s * 1000)) }
if let s = options["--keepalive"].flatMap(Double.init) { configuration.session.keepaliveInterval = .milliseconds(Int64(s * 1000)) }
// Quick redials: the tests restart peers and measure how soon sessions come back.
configuration.retry = RetryPolicy(delays: [.milliseconds(200), .seconds(1), .seconds(2)], jitter: 0.25)
var machine = LANDiscoveryMachine.Configuration()
if let text = options["--announce-interval"] {
    guard let ms = Int64(text), (100...60_000).contains(ms) else { fail("--announce-interval is 100…60000 ms") }
    machine.announceInterval = .milliseconds(ms)
}

/// The interface's IPv4 address: where the session socket binds.
func interfaceAddress(_ text: String) -> (InterfaceSpec, Endpoint.Address) {
    let spec = InterfaceSpec(parsing: text)
    let resolved: InterfaceSpec.Resolved
    do { resolved = try spec.resolve() } catch { fail((error as? SwarmNIOError)?.detail ?? "\(error)") }
    guard let address = resolved.ipv4 else { fail("interface \(text) has no IPv4 address here") }
    return (spec, address)
}

let (interface, address) = interfaceAddress(interfaceText)
let identity: Ed25519.KeyPair
do { identity = try Ed25519.KeyPair(seed: SecretBytes(copying: seedBytes)) } catch { fail("bad seed: \(error)") }

do {
    let udp = try await UDPTransport.bind(Endpoint(address: address, port: port))
    let transport: any DatagramTransport = options["--trace"] != nil ? TracingTransport(udp) : udp
    var discoveryConfiguration = LANDiscovery.Configuration(interfaces: [interface], machine: machine)
    if let p = options["--discovery-port"].flatMap(UInt16.init) { discoveryConfiguration.port = p }
    let discovery = try await LANDiscovery.start(peer: PeerID(identity.publicKey), sessionPort: transport.localEndpoint.port,
                                                 configuration: discoveryConfiguration)
    let swarm = try Swarm(identity: identity, transport: transport, discovery: [discovery], configuration: configuration)
    say("ready", ["endpoint": .string(transport.localEndpoint.description), "peer": .string(swarm.localPeer.description)])

    joined.withLock { $0 = .now }

    for sig in [SIGTERM, SIGINT] { signal(sig, SIG_IGN) }
    let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0) }
    for source in signals {
        source.setEventHandler { Task { await swarm.shutdown() } }
        source.resume()
    }

    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await swarm.run() }
        group.addTask {
            for await connection in swarm.connections {
                say("connection", ["ms": msSinceJoin(), "peer": .string(connection.remotePeer.description),
                                   "session": .string(connection.sessionID.description), "topics": .int(connection.topics.count)])
            }
        }
        group.addTask {
            for await event in swarm.events {
                switch event {
                case let .sessionEstablished(peer, id):
                    say("established", ["ms": msSinceJoin(), "peer": .string(peer.description), "session": .string(id.description)])
                case let .sessionRestored(peer, id):
                    say("restored", ["ms": msSinceJoin(), "peer": .string(peer.description), "session": .string(id.description)])
                case let .sessionLost(peer, id, reason):
                    say("lost", ["ms": msSinceJoin(), "peer": .string(peer.description), "reason": "\(reason)",
                                 "session": .string(id.description)])
                case .topicProven, .endpointChanged, .handshakeFailed:
                    break
                }
            }
        }
        await swarm.join(topic)
        group.addTask {
            try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            await swarm.shutdown()
        }
        try await group.next()
        await swarm.shutdown()
        group.cancelAll()
    }
    let drops = await swarm.dropCounters
    let dropFields = DropReason.allCases.map { (key: $0.rawValue, value: JSONValue.int(drops[$0])) }.sorted { $0.key < $1.key }
    let c = udp.counters
    let transportFields: [(key: String, value: JSONValue)] = [
        ("datagramsReceived", .int(c.datagramsReceived)), ("datagramsSent", .int(c.datagramsSent)),
        ("receiveDropped", .int(c.receiveDropped)), ("sendDropped", .int(c.sendDropped)),
        ("sendErrors", .int(c.sendErrors)), ("socketRestarts", .int(c.socketRestarts)),
    ]
    say("exit", ["drops": .object(dropFields), "sessions": .int(await swarm.allSessionStats.count),
                 "transport": .object(transportFields)])
} catch {
    fail("\(error)")
}

/// Prints each handshake datagram that passes (`--trace`); the packet layout is PROTOCOL.md §7.
struct TracingTransport: DatagramTransport {
    let inner: UDPTransport
    let incoming: AsyncStream<[Datagram]>

    init(_ inner: UDPTransport) {
        self.inner = inner
        let (stream, continuation) = AsyncStream<[Datagram]>.makeStream()
        incoming = stream
        Task {
            for await batch in inner.incoming {
                for datagram in batch { Self.trace("in", datagram) }
                continuation.yield(batch)
            }
            continuation.finish()
        }
    }

    var localEndpoint: Endpoint { inner.localEndpoint }

    func send(_ datagrams: [Datagram]) {
        for datagram in datagrams { Self.trace("out", datagram) }
        inner.send(datagrams)
    }

    func close() async { await inner.close() }

    func canSend(to endpoint: Endpoint) -> Bool { inner.canSend(to: endpoint) }

    static func trace(_ direction: String, _ datagram: Datagram) {
        let p = datagram.payload
        guard p.count >= 12, p[1] >= 1, p[1] <= 5 else { return }
        func le32(_ at: Int) -> Int { Int(p[at]) | Int(p[at + 1]) << 8 | Int(p[at + 2]) << 16 | Int(p[at + 3]) << 24 }
        say("datagram", ["direction": .string(direction), "ms": msSinceJoin(),
                         "receiver": .int(p[1] == 1 || p[1] == 3 ? 0 : le32(8)), "remote": .string(datagram.remote.description),
                         "sender": .int(le32(4)), "type": .int(Int(p[1]))])
    }
}

extension Duration {
    var nanosecondsForOutput: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
