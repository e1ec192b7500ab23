import BookswarmTestSupport
import Foundation
import Sodium
import Testing
@testable import Swarm

/// LAN discovery on the LAN default (no interface named, as a daemon on a laptop runs it),
/// followed as interfaces come and go, between probes in the namespace test bed: a host that
/// starts with only `lo` (a laptop before its Wi-Fi is up) and gets an eth0, one whose eth0
/// goes and comes back, and one whose address changes. `--lan-default` multicasts on every
/// interface of the host it runs in, so it runs only inside the bed's namespaces.
///
/// Announcements are a minute apart and changes come after the first lookup round's last
/// query (about 3 s in), so what finds a host after a change is the query and announcement
/// it sends as it takes the interface up (PROTOCOL.md §6.1) — and nothing is sent in the
/// second between an interface going and discovery noticing (a datagram sent then would
/// fail, and count as a send error like any other).
@Suite("LAN discovery following the LAN default in the namespace test bed", .serialized,
       .enabled(if: Netns.available, "\(Netns.unavailableReason ?? "")"))
struct NetnsLANDefaultTests {
    static func probe(_ bed: String, host: Int, port: Int, topic: String, seconds: Double, extra: [String] = []) async throws -> Probe.Output {
        guard let probe = Probe.binary else {
            throw Netns.Failure(description: "discovery-probe not built: run `swift build` (Tools/test builds it)")
        }
        return Probe.Output(try await Probe.run(Netns.inHost(bed, host, [
            probe.path, "--lan-default", "--port", "\(port)", "--topic", topic, "--seconds", "\(seconds)",
            "--announce-interval", "60000", "--session-port", "\(42_000 + host)",
        ] + extra), timeout: seconds + 10))
    }

    /// When (ms after its join) `output`'s probe first saw `peer` at an endpoint starting with `prefix`.
    static func seen(_ output: Probe.Output, _ peer: String?, at prefix: String) -> Double? {
        output.lines.first { $0.hasPrefix("sighting \(peer ?? "?") \(prefix)") }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    /// The `interfaces-now` lines: (ms after join, as shown).
    static func changes(_ output: Probe.Output) -> [(ms: Double, shown: String)] {
        output.lines.filter { $0.hasPrefix("interfaces-now ") }.map {
            let parts = $0.split(separator: " ", maxSplits: 2)
            return (Double(parts[1]) ?? -1, String(parts[2]))
        }
    }

    static func counters(_ output: Probe.Output) -> String { output.lines.first { $0.hasPrefix("counters ") } ?? "" }

    /// A laptop started before its network: host 1 has only `lo` when its probe starts, so
    /// discovery runs on no interface and waits; 2 s later a veth pair is created and
    /// addressed. Host 1 takes its eth0 up (IPv4 and IPv6), and the two hosts find each
    /// other over it, both ways, on both families, within a second or so.
    @Test func anInterfaceThatAppearsAfterTheStartIsTakenUp() async throws {
        let bed = Netns.bedName("ldplug")
        let topic = SecureRandom.bytes(32).hexString
        let (first, second, linkLocal) = try await Netns.withBed(bed, hosts: 2) {
            try Netns.unplug(bed, host: 1)
            async let first = Self.probe(bed, host: 1, port: 31893, topic: topic, seconds: 5)
            async let second = Self.probe(bed, host: 2, port: 31893, topic: topic, seconds: 5)
            try await Task.sleep(for: .seconds(2))
            try Netns.plug(bed, host: 1)
            let linkLocal = try (1...2).map { try Netns.linkLocal(bed, host: $0) }
            return (try await first, try await second, linkLocal)
        }
        let lines = "\(first.lines) / \(second.lines)"
        #expect(first.lines.first { $0.hasPrefix("interfaces ") } == "interfaces any LAN interface (waiting for IPv4)", "\(lines)")
        #expect(first.lines.last { $0.hasPrefix("interfaces ") } == "interfaces eth0 (IPv4+IPv6)", "\(lines)")
        #expect(second.lines.first { $0.hasPrefix("interfaces ") } == "interfaces eth0 (IPv4+IPv6)", "\(lines)")
        let takenUp = try #require(Self.changes(first).first { $0.shown.hasPrefix("eth0") }, "\(lines)")
        #expect(Self.counters(first).contains(" interfacesTakenUp=1 interfacesDropped=0"), "\(lines)")
        #expect(Self.counters(first).contains(" sendErrors=0 "), "waiting for an interface is no send error: \(lines)")
        let sightings = [
            ("host 2 saw host 1 over IPv4", Self.seen(second, first.peer, at: "10.77.0.1:42001")),
            ("host 2 saw host 1 over IPv6", Self.seen(second, first.peer, at: "[\(linkLocal[0])%")),
            ("host 1 saw host 2 over IPv4", Self.seen(first, second.peer, at: "10.77.0.2:42002")),
            ("host 1 saw host 2 over IPv6", Self.seen(first, second.peer, at: "[\(linkLocal[1])%")),
        ]
        for (what, ms) in sightings {
            #expect(ms != nil, "\(what): \(lines)")
            // The probes started together; eth0 came ~2 s in and was taken up within a look.
            if let ms { #expect(ms < takenUp.ms + 1500, "\(what) at \(ms) ms, eth0 taken up at \(takenUp.ms) ms") }
        }
        print("eth0 plugged ~2000 ms after start; taken up at \(takenUp.ms) ms; "
              + sightings.map { "\($0.0) at \($0.1.map { String(format: "%.0f", $0) } ?? "-") ms" }.joined(separator: ", "))
    }

    /// Host 1's eth0 is removed while discovery runs on it (a USB adapter pulled, a VM's NIC
    /// gone): it is dropped quietly — shown as waiting, no send error — and when an eth0
    /// comes back (a new veth: new index, new link-local address, and a new IPv4 address)
    /// it is taken up again and host 2 sees host 1 at the new addresses.
    @Test func anInterfaceThatGoesIsDroppedQuietlyAndTakenUpAgain() async throws {
        let bed = Netns.bedName("ldreplug")
        let topic = SecureRandom.bytes(32).hexString
        let (first, second, before, after) = try await Netns.withBed(bed, hosts: 2) {
            let before = try Netns.linkLocal(bed, host: 1)
            async let first = Self.probe(bed, host: 1, port: 31894, topic: topic, seconds: 8)
            async let second = Self.probe(bed, host: 2, port: 31894, topic: topic, seconds: 8)
            try await Task.sleep(for: .seconds(4))
            try Netns.unplug(bed, host: 1)
            try await Task.sleep(for: .seconds(2))
            try Netns.plug(bed, host: 1, address: "10.77.0.11")
            let after = try Netns.linkLocal(bed, host: 1)
            return (try await first, try await second, before, after)
        }
        let lines = "\(first.lines) / \(second.lines)"
        #expect(before != after, "a new veth has a new link-local address")
        let shown = Self.changes(first).map(\.shown)
        #expect(shown.contains("any LAN interface (waiting for IPv4)") && shown.last == "eth0 (IPv4+IPv6)", "\(lines)")
        #expect(Self.counters(first).contains(" interfacesTakenUp=1 interfacesDropped=1"), "\(lines)")
        #expect(Self.counters(first).contains(" sendErrors=0 "), "a dropped interface is no send error: \(lines)")
        #expect(Self.seen(second, first.peer, at: "10.77.0.1:42001") != nil, "\(lines)")
        #expect(Self.seen(second, first.peer, at: "[\(before)%") != nil, "\(lines)")
        let back = try #require(Self.changes(first).last?.ms, "\(lines)")
        for (what, ms) in [("IPv4", Self.seen(second, first.peer, at: "10.77.0.11:42001")),
                           ("IPv6", Self.seen(second, first.peer, at: "[\(after)%"))] {
            #expect(ms != nil, "host 2 did not see host 1 back over \(what): \(lines)")
            if let ms { #expect(ms < back + 1500, "host 1 back at \(back) ms, seen over \(what) at \(ms) ms") }
        }
    }

    /// Host 1's eth0 stays, its IPv4 address changes (a new lease): discovery moves its
    /// socket to the new address within a look and greets from there, so host 2 — whose
    /// announcements are a minute apart — sees host 1 at the new address.
    @Test func aNewAddressOnAnInterfaceOfTheDefaultIsTakenUp() async throws {
        let bed = Netns.bedName("ldreaddr")
        let topic = SecureRandom.bytes(32).hexString
        let (first, second) = try await Netns.withBed(bed, hosts: 2) {
            async let first = Self.probe(bed, host: 1, port: 31895, topic: topic, seconds: 6, extra: ["--ipv4-only"])
            async let second = Self.probe(bed, host: 2, port: 31895, topic: topic, seconds: 6, extra: ["--ipv4-only"])
            try await Task.sleep(for: .seconds(4))
            for command in [["ip", "addr", "del", "10.77.0.1/24", "dev", "eth0"], ["ip", "addr", "add", "10.77.0.21/24", "dev", "eth0"],
                            ["ip", "route", "replace", "224.0.0.0/4", "dev", "eth0"]] {
                try Netns.tool(["exec", bed, "1"] + command)
            }
            return (try await first, try await second)
        }
        let lines = "\(first.lines) / \(second.lines)"
        #expect(Self.seen(second, first.peer, at: "10.77.0.1:42001") != nil, "\(lines)")
        let moved = try #require(Self.seen(second, first.peer, at: "10.77.0.21:42001"), "host 1 not seen at its new address: \(lines)")
        #expect(moved < 6000, "seen at the new address \(moved) ms in; it came ~4000 ms in")
        #expect(Self.counters(first).contains(" socketsOpenedLate=1 ") || Self.counters(first).contains(" interfacesTakenUp=1 "),
                "moved by the look at the LAN default, not by a failed send: \(lines)")
        #expect(first.lines.last { $0.hasPrefix("interfaces ") } == "interfaces eth0", "\(lines)")
        #expect(Self.counters(first).contains(" sendErrors=0 "), "\(lines)")
    }
}
