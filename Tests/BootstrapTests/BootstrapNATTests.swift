import Foundation
import Sodium
import Testing

/// Real `bootstrap-peer` processes on two LANs behind NAT routers, and a real node on the
/// public side (Tools/natbed): the acceptance scenarios of the bootstrap node.
@Suite("Bootstrap across NATs in namespaces", .serialized,
       .enabled(if: NATBed.available, "\(NATBed.unavailableReason ?? "")"))
struct BootstrapNATTests {
    static func topic() -> String { SecureRandom.bytes(32).hexString }

    /// Both peers connected, and each received at least `messages` chat messages from the other.
    static func expectChat(_ a: ChildProcess, _ b: ChildProcess, messages: Int, timeout: Duration) async {
        for (p, q) in [(a, b), (b, a)] {
            let hit = await p.waitFor(timeout) { _ in p.lines("message").count >= messages }
            #expect(hit != nil, "too few messages: \(p.transcript)\n--- other side:\n\(q.transcript)")
        }
    }

    /// The path the peer reports for its session: the last `path` event, else the one its
    /// connection started on.
    static func path(_ p: ChildProcess) -> String? {
        p.lines("path").last?.fields["path"] ?? p.lines("connection").last?.fields["path"]
    }

    @Test func coneNATsGiveADirectPunchedSessionAndChatWorks() async throws {
        let bed = NATBed.name("cone")
        try await NATBed.withBed(bed, "cone") {
            let node = try NATBed.startNode(bed)
            _ = await node.waitFor(.seconds(3)) { $0.event == "ready" }
            let topic = Self.topic()
            let a = try NATBed.startPeer(bed, "a", seed: 1, topic: topic, send: "cone-a", seconds: 6)
            let b = try NATBed.startPeer(bed, "b", seed: 2, topic: topic, send: "cone-b", seconds: 6)
            await Self.expectChat(a, b, messages: 3, timeout: .seconds(6))
            await a.finish(timeout: .seconds(8))
            await b.finish(timeout: .seconds(8))
            for p in [a, b] {
                #expect(Self.path(p) == "punched", "\(p.transcript)")
                #expect(p.lines("connection").count == 1)
            }
            await node.stop()
            #expect(node.lines("exit").first?.fields["relayedDatagrams"] == "0", "\(node.transcript)")
        }
    }

    @Test func symmetricNATsRelayAndTheNodeNeverSeesAMessage() async throws {
        let bed = NATBed.name("sym")
        let capture = "/tmp/bootstrap-nat-capture-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: capture) }
        try await NATBed.withBed(bed, "symmetric") {
            let node = try NATBed.startNode(bed, capture: capture)
            _ = await node.waitFor(.seconds(3)) { $0.event == "ready" }
            let topic = Self.topic()
            let marker = "plaintext-\(UInt32.random(in: 0...UInt32.max))"
            let a = try NATBed.startPeer(bed, "a", seed: 1, topic: topic, send: marker, seconds: 6)
            let b = try NATBed.startPeer(bed, "b", seed: 2, topic: topic, send: marker, seconds: 6)
            await Self.expectChat(a, b, messages: 3, timeout: .seconds(6))
            await a.finish(timeout: .seconds(8))
            await b.finish(timeout: .seconds(8))
            for p in [a, b] {
                #expect(Self.path(p) == "relay", "\(p.transcript)")
                #expect(p.lines("message").contains { $0.fields["text"]?.hasPrefix(marker) == true })
            }
            await node.stop()
            let relayed = Int(node.lines("exit").first?.fields["relayedDatagrams"] ?? "") ?? 0
            #expect(relayed > 20, "\(node.transcript)")
            let seen = try [UInt8](Data(contentsOf: URL(fileURLWithPath: capture)))
            #expect(seen.count > 2000)
            #expect(!contains(seen, Array(marker.utf8)), "the node's capture holds a message's plaintext")
        }
    }

    @Test func peersComeBackAfterTheNodeRestarts() async throws {
        let bed = NATBed.name("rst")
        try await NATBed.withBed(bed, "symmetric") {
            var node = try NATBed.startNode(bed)
            _ = await node.waitFor(.seconds(3)) { $0.event == "ready" }
            let topic = Self.topic()
            let extra = ["--dead-peer-timeout", "3", "--keepalive", "0.5"]
            let a = try NATBed.startPeer(bed, "a", seed: 1, topic: topic, send: "restart-a", seconds: 16, extra: extra)
            let b = try NATBed.startPeer(bed, "b", seed: 2, topic: topic, send: "restart-b", seconds: 16, extra: extra)
            await Self.expectChat(a, b, messages: 2, timeout: .seconds(6))
            node.kill()
            await node.finish(timeout: .seconds(2))
            let clock = ContinuousClock()
            let restartedAt = clock.now
            let before = a.lines("message").count
            try await Task.sleep(for: .seconds(1))
            node = try NATBed.startNode(bed)
            _ = await node.waitFor(.seconds(3)) { $0.event == "ready" }
            // Messages flow again, through the new node's relay.
            let back = await a.waitFor(.seconds(9)) { _ in a.lines("message").count >= before + 3 }
            #expect(back != nil, "\(a.transcript)\n--- node:\n\(node.transcript)")
            let elapsed = clock.now - restartedAt
            a.kill()
            b.kill()
            await a.finish(timeout: .seconds(2))
            await b.finish(timeout: .seconds(2))
            await node.stop()
            let relayed = Int(node.lines("exit").first?.fields["relayedDatagrams"] ?? "") ?? 0
            #expect(relayed > 0, "the restarted node relays: \(node.transcript)")
            #expect(node.lines("exit").first?.fields["registrations"] == "2", "both registered again: \(node.transcript)")
            print("bootstrap: sessions back \(elapsed) after the node restart")
        }
    }

    /// 100 000 spoofed and random requests at the node while a legitimate pair connects.
    @Test func aFloodOfSpoofedRequestsNeitherStopsTheNodeNorAPairOfPeers() async throws {
        let bed = NATBed.name("fld")
        try await NATBed.withBed(bed, "cone") {
            let node = try NATBed.startNode(bed)
            _ = await node.waitFor(.seconds(3)) { $0.event == "ready" }
            try await Task.sleep(for: .milliseconds(300))
            let rssBefore = residentBytes(node.pid)
            let flood = try ChildProcess(NATBed.inHost(bed, "x", ["/usr/bin/env", "python3", "-c", Self.flooder, "100000"]))
            try await Task.sleep(for: .milliseconds(300))
            let topic = Self.topic()
            let a = try NATBed.startPeer(bed, "a", seed: 1, topic: topic, send: "flood-a", seconds: 8)
            let b = try NATBed.startPeer(bed, "b", seed: 2, topic: topic, send: "flood-b", seconds: 8)
            await Self.expectChat(a, b, messages: 3, timeout: .seconds(8))
            await flood.finish(timeout: .seconds(30))
            let sent = await flood.waitFor(.seconds(1)) { $0.event == "flood" }
            #expect(sent?.fields["sent"] == "100000", "\(flood.transcript)")
            let rssAfter = residentBytes(node.pid)
            await a.finish(timeout: .seconds(10))
            await b.finish(timeout: .seconds(10))
            await node.stop()
            guard let exit = node.lines("exit").first else {
                Issue.record("the node did not survive the flood: \(node.transcript)")
                return
            }
            let received = Int(exit.fields["received"] ?? "") ?? 0
            let into = Double(exit.fields["unprovenBytesIn"] ?? "") ?? 0
            let out = Double(exit.fields["unprovenBytesOut"] ?? "") ?? 0
            let worst = Double(exit.fields["worstUnprovenRatio"] ?? "") ?? 99
            #expect(worst <= 1.0, "amplification \(worst)")
            #expect(out <= into)
            #expect(rssAfter - rssBefore < 64 << 20, "node memory grew by \(rssAfter - rssBefore) bytes")
            print("bootstrap flood: node received \(received) datagrams; unproven bytes in \(Int(into)), out \(Int(out)) "
                + "(amplification \(String(format: "%.3f", into > 0 ? out / into : 0)) overall, worst single exchange \(worst)); "
                + "resident memory \(rssBefore >> 10) KiB → \(rssAfter >> 10) KiB")
        }
    }

    /// Python: sends N UDP datagrams to the node from spoofed sources in 198.18.0.0/16
    /// (raw socket, own IP header): a third random bytes, the rest bootstrap requests with
    /// random cookies, signatures and targets. Prints {"event":"flood","sent":N}.
    static let flooder = #"""
import os, random, socket, struct, sys, json
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = socket.inet_aton("100.64.0.1")
def rb(k): return os.urandom(k)
def request(i):
    kind = i % 6
    if kind == 0: return rb(random.randint(1, 300))
    if kind == 1: return bytes([0xB5, 0x02]) + rb(16) + bytes([1]) + rb(16)
    if kind == 2: return bytes([0xB5, 0x01]) + rb(16) + rb(32) + struct.pack("<H", 60) + bytes([1]) + rb(16) + bytes([0]) + rb(64)
    if kind == 3: return bytes([0xB5, 0x03]) + rb(16) + rb(32)
    if kind == 4: return bytes([0xB5, 0x04]) + rb(32) + rb(random.randint(1, 1200))
    return bytes([0xB5, random.randint(0, 255)]) + rb(random.randint(0, 64))
sent = 0
for i in range(n):
    payload = request(i)
    src = socket.inet_aton("198.18.%d.%d" % (random.randint(0, 255), random.randint(1, 254)))
    udp = struct.pack("!HHHH", random.randint(1024, 65535), 7000, 8 + len(payload), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(payload), random.randint(0, 65535), 0, 64, 17, 0, src, dst)
    try:
        s.sendto(ip + udp + payload, ("100.64.0.1", 0))
        sent += 1
    except OSError:
        pass
print(json.dumps({"event": "flood", "sent": sent}), flush=True)
"""#
}

/// The resident set of a process, from /proc (0 when it is gone).
func residentBytes(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
    return 0
}
