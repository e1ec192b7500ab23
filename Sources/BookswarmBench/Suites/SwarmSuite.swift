import Foundation
import Sodium
import Swarm
import SwarmNIO
import Synchronization

/// `Tools/bench swarm`: (a) IK handshakes per second one responder accepts over loopback;
/// (b) session throughput between two swarms over loopback against raw SwiftNIO UDP measured
/// in the same run; (c) LAN join-to-session latency between two `swarm-peer` processes in the
/// namespace test bed (root only).
enum SwarmBench {
    static var suite: Suite {
        Suite(name: "swarm", summary: "handshakes/s, session throughput vs raw UDP, LAN join-to-session latency") {
            try await handshakes()
            try await throughput()
            try await lanLatency()
        }
    }

    static let loopback = Endpoint.v4(127, 0, 0, 1, port: 0)

    // MARK: (a) handshakes per second

    static func handshakes() async throws {
        let initiations = 6000
        let transport = try await UDPTransport.bind(loopback)
        var configuration = SwarmConfiguration()
        configuration.session.maxSessions = 2 * initiations
        let responder = try Swarm(identity: .generate(), transport: transport, configuration: configuration)
        let running = Task { try await responder.run() }
        defer { running.cancel() }

        // Initiations from distinct peers, prepared before the clock starts so only the
        // responder's work is measured.
        var packets: [[UInt8]] = []
        packets.reserveCapacity(initiations)
        for _ in 0..<initiations {
            var initiator = try SessionManager(identity: .generate())
            initiator.connect(to: responder.localPeer, at: transport.localEndpoint, now: .zero)
            packets.append(initiator.takeDatagrams()[0].payload)
        }
        let driver = try await UDPTransport.bind(loopback)
        let target = transport.localEndpoint
        // A window of outstanding initiations keeps the responder busy without overflowing
        // its socket buffer.
        let window = 256
        var next = min(window, packets.count)
        driver.send(packets[0..<next].map { Datagram(remote: target, payload: $0) })
        let start = now()
        var answered = 0
        var lastAnswer = start
        let deadline = start + 20
        for await batch in driver.incoming {
            let responses = batch.filter { $0.payload.count == PacketFormat.ikResponseLength }.count
            answered += responses
            lastAnswer = now()
            if next < packets.count && responses > 0 {
                let end = min(packets.count, next + responses)
                driver.send(packets[next..<end].map { Datagram(remote: target, payload: $0) })
                next = end
            }
            if answered >= packets.count || lastAnswer > deadline { break }
        }
        let rate = Double(answered) / (lastAnswer - start)
        // Floor: the responder does five X25519 scalar multiplications per IK handshake
        // (its ephemeral key, es, ss, ee, se), so X25519's rate / 5 is the most it could do.
        let a = X25519.KeyPair.generate()
        let b = X25519.KeyPair.generate()
        let x25519 = try measureRate(seconds: 0.6) { _ = try a.sharedSecret(with: b.publicKey) }
        Report.result("swarm.handshakes_per_s", rate, "handshakes/s", floor: x25519 / 5)
        Report.note("\(answered)/\(initiations) IK initiations answered; floor = X25519 rate / 5")
        await driver.close()
        await responder.shutdown()
    }

    // MARK: (b) throughput

    static func throughput() async throws {
        let duration = 2.0
        let ta = try await UDPTransport.bind(loopback)
        let tb = try await UDPTransport.bind(loopback)
        let a = try Swarm(identity: .generate(), transport: ta)
        let b = try Swarm(identity: .generate(), transport: tb)
        let runA = Task { try await a.run() }
        let runB = Task { try await b.run() }
        defer { runA.cancel(); runB.cancel() }
        await a.joinPeer(b.localPeer, at: tb.localEndpoint)
        await b.joinPeer(a.localPeer)
        var ca = a.connections.makeAsyncIterator()
        var cb = b.connections.makeAsyncIterator()
        guard let ab = await ca.next(), let ba = await cb.next() else {
            throw SwarmError(.sessionClosed, "the two benchmark swarms did not connect")
        }
        async let accepted: SessionChannel? = { for await channel in ba.incomingChannels { return channel }; return nil }()
        let out = try await ab.openChannel(label: Array("bench".utf8))
        guard let inbound = await accepted else { throw SwarmError(.channelOpenFailed, "no inbound channel") }

        let received = Atomic<Int>(0)
        let counter = Task {
            for await _ in inbound.messages { received.add(1, ordering: .relaxed) }
        }
        let message = [UInt8](repeating: 0xB5, count: ChannelLimits.maxMessage)
        let batch = [[UInt8]](repeating: message, count: 64)
        // Closed loop: at most `window` messages in flight, so the sender does not spend the
        // shared cores on datagrams the receiver would drop.
        let window = 4096
        var sent = 0
        let start = now()
        while now() - start < duration {
            if sent - received.load(ordering: .relaxed) > window {
                await Task.yield()
                continue
            }
            try await out.send(batch)
            sent += batch.count
        }
        try await Task.sleep(for: .milliseconds(50))
        let elapsed = now() - start
        let got = received.load(ordering: .relaxed)
        counter.cancel()
        let datagramSize = PacketFormat.minTransportLength + 3 + ChannelLimits.maxMessage
        let rate = Double(got) / elapsed

        let raw = try await RawUDPFloor.measure(datagramSize: 1200, duration: .seconds(2))
        Report.result("swarm.session_datagrams_per_s", rate, "datagrams/s", floor: raw.datagramsPerSecond)
        Report.result("swarm.session_payload_MB_per_s", rate * Double(ChannelLimits.maxMessage) / 1e6, "MB/s",
                      floor: raw.bytesPerSecond / 1e6)
        Report.note("session: \(got)/\(sent) messages of \(ChannelLimits.maxMessage) B in \(datagramSize)-byte datagrams; raw NIO UDP floor (1200-byte datagrams): \(raw)")
        await a.shutdown()
        await b.shutdown()
    }

    // MARK: (c) LAN join-to-session latency

    static func lanLatency() async throws {
        let env = ProcessInfo.processInfo.environment
        let repo = env["BOOKSWARM_REPO"] ?? FileManager.default.currentDirectoryPath
        let script = repo + "/Tools/netns"
        guard geteuid() == 0 else { return Report.note("swarm.lan_join_to_session skipped: needs root (network namespaces)") }
        guard FileManager.default.isExecutableFile(atPath: script) else {
            return Report.note("swarm.lan_join_to_session skipped: no Tools/netns at \(script)")
        }
        let bin = env["BOOKSWARM_BIN"] ?? repo + "/.build/release"
        let peer = bin + "/swarm-peer"
        if !FileManager.default.isExecutableFile(atPath: peer) {
            // Tools/bench builds only the bench product; the peer shares its modules.
            _ = try run(["/usr/bin/env", "swift", "build", "-c", "release", "--product", "swarm-peer",
                         "--package-path", repo])
        }
        guard FileManager.default.isExecutableFile(atPath: peer) else {
            return Report.note("swarm.lan_join_to_session skipped: swarm-peer not built at \(peer)")
        }
        let bed = "bench\(getpid() % 100_000)"
        _ = try run([script, "up", bed, "2"])
        defer { _ = try? run([script, "down", bed]) }
        var samples: [Double] = []
        for round in 0..<24 {
            let topic = SecureRandom.bytes(32).hexString
            let processes = try (1...2).map { host in
                try PeerProcess(["/usr/bin/env", "ip", "netns", "exec", "\(bed)-h\(host)", peer,
                                 "--interface", "eth0", "--port", "\(42_000 + round)", "--seed", "\(host)",
                                 "--topic", topic, "--seconds", "5"])
            }
            // The later joiner's time from its join to its session: the earlier one was
            // already announcing, so this is query, answer, handshake and capabilities.
            let times = await withTaskGroup(of: Double?.self) { group in
                for p in processes { group.addTask { await p.connectionMilliseconds(timeout: 5) } }
                var all: [Double] = []
                for await t in group { if let t { all.append(t) } }
                return all
            }
            for p in processes { p.kill() }
            if times.count == 2 { samples.append(times.min()!) }
        }
        guard samples.count >= 20 else {
            return Report.note("swarm.lan_join_to_session: only \(samples.count) of 24 runs connected")
        }
        Report.result("swarm.lan_join_to_session_median_ms", percentile(samples, 0.5), "ms")
        Report.result("swarm.lan_join_to_session_p95_ms", percentile(samples, 0.95), "ms")
        Report.note("\(samples.count) runs, two swarm-peer processes on a 2-host bridge LAN of namespaces")
    }

    @discardableResult
    static func run(_ argv: [String]) throws -> String {
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
        guard process.terminationStatus == 0 else {
            throw SwarmError(.invalidState, "\(argv.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    /// A `swarm-peer` child; collects its output to find the first connection.
    final class PeerProcess: Sendable {
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

        /// `ms` of the first `connection` line (the peer's own clock, since its join), or nil
        /// after `timeout` seconds.
        func connectionMilliseconds(timeout: Double) async -> Double? {
            let end = now() + timeout
            while now() < end {
                let text = buffer.text.withLock { $0 }
                for line in text.split(separator: "\n") where line.contains("\"event\":\"connection\"") {
                    if let range = line.range(of: "\"ms\":") {
                        return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." })
                    }
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return nil
        }

        func kill() {
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }
}
