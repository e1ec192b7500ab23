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

    /// A probe on host `host`'s LAN default that the test watches as it runs (`LiveProbe`),
    /// announcements a minute apart, stopped by the test (30 s at most).
    static func live(_ bed: String, host: Int, port: Int, topic: String) throws -> LiveProbe {
        guard let probe = Probe.binary else {
            throw Netns.Failure(description: "discovery-probe not built: run `swift build` (Tools/test builds it)")
        }
        return try LiveProbe(Netns.inHost(bed, host, [
            probe.path, "--lan-default", "--port", "\(port)", "--topic", topic, "--seconds", "30",
            "--announce-interval", "60000", "--session-port", "\(42_000 + host)",
        ]))
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
    /// discovery runs on no interface and waits; once it runs, a veth pair is created and
    /// addressed. Host 1 takes its eth0 up (IPv4 and IPv6), and the two hosts find each
    /// other over it, both ways, on both families, within a second or so.
    @Test func anInterfaceThatAppearsAfterTheStartIsTakenUp() async throws {
        let bed = Netns.bedName("ldplug")
        let topic = SecureRandom.bytes(32).hexString
        let (first, second, linkLocal) = try await Netns.withBed(bed, hosts: 2) {
            try Netns.unplug(bed, host: 1)
            let first = try Self.live(bed, host: 1, port: 31893, topic: topic)
            let second = try Self.live(bed, host: 2, port: 31893, topic: topic)
            defer { first.stop(); second.stop() }
            // Both probes run (host 1 on no interface) before eth0 comes: on a loaded machine
            // starting a probe takes seconds.
            for probe in [first, second] { await probe.waitFor(within: .seconds(15)) { $0.hasPrefix("interfaces ") } }
            try Netns.plug(bed, host: 1)
            let linkLocal = try (1...2).map { try Netns.linkLocal(bed, host: $0) }
            let peer = { (probe: LiveProbe) in probe.lines.first { $0.hasPrefix("peer ") }.map { String($0.dropFirst(5)) } ?? "?" }
            for (watcher, seen, at) in [(second, first, ["10.77.0.1:42001", "[\(linkLocal[0])%"]),
                                        (first, second, ["10.77.0.2:42002", "[\(linkLocal[1])%"])] {
                await watcher.waitUntil(within: .seconds(10)) {
                    at.allSatisfy { prefix in watcher.lines.contains { $0.hasPrefix("sighting \(peer(seen)) \(prefix)") } }
                }
            }
            // The probe reports the interfaces it runs on as it polls them: that line too.
            await first.waitFor(within: .seconds(5)) { $0.hasPrefix("interfaces-now ") && $0.contains(" eth0") }
            return (await first.finish(), await second.finish(), linkLocal)
        }
        let lines = "\(first.lines) / \(second.lines)"
        #expect(first.lines.first { $0.hasPrefix("interfaces ") } == "interfaces any LAN interface (waiting for IPv4)", "\(lines)")
        #expect(first.lines.last { $0.hasPrefix("interfaces ") } == "interfaces eth0 (IPv4+IPv6)", "\(lines)")
        #expect(second.lines.first { $0.hasPrefix("interfaces ") } == "interfaces eth0 (IPv4+IPv6)", "\(lines)")
        let takenUp = try #require(Self.changes(first).first { $0.shown.hasPrefix("eth0") }, "\(lines)")
        #expect(Self.counters(first).contains(" interfacesTakenUp=1 interfacesDropped=0 "), "\(lines)")
        // The kernel's word of the new link and addresses made discovery look at once.
        #expect(!Self.counters(first).contains(" looksOnChange=0"), "\(lines)")
        #expect(Self.counters(first).contains(" sendErrors=0 "), "waiting for an interface is no send error: \(lines)")
        let sightings = [
            ("host 2 saw host 1 over IPv4", Self.seen(second, first.peer, at: "10.77.0.1:42001")),
            ("host 2 saw host 1 over IPv6", Self.seen(second, first.peer, at: "[\(linkLocal[0])%")),
            ("host 1 saw host 2 over IPv4", Self.seen(first, second.peer, at: "10.77.0.2:42002")),
            ("host 1 saw host 2 over IPv6", Self.seen(first, second.peer, at: "[\(linkLocal[1])%")),
        ]
        for (what, ms) in sightings {
            #expect(ms != nil, "\(what): \(lines)")
            // Each within a look and a lookup round of eth0's coming.
            if let ms { #expect(ms < takenUp.ms + 1500, "\(what) at \(ms) ms, eth0 taken up at \(takenUp.ms) ms") }
        }
        print("eth0 taken up at \(takenUp.ms) ms; "
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

    /// Review 10: an interface of the LAN default taken up with IPv4 alone got no IPv6
    /// socket when its link-local address came later; only leaving the LAN default and coming
    /// back gave it one. Here host 1's eth0 has IPv6 switched off when the probes start, and
    /// switched on once their first lookup round is over, with duplicate address detection
    /// on (two probes), so its new link-local address is tentative for about two seconds
    /// before it can be used. The look every second follows it: the IPv6 socket opens within
    /// about a second of the address becoming usable (not while it is tentative) and greets,
    /// and the hosts find each other over IPv6, both ways. When the address goes, the socket
    /// closes quietly and waits; with IPv6 switched off again, nothing waits for it.
    @Test func ipv6ThatComesAfterTheTakeUpIsFollowed() async throws {
        let bed = Netns.bedName("ld6late")
        let topic = SecureRandom.bytes(32).hexString
        func ip6(_ command: [String]) throws -> String { try Netns.tool(["exec", bed, "1", "ip", "-6", "-o"] + command) }
        let (first, second, linkLocal, delay, bothWays) = try await Netns.withBed(bed, hosts: 2) {
            try Netns.tool(["exec", bed, "1", "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1",
                            "net.ipv6.conf.eth0.accept_dad=1", "net.ipv6.conf.eth0.dad_transmits=2"])
            let first = try Self.live(bed, host: 1, port: 31897, topic: topic)
            let second = try Self.live(bed, host: 2, port: 31897, topic: topic)
            defer { first.stop(); second.stop() }
            let peer2 = { second.lines.first { $0.hasPrefix("peer ") }.map { String($0.dropFirst(5)) } ?? "?" }
            let peer1 = { first.lines.first { $0.hasPrefix("peer ") }.map { String($0.dropFirst(5)) } ?? "?" }
            // Host 1 runs IPv4 alone, and the hosts find each other over it.
            for probe in [first, second] { await probe.waitFor(within: .seconds(8)) { $0 == "flushed" } }
            await second.waitFor(within: .seconds(3)) { $0.hasPrefix("sighting \(peer1()) 10.77.0.1:42001 ") }
            // After the first lookup round's last query (3 s after the join), so what finds
            // host 1 over IPv6 is the greeting of its new socket.
            for probe in [first, second] {
                if let joined = probe.when({ $0.hasPrefix("interfaces ") }) { try await Task.sleep(until: joined + .milliseconds(3300)) }
            }
            try Netns.tool(["exec", bed, "1", "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0"])
            var usable: ContinuousClock.Instant?
            let deadline = ContinuousClock.now + .seconds(6)
            while usable == nil, ContinuousClock.now < deadline {
                let shown = try ip6(["addr", "show", "dev", "eth0", "scope", "link"])
                if shown.contains("fe80:"), !shown.contains("tentative") { usable = .now } else { try await Task.sleep(for: .milliseconds(50)) }
            }
            let linkLocal = try Netns.linkLocal(bed, host: 1)
            let linkLocal2 = try Netns.linkLocal(bed, host: 2)
            let running = await first.waitFor(within: .seconds(5)) { $0.hasPrefix("interfaces-now ") && $0.hasSuffix(" eth0 (IPv4+IPv6)") }
            let seen = await second.waitFor(within: .seconds(3)) { $0.hasPrefix("sighting \(peer1()) [\(linkLocal)%") }
            let saw = await first.waitFor(within: .seconds(3)) { $0.hasPrefix("sighting \(peer2()) [\(linkLocal2)%") }
            // The address goes: the socket closes and waits. IPv6 switched off: nothing waits.
            let before = first.count
            _ = try ip6(["addr", "del", "\(linkLocal)/64", "dev", "eth0"])
            await first.waitFor(after: before, within: .seconds(3)) { $0.hasPrefix("interfaces-now ") && $0.hasSuffix(" eth0 (IPv4; waiting for IPv6)") }
            try Netns.tool(["exec", bed, "1", "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"])
            await first.waitUntil(within: .seconds(3)) { Self.changes(Probe.Output(first.lines)).last?.shown == "eth0" }
            // From the address seen usable to the IPv6 socket seen open (each polled: ±0.1 s).
            let opened = first.when { $0.hasPrefix("interfaces-now ") && $0.hasSuffix(" eth0 (IPv4+IPv6)") }
            let delay = usable.flatMap { usable in opened.map { $0 - usable } }
            return (await first.finish(), await second.finish(), linkLocal, delay, running && seen && saw)
        }
        let lines = "\(first.lines) / \(second.lines)"
        #expect(first.lines.first { $0.hasPrefix("interfaces ") } == "interfaces eth0", "IPv6 switched off: IPv4 alone. \(lines)")
        #expect(bothWays, "the hosts did not find each other over IPv6: \(lines)")
        let shown = Self.changes(first).map(\.shown)
        #expect(shown == ["eth0 (IPv4; waiting for IPv6)", "eth0 (IPv4+IPv6)", "eth0 (IPv4; waiting for IPv6)", "eth0"],
                "waiting while the address is tentative, running, waiting once it went, IPv4 alone once IPv6 is off: \(lines)")
        #expect(Self.counters(first).contains(" sendErrors=0 socketRestarts=0 socketReopenFailures=0 socketsOpenedLate=1 interfacesTakenUp=0 interfacesDropped=0"),
                "one IPv6 socket opened late, nothing failed, eth0 never left the LAN default: \(lines)")
        let opened = try #require(delay, "the link-local address never became usable, or the socket never opened: \(lines)")
        #expect(opened > .milliseconds(-500), "the IPv6 socket opened while the address was tentative (\(opened) before it was usable)")
        #expect(opened < .seconds(2), "the IPv6 socket opened \(opened) after the address became usable: \(lines)")
        print("IPv6 switched on; its link-local address usable after DAD; the IPv6 socket open \(opened) later")
        #expect(Self.seen(second, first.peer, at: "[\(linkLocal)%") != nil, "\(lines)")
    }
}
