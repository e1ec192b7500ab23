// bootstrap-peer: one swarm node that finds peers through bootstrap nodes (and optionally
// the LAN), for the NAT test bed and by-hand experiments.
//
//   bootstrap-peer --bind A.B.C.D [--port P] --seed N|HEX64 --topic HEX64
//                  --bootstrap HOST:PORT [--bootstrap …] [--lan IFACE]
//                  [--send TEXT] [--seconds S] [--dead-peer-timeout S] [--keepalive S]
//
// A Swarm over the bootstrap client (transport wrapper and discovery source). Prints one
// JSON object per line (JSONLines; after "event" the fields in alphabetical order; ids and
// text are strings, T is milliseconds since start with one decimal):
//   {"event":"ready","endpoint":"A.B.C.D:P","peer":HEX}
//   {"event":"registered","ms":T,"node":"…","observed":"…"}
//   {"event":"connection","ms":T,"path":"pending|lan|punched|relay|direct","peer":HEX,"session":HEX}
//   {"event":"path","ms":T,"path":KIND,"peer":HEX}           whenever a session's path changes
//   {"event":"message","ms":T,"peer":HEX,"text":TEXT}        a chat message received
//   {"event":"lost","ms":T,"peer":HEX,"reason":R}
//   {"event":"exit","directConfirmed":N,"introductions":N,…}
// With --send TEXT, every connection opens a "chat" channel and sends "TEXT #n" every
// 300 ms. Exits after S seconds (default 20, at most 300), or on SIGTERM/SIGINT.
import Bootstrap
import BootstrapNIO
import Foundation
import JSONLines
import Sodium
import Swarm
import SwarmNIO
import Synchronization

func fail(_ message: String) -> Never { fail(tool: "bootstrap-peer", message) }

var options: [String: String] = [:]
var nodes: [Endpoint] = []
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--bind", "--port", "--seed", "--topic", "--lan", "--send", "--seconds", "--dead-peer-timeout", "--keepalive":
        guard let value = args.popFirst() else { fail("\(arg) needs a value") }
        options[arg] = value
    case "--bootstrap":
        guard let value = args.popFirst(), let node = Endpoint(value) else { fail("--bootstrap needs HOST:PORT (an IP address)") }
        nodes.append(node)
    case "--help", "-h":
        print("usage: bootstrap-peer --bind A.B.C.D [--port P] --seed N|HEX64 --topic HEX64 --bootstrap HOST:PORT … [--lan IFACE] [--send TEXT] [--seconds S]")
        exit(0)
    default: fail("unknown argument \(arg)")
    }
}
guard let bindText = options["--bind"], let bind = Endpoint(bindText, defaultPort: UInt16(options["--port"] ?? "0") ?? 0) else {
    fail("--bind A.B.C.D is required (never a default)")
}
guard !nodes.isEmpty else { fail("at least one --bootstrap HOST:PORT is required") }
guard let seedText = options["--seed"] else { fail("--seed is required") }
let seedBytes: [UInt8]
if let n = UInt8(seedText) { seedBytes = [UInt8](repeating: n, count: 32) }
else if let hex = [UInt8](hex: seedText), hex.count == 32 { seedBytes = hex }
else { fail("--seed is a number 0…255 or 64 hex digits") }
guard let topic = Topic(bytes: [UInt8](hex: options["--topic"] ?? "") ?? []) else { fail("--topic must be 64 hex digits") }
let seconds = min(300, Double(options["--seconds"] ?? "20") ?? 20)
let sendText = options["--send"]

var configuration = SwarmConfiguration()
if let s = options["--dead-peer-timeout"].flatMap(Double.init) { configuration.session.deadPeerTimeout = .milliseconds(Int64(s * 1000)) }
if let s = options["--keepalive"].flatMap(Double.init) { configuration.session.keepaliveInterval = .milliseconds(Int64(s * 1000)) }
configuration.retry = RetryPolicy(delays: [.milliseconds(300), .seconds(1), .seconds(2)], jitter: 0.25)

let identity: Ed25519.KeyPair
do { identity = try Ed25519.KeyPair(seed: SecretBytes(copying: seedBytes)) } catch { fail("bad seed: \(error)") }

let start = ContinuousClock.now
let ms: @Sendable () -> JSONValue = {
    let (s, atto) = (ContinuousClock.now - start).components
    return .fixed(Double(s) * 1000 + Double(atto) / 1e15, decimals: 1)
}

do {
    let udp = try await UDPTransport.bind(bind)
    let client = BootstrapClient.start(identity: identity, udp: udp, nodes: nodes)
    var discovery: [any DiscoverySource] = [client]
    if let lan = options["--lan"] {
        discovery.append(try await LANDiscovery.start(peer: PeerID(identity.publicKey), sessionPort: udp.localEndpoint.port,
                                                      configuration: LANDiscovery.Configuration(interfaces: [InterfaceSpec(parsing: lan)])))
    }
    let swarm = try Swarm(identity: identity, transport: client, discovery: discovery, configuration: configuration)
    say("ready", ["endpoint": .string(udp.localEndpoint.description), "peer": .string(swarm.localPeer.description)])

    for sig in [SIGTERM, SIGINT] { signal(sig, SIG_IGN) }
    let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0) }
    for source in signals {
        source.setEventHandler { Task { await swarm.shutdown() } }
        source.resume()
    }

    let live = LiveConnections()

    let nodeList = nodes
    let reportPaths: @Sendable () -> Void = {
        let changes: [(PeerID, String)] = live.table.withLock { table in
            var out: [(PeerID, String)] = []
            for (peer, entry) in table {
                let kind = client.path(for: entry.0.endpoint).name
                if kind != entry.1 { table[peer] = (entry.0, kind); out.append((peer, kind)) }
            }
            return out
        }
        for (peer, kind) in changes { say("path", ["ms": ms(), "path": .string(kind), "peer": .string(peer.description)]) }
    }

    let chat: @Sendable (SessionChannel, PeerID) async -> Void = { channel, peer in
        for await message in channel.messages {
            say("message", ["ms": ms(), "peer": .string(peer.description), "text": .string(String(decoding: message, as: UTF8.self))])
        }
    }

    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await swarm.run() }
        group.addTask {
          await withTaskGroup(of: Void.self) { group in
            for await connection in swarm.connections {
                let kind = client.path(for: connection.endpoint).name
                live.table.withLock { $0[connection.remotePeer] = (connection, kind) }
                say("connection", ["ms": ms(), "path": .string(kind), "peer": .string(connection.remotePeer.description),
                                   "session": .string(connection.sessionID.description)])
                group.addTask {
                    for await channel in connection.incomingChannels { await chat(channel, connection.remotePeer) }
                }
                if let sendText {
                    group.addTask {
                        guard let channel = try? await connection.openChannel(label: Array("chat".utf8)) else { return }
                        var n = 0
                        while connection.isOpen && n < 1000 {
                            n += 1
                            try? await channel.send(Array("\(sendText) #\(n)".utf8))
                            try? await Task.sleep(for: .milliseconds(300))
                        }
                    }
                }
            }
          }
        }
        group.addTask {
            for await event in swarm.events {
                switch event {
                case let .sessionLost(peer, _, reason):
                    live.table.withLock { $0[peer] = nil }
                    say("lost", ["ms": ms(), "peer": .string(peer.description), "reason": "\(reason)"])
                case .sessionEstablished, .sessionRestored, .topicProven, .endpointChanged, .handshakeFailed:
                    break
                }
            }
        }
        group.addTask {
            var said: Set<Endpoint> = []
            while !Task.isCancelled {
                for node in nodeList where !said.contains(node) && client.isRegistered(at: node) {
                    said.insert(node)
                    say("registered", ["ms": ms(), "node": .string(node.description),
                                       "observed": .string(client.observedEndpoint(at: node)?.description ?? "?")])
                }
                // A node restart forgets us: say "registered" again when we are back.
                for node in said where !client.isRegistered(at: node) { said.remove(node) }
                reportPaths()
                try await Task.sleep(for: .milliseconds(100))
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
    let c = client.counters
    say("exit", ["directConfirmed": .int(c.directConfirmed), "introductions": .int(c.introductions),
                 "punchesReceived": .int(c.punchesReceived), "punchesSent": .int(c.punchesSent),
                 "relayedReceived": .int(c.relayedReceived), "relayedSent": .int(c.relayedSent)])
} catch {
    fail("\(error)")
}

/// The connections whose path the peer watches, and the path last reported for each.
final class LiveConnections: Sendable {
    let table = Mutex<[PeerID: (PeerConnection, String)]>([:])
}
