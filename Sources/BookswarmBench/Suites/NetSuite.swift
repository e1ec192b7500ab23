import Foundation
import NIOCore
import Sodium
import Swarm
import SwarmNIO

/// `Tools/bench net`: the socket layer and LAN discovery, over loopback only.
var netSuite: Suite { Suite(name: "net", summary: "raw NIO UDP floor, UDPTransport against it, LAN discovery latency and cost") {
    // 1. The floor: two plain NIO sockets.
    let floor = try await RawUDPFloor.measure(datagramSize: 1200, duration: .seconds(1))
    Report.result("net.udp_floor", floor.datagramsPerSecond, "datagrams/s")
    Report.result("net.udp_floor_bytes", floor.bytesPerSecond / 1e6, "MB/s")

    // 2. UDPTransport, one sender → one receiver, 1200-byte datagrams, through `incoming`.
    let transportRate = try await measureTransport(seconds: 1)
    Report.result("net.udp_transport", transportRate, "datagrams/s", floor: floor.datagramsPerSecond)

    // 3. The discovery machine's cost per datagram (what a flood costs us in CPU).
    Report.result("net.discovery_machine_receive", discoveryMachineRate(), "datagrams/s")

    // 4. A spoofed query flood: 10,000 queries from 1,000 source addresses within one second.
    let flood = queryFlood()
    Report.result("net.discovery_flood_answers", Double(flood.answers), "answers/10k queries")
    Report.result("net.discovery_flood_bytes_out_per_byte_in", flood.bytesOut / flood.bytesIn, "ratio")
    Report.result("net.discovery_answer_to_query_max", flood.maxAnswerToQuery, "ratio")

    // 5. Join-to-sighting over loopback: b joins after a; time until b sees a (query → answer).
    var latencies: [Double] = []
    for run in 0..<20 {
        latencies.append(try await joinToSighting(port: UInt16(31_950 + run % 10)))
    }
    Report.result("net.discovery_join_to_sighting_median", percentile(latencies, 0.5), "ms")
    Report.result("net.discovery_join_to_sighting_p95", percentile(latencies, 0.95), "ms")
} }

private func measureTransport(seconds: Double) async throws -> Double {
    let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
    let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
    let batch = [Datagram](repeating: Datagram(remote: b.localEndpoint, payload: [UInt8](repeating: 0xB5, count: 1200)), count: 64)
    let deadline = now() + seconds
    // A window of 2048 datagrams in flight, refilled by what arrives (send never blocks, so
    // the bench paces itself like a protocol with a window would). Lost datagrams shrink the
    // window; a slow timer tops it up when nothing arrived for 5 ms.
    for _ in 0..<32 { a.send(batch) }
    let topUp = Task {
        var seen = 0
        while now() < deadline {
            try? await Task.sleep(for: .milliseconds(5))
            let received = b.counters.datagramsReceived
            if received == seen { for _ in 0..<8 { a.send(batch) } }
            seen = received
        }
        // Ends the receiving loop even if the last datagrams were lost.
        try? await Task.sleep(for: .milliseconds(500))
        await b.close()
    }
    let start = now()
    var received = 0
    for await got in b.incoming {
        received += got.count
        if now() >= deadline { break }
        a.send(Array(batch.prefix(got.count)))
    }
    let elapsed = now() - start
    topUp.cancel()
    await a.close()
    await b.close()
    return Double(received) / elapsed
}

private func discoveryMachineRate() -> Double {
    var rng = SystemRandomNumberGenerator()
    let topic = Topic(bytes: SecureRandom.bytes(32))!
    let unix = UInt64(Date().timeIntervalSince1970)
    var config = LANDiscoveryMachine.Configuration()
    config.perSourceRate = 1e9
    config.perSourceBurst = 1e9
    var machine = LANDiscoveryMachine(peer: PeerID(Ed25519.KeyPair.generate().publicKey), sessionPort: 1, replyPort: 2,
                                      configuration: config)
    let time = LANDiscoveryMachine.Time(monotonic: .now(), unixSeconds: unix)
    _ = machine.join(topic, announce: true, lookup: true, at: time, rng: &rng)
    let announcement = DiscoveryMessage(kind: .announcement, sender: PeerID(Ed25519.KeyPair.generate().publicKey), port: 9,
                                        beacons: [Beacon(topic: topic, epoch: BeaconEpoch(unixSeconds: unix))]).encoded()
    return measureRate(operationsPerCall: 1000) {
        for _ in 0..<1000 {
            _ = machine.receive(announcement, from: .v4(10, 0, 0, 1, port: 24771), on: .multicast, at: time)
        }
    }
}

private func queryFlood() -> (answers: Int, bytesIn: Double, bytesOut: Double, maxAnswerToQuery: Double) {
    var rng = SystemRandomNumberGenerator()
    let unix = UInt64(Date().timeIntervalSince1970)
    let epoch = BeaconEpoch(unixSeconds: unix)
    let topics = (0..<64).map { _ in Topic(bytes: SecureRandom.bytes(32))! }
    var machine = LANDiscoveryMachine(peer: PeerID(Ed25519.KeyPair.generate().publicKey), sessionPort: 1, replyPort: 2)
    let start = NIODeadline.now()
    for t in topics { _ = machine.join(t, announce: true, lookup: false, at: .init(monotonic: start, unixSeconds: unix), rng: &rng) }
    let attacker = PeerID(Ed25519.KeyPair.generate().publicKey)
    var answers = 0
    var bytesIn = 0.0
    var bytesOut = 0.0
    var maxRatio = 0.0
    for i in 0..<10_000 {
        // Queries of 1…64 beacons, all matching: the worst case for the answerer.
        let beacons = Array(topics.prefix(1 + i % 64)).map { Beacon(topic: $0, epoch: epoch) }
        let query = DiscoveryMessage(kind: .query, sender: attacker, port: 9, beacons: beacons).encoded()
        let time = LANDiscoveryMachine.Time(monotonic: start + .microseconds(Int64(i) * 100), unixSeconds: unix)
        let source = Endpoint.v4(10, 1, UInt8((i % 1000) >> 8), UInt8(i % 1000 & 0xff), port: 24771)
        bytesIn += Double(query.count)
        for case let .unicast(answer, _) in machine.receive(query, from: source, on: .multicast, at: time) {
            answers += 1
            bytesOut += Double(answer.count)
            maxRatio = max(maxRatio, Double(answer.count) / Double(query.count))
        }
    }
    return (answers, bytesIn, bytesOut, maxRatio)
}

private func joinToSighting(port: UInt16) async throws -> Double {
    let config = LANDiscovery.Configuration(interfaces: [.loopback], port: port)
    let a = try await LANDiscovery.start(peer: PeerID(Ed25519.KeyPair.generate().publicKey), sessionPort: 41_900, configuration: config)
    let b = try await LANDiscovery.start(peer: PeerID(Ed25519.KeyPair.generate().publicKey), sessionPort: 41_901, configuration: config)
    let topic = Topic(bytes: SecureRandom.bytes(32))!
    await a.join(topic, announce: true, lookup: false)
    let start = now()
    await b.join(topic, announce: false, lookup: true)
    var elapsed = Double.nan
    let watchdog = Task { try? await Task.sleep(for: .seconds(3)); await b.close() }
    for await sighting in b.sightings where sighting.peer == a.peer {
        elapsed = (now() - start) * 1000
        break
    }
    watchdog.cancel()
    await a.close()
    await b.close()
    return elapsed
}
