// bootstrap-peer: one swarm node that finds peers through bootstrap nodes (and optionally
// the LAN), for the NAT test bed and by-hand experiments.
//
//   bootstrap-peer --bind A.B.C.D [--port P] --seed N|HEX64 --topic HEX64
//                  --bootstrap HOST:PORT [--bootstrap …] [--lan IFACE]
//                  [--send TEXT] [--seconds S] [--dead-peer-timeout S] [--keepalive S]
//
// A Swarm over the bootstrap client (transport wrapper and discovery source). Prints one
// JSON object per line:
//   {"event":"ready","peer":HEX,"endpoint":"A.B.C.D:P"}
//   {"event":"registered","node":"…","observed":"…","ms":T}
//   {"event":"connection","peer":HEX,"session":HEX,"path":"pending|lan|punched|relay|direct","ms":T}
//   {"event":"path","peer":HEX,"path":KIND,"ms":T}           whenever a session's path changes
//   {"event":"message","peer":HEX,"text":TEXT,"ms":T}        a chat message received
//   {"event":"lost","peer":HEX,"reason":R,"ms":T}
//   {"event":"exit","punchesSent":N,…}
// With --send TEXT, every connection opens a "chat" channel and sends "TEXT #n" every
// 300 ms. Exits after S seconds (default 20, at most 300), or on SIGTERM/SIGINT.
import Bootstrap
import BootstrapNIO
import Foundation
import Sodium
import Swarm
import SwarmNIO
import Synchronization

func say(_ fields: [String: String]) {
    let ordered = fields.sorted { $0.key == "event" || ($1.key != "event" && $0.key < $1.key) }
    let body = ordered.map { key, value in
        let quoted = Double(value) == nil ? "\"\(value.replacingOccurrences(of: "\"", with: "'"))\"" : value
        return "\"\(key)\":\(quoted)"
    }.joined(separator: ",")
    FileHandle.standardOutput.write(("{" + body + "}\n").data(using: .utf8)!)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("bootstrap-peer: \(message)\n".data(using: .utf8)!)
    exit(2)
}

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
let ms: @Sendable () -> String = {
    let (s, atto) = (ContinuousClock.now - start).components
    return String(format: "%.1f", Double(s) * 1000 + Double(atto) / 1e15)
}

do {
    let udp = try await UDPTransport.bind(bind)
    let client = BootstrapClient.start(identity: identity, udp: udp, nodes: nodes)
    var discovery: [any DiscoverySource] = [client]
    if let lan = options["--lan"] {
        discovery.append(try await LANDiscovery.start(peer: PeerID(identity.publicKey), sessionPort: udp.localEndpoint.port,
                                                      configuration: LANDiscovery.Configuration(interfaces: [lan == "lo" ? .loopback : .named(lan)])))
    }
    let swarm = try Swarm(identity: identity, transport: client, discovery: discovery, configuration: configuration)
    say(["event": "ready", "peer": swarm.localPeer.description, "endpoint": udp.localEndpoint.description])

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
        for (peer, kind) in changes { say(["event": "path", "peer": peer.description, "path": kind, "ms": ms()]) }
    }

    let chat: @Sendable (SessionChannel, PeerID) async -> Void = { channel, peer in
        for await message in channel.messages {
            say(["event": "message", "peer": peer.description, "text": String(decoding: message, as: UTF8.self), "ms": ms()])
        }
    }

    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await swarm.run() }
        group.addTask {
          await withTaskGroup(of: Void.self) { group in
            for await connection in swarm.connections {
                let kind = client.path(for: connection.endpoint).name
                live.table.withLock { $0[connection.remotePeer] = (connection, kind) }
                say(["event": "connection", "peer": connection.remotePeer.description, "session": connection.sessionID.description,
                     "path": kind, "ms": ms()])
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
                    say(["event": "lost", "peer": peer.description, "reason": "\(reason)", "ms": ms()])
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
                    say(["event": "registered", "node": node.description,
                         "observed": client.observedEndpoint(at: node)?.description ?? "?", "ms": ms()])
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
    say(["event": "exit", "punchesSent": "\(c.punchesSent)", "punchesReceived": "\(c.punchesReceived)",
         "relayedSent": "\(c.relayedSent)", "relayedReceived": "\(c.relayedReceived)",
         "directConfirmed": "\(c.directConfirmed)", "introductions": "\(c.introductions)"])
} catch {
    fail("\(error)")
}

/// The connections whose path the peer watches, and the path last reported for each.
final class LiveConnections: Sendable {
    let table = Mutex<[PeerID: (PeerConnection, String)]>([:])
}
