// replication-peer: a book store, a swarm over UDP and a replicator as one process, for the
// multi-process and namespace tests of replication and for looking at it by hand.
//
//   replication-peer --dir PATH --seed N|HEX64 --bind A.B.C.D --port P --topic HEX64
//                    [--connect PEERHEX@A.B.C.D:P] [--seconds S] [--dead-peer-timeout S]
//     author:  --author NAME --pages N [--page-size BYTES]     (creates the pages if missing)
//     reader:  --read BOOKHEX --expect N [--exit-when-complete]
//
// Pages are generated from their index (so a reader can check every byte without the
// author); the master secret and the identity both come from --seed. No discovery runs:
// --connect dials a peer directly (and redials it after a loss). One JSON object per line
// (JSONLines; T is whole milliseconds since start):
//   {"event":"ready","peer":HEX,"endpoint":"A.B.C.D:P","book":HEX,"length":N,"held":N}
//   {"event":"connection","peer":HEX,"ms":T}
//   {"event":"progress","held":N,"known":N,"contiguous":N,"ms":T}           (reader, 5/s)
//   {"event":"complete","held":N,"stored":N,"stored_expected":N,"identical":1,"verified":1,"ms":T}
//   {"event":"refusal","peer":HEX,"reason":R,"by_remote":0|1}
//   {"event":"exit","stored":N,"retransmissions":N}
// Exits by itself after S seconds (default 60, at most 600), or on SIGTERM/SIGINT.
import Books
import Foundation
import JSONLines
import Replication
import Sodium
import Swarm
import SwarmNIO

func fail(_ message: String) -> Never { fail(tool: "replication-peer", message) }

/// Page `i`: `size` bytes derived from `i` (xorshift), the same generator as the tests'.
func page(_ i: UInt64, size: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: size)
    var x = i &* 0x9E37_79B9_7F4A_7C15 &+ 1
    for j in 0..<size {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        bytes[j] = UInt8(truncatingIfNeeded: x)
    }
    return bytes
}

var options: [String: String] = [:]
var flags: Set<String> = []
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--dir", "--seed", "--bind", "--port", "--topic", "--connect", "--seconds", "--author", "--pages",
         "--page-size", "--read", "--expect", "--dead-peer-timeout":
        guard let value = args.popFirst() else { fail("\(arg) needs a value") }
        options[arg] = value
    case "--exit-when-complete":
        flags.insert(arg)
    case "--help", "-h":
        print("usage: replication-peer --dir PATH --seed N --bind ADDR --port P --topic HEX64 [--connect PEERHEX@ADDR:PORT] (--author NAME --pages N [--page-size B] | --read BOOKHEX --expect N [--exit-when-complete]) [--seconds S]")
        exit(0)
    default: fail("unknown argument \(arg)")
    }
}
guard let dir = options["--dir"] else { fail("--dir is required") }
guard let seedText = options["--seed"] else { fail("--seed is required") }
let seedBytes: [UInt8] = if let n = UInt8(seedText) { [UInt8](repeating: n, count: 32) }
    else if let hex = [UInt8](hex: seedText), hex.count == 32 { hex } else { fail("--seed is 0…255 or 64 hex digits") }
guard let bindText = options["--bind"], let bindEndpoint = Endpoint(bindText, defaultPort: 0) else { fail("--bind A.B.C.D is required") }
guard let port = options["--port"].flatMap(UInt16.init) else { fail("--port is required") }
guard let topic = Topic(bytes: [UInt8](hex: options["--topic"] ?? "") ?? []) else { fail("--topic must be 64 hex digits") }
let seconds = min(600, Double(options["--seconds"] ?? "60") ?? 60)
let pageSize = Int(options["--page-size"] ?? "1024") ?? 1024
let exitWhenComplete = flags.contains("--exit-when-complete")

var configuration = SwarmConfiguration()
configuration.session.deadPeerTimeout = .milliseconds(Int64((Double(options["--dead-peer-timeout"] ?? "3") ?? 3) * 1000))
configuration.session.keepaliveInterval = .milliseconds(500)
configuration.retry = RetryPolicy(delays: [.milliseconds(200), .milliseconds(500), .seconds(1)], jitter: 0.25)
configuration.channelBuffer = 16384

let started = ContinuousClock.now
func ms() -> JSONValue { .int(Int((ContinuousClock.now - started) / .milliseconds(1))) }

do {
    let identity = try Ed25519.KeyPair(seed: SecretBytes(copying: seedBytes))
    let store = try BookStore.open(directory: dir, masterSecret: SecretBytes(copying: seedBytes))
    let book: Book
    var expected: UInt64 = 0
    if let name = options["--author"] {
        guard let pages = options["--pages"].flatMap(UInt64.init) else { fail("--author needs --pages") }
        book = try store.createOrOpen(name: name)
        while book.length < pages {
            let start = book.length
            let end = min(pages, start + 10_000)
            try book.append(contentsOf: (start..<end).map { page($0, size: pageSize) })
        }
    } else if let hex = options["--read"] {
        guard let id = try? BookID(hex: hex) else { fail("--read needs a 64-hex-digit book id") }
        guard let n = options["--expect"].flatMap(UInt64.init) else { fail("--read needs --expect N") }
        expected = n
        book = try store.open(id: id)
    } else {
        fail("either --author NAME or --read BOOKHEX")
    }
    let heldAtStart = book.heldRanges().count
    let expect = expected

    let transport = try await UDPTransport.bind(Endpoint(address: bindEndpoint.address, port: port))
    let swarm = try Swarm(identity: identity, transport: transport, configuration: configuration)
    let replicator = Replicator(store: store, localPeer: swarm.localPeer, policy: .sharedSecret(topic.bytes))
    say("ready", ["peer": .string(swarm.localPeer.description), "endpoint": .string(transport.localEndpoint.description),
                  "book": .string(book.id.hex), "length": .int(book.length), "held": .int(heldAtStart)])

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
                say("connection", ["peer": .string(connection.remotePeer.description), "ms": ms()])
                replicator.attach(connection)
            }
        }
        group.addTask {
            for await refusal in replicator.refusals {
                say("refusal", ["peer": .string(refusal.peer.description), "reason": "\(refusal.reason)",
                                "by_remote": .int(refusal.byRemote ? 1 : 0)])
            }
        }
        await swarm.join(topic)
        if let connect = options["--connect"] {
            let parts = connect.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, let peer = try? PeerID(bytes: [UInt8](hex: parts[0]) ?? []),
                  let endpoint = Endpoint(parts[1], defaultPort: 0) else { fail("--connect PEERHEX@A.B.C.D:P") }
            await swarm.joinPeer(peer, at: endpoint)
        }
        if expect > 0 {
            try await replicator.replicate(book.id)
            group.addTask {
                var last = ReplicationProgress?.none
                while true {
                    try await Task.sleep(for: .milliseconds(200))
                    let progress = try replicator.progress(of: book.id)
                    if progress != last {
                        say("progress", ["held": .int(progress.heldPages), "known": .int(progress.knownLength),
                                         "contiguous": .int(progress.contiguousPages), "ms": ms()])
                        last = progress
                    }
                    if progress.contiguousPages >= expect {
                        var identical = true
                        var i: UInt64 = 0
                        while i < expect, identical {
                            let end = min(expect, i + 5000)
                            for (offset, p) in try book.pages(in: i..<end).enumerated() where p != page(i + UInt64(offset), size: p.count) {
                                identical = false
                            }
                            i = end
                        }
                        var verified = true
                        do { try book.verify() } catch { verified = false }
                        let stored = replicator.stats(of: book.id).pagesStored
                        say("complete", ["held": .int(book.heldRanges().count), "stored": .int(stored),
                                         "stored_expected": .int(expect - heldAtStart), "identical": .int(identical ? 1 : 0),
                                         "verified": .int(verified ? 1 : 0), "ms": ms()])
                        if exitWhenComplete { await swarm.shutdown() }
                        return
                    }
                }
            }
        }
        group.addTask {
            try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            await swarm.shutdown()
        }
        try await group.next()
        await swarm.shutdown()
        group.cancelAll()
    }
    let stats = replicator.stats(of: book.id)
    await replicator.shutdown()
    say("exit", ["stored": .int(stats.pagesStored), "retransmissions": .int(stats.retransmissions)])
    store.close()
} catch {
    fail("\(error)")
}
