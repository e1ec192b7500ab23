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

    // 4. Join-to-sighting over loopback: b joins after a; time until b sees a (query → answer).
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
    let sender = Task {
        // Keep a bounded number of datagrams in flight: send never blocks, so pace on what
        // the receiver has seen rather than let the queue drop.
        while now() < deadline {
            if a.counters.datagramsSent - b.counters.datagramsReceived < 2048 {
                a.send(batch)
            } else {
                await Task.yield()
            }
        }
    }
    let start = now()
    var received = 0
    for await got in b.incoming {
        received += got.count
        if now() >= deadline { break }
    }
    let elapsed = now() - start
    await sender.value
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
