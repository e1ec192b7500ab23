import BookswarmTestSupport
import Foundation
import Testing

/// The demo scenario again with three hosts on one LAN (the namespace test bed, Tools/netns):
/// each daemon runs in its own host namespace with discovery on its eth0; then a partition
/// between two hosts (nftables drop), messages sent during it, and the heal.
@Suite("bookswarm on a three-host LAN", .serialized,
       .enabled(if: Netns.available && CLI.available, "\(Netns.unavailableReason ?? "bookswarm is not built: run `swift build`")"))
struct CLINamespaceTests {
    static func member(_ name: String, host: Int, bed: String, scratch: Scratch, port: Int, interface: String? = "eth0",
                       daemonOptions: [String] = []) -> Member {
        Member(name, scratch: scratch, interface: interface, discoveryPort: port,
               prefix: ["/usr/bin/env", "ip", "netns", "exec", "\(bed)-h\(host)"], daemonOptions: daemonOptions)
    }

    /// A daemon's host gets a new IPv4 address while it runs (a DHCP lease): its sockets do
    /// not hang on the old one, and messages flow again at the new address. IPv4 only, so
    /// no IPv6 path hides the change.
    @Test("a daemon whose IPv4 address changes is reached at the new one", .timeLimit(.minutes(1)))
    func addressChange() async throws {
        let bed = Netns.bedName("cliaddr")
        try await Netns.withBed(bed, hosts: 2) {
            let scratch = Scratch()
            let port = testDiscoveryPort()
            let bob = Self.member("bob", host: 1, bed: bed, scratch: scratch, port: port, daemonOptions: ["--ipv4-only"])
            let ana = Self.member("ana", host: 2, bed: bed, scratch: scratch, port: port, daemonOptions: ["--ipv4-only"])
            for m in [bob, ana] { try await m.start() }
            defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
            let task = try await bob.newTask("moving")
            try await bob.ok(["send", task.id, "first"])
            try await ana.ok(["join", task.invite])
            #expect(try await eventually { try await ana.texts(task.id) == ["first"] })
            for command in [["ip", "addr", "del", "10.77.0.1/24", "dev", "eth0"], ["ip", "addr", "add", "10.77.0.21/24", "dev", "eth0"],
                            ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"]] {
                try Netns.tool(["exec", bed, "1"] + command)
            }
            try await bob.ok(["send", task.id, "from the new address"])
            try await ana.ok(["send", task.id, "to the new address"])
            #expect(try await eventually(.seconds(40)) { try await ana.texts(task.id).contains("from the new address") })
            #expect(try await eventually(.seconds(20)) { try await bob.texts(task.id).contains("to the new address") })
            let inspect = try await ana.ok(["inspect"])
            #expect(inspect.contains("direct 10.77.0.21:"), "\(inspect)")
            for m in [bob, ana] { await m.stop() }
        }
    }

    /// A daemon started before its interface has any address (at boot, before the link is
    /// configured) starts all the same and says eth0 waits; a DHCP-like IPv4 address comes,
    /// the daemon is found and chats over it, then a link-local address comes and IPv6 runs
    /// too. `inspect` shows each step.
    @Test("a daemon started before its interface has an address", .timeLimit(.minutes(1)))
    func addressArrivesLate() async throws {
        let bed = Netns.bedName("clilate")
        try await Netns.withBed(bed, hosts: 2) {
            try Netns.tool(["exec", bed, "1", "ip", "addr", "flush", "dev", "eth0"])
            let scratch = Scratch()
            let port = testDiscoveryPort()
            let bob = Self.member("bob", host: 1, bed: bed, scratch: scratch, port: port)
            let ana = Self.member("ana", host: 2, bed: bed, scratch: scratch, port: port)
            for m in [bob, ana] { try await m.start() }
            defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
            #expect(bob.daemon?.log.contains(#""interfaces":[{"families":[],"name":"eth0","waiting":["IPv4","IPv6"]}]"#) == true,
                    "\(bob.daemon?.log ?? "")")
            #expect(try await bob.ok(["inspect"]).contains("discovery on eth0 (waiting for IPv4+IPv6)"))
            let task = try await bob.newTask("late")
            try await bob.ok(["send", task.id, "first"])
            try await Task.sleep(for: .seconds(2))
            for command in [["ip", "addr", "add", "10.77.0.1/24", "dev", "eth0"], ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"]] {
                try Netns.tool(["exec", bed, "1"] + command)
            }
            let start = ContinuousClock.now
            try await ana.ok(["join", task.invite])
            #expect(try await eventually { try await ana.texts(task.id) == ["first"] })
            print("IPv4 address added → first message at the joiner: \(ContinuousClock.now - start)")
            #expect(try await bob.ok(["inspect"]).contains("discovery on eth0 (IPv4; waiting for IPv6)"))
            try Netns.tool(["exec", bed, "1", "ip", "-6", "addr", "add", "fe80::1:1/64", "dev", "eth0"])
            #expect(try await eventually(.seconds(5)) { try await bob.ok(["inspect"]).contains("discovery on eth0 (IPv4+IPv6)") })
            try await ana.ok(["send", task.id, "reply"])
            #expect(try await eventually { try await bob.texts(task.id) == ["first", "reply"] })
            let report = try JSONSerialization.jsonObject(with: Data(try await bob.ok(["inspect", "--json"]).utf8)) as? [String: Any]
            let interfaces = report?["interfaces"] as? [[String: Any]]
            #expect(interfaces?.count == 1 && interfaces?[0]["families"] as? [String] == ["IPv4", "IPv6"] && interfaces?[0]["waiting"] == nil,
                    "\(report ?? [:])")
            #expect((report?["drops"] as? [String: Any])?["discovery.socketsOpenedLate"] as? Int == 2, "\(report ?? [:])")
            for m in [bob, ana] { await m.stop() }
        }
    }

    /// A laptop's daemon started before its network is up: no `--interface` (the LAN
    /// default) on a host with only `lo`. It starts and says it waits; then an eth0 arrives
    /// (a veth pair, addressed), a daemon on the other host finds it, and they chat. The eth0
    /// goes: it is dropped and `inspect` says discovery waits again; a message sent meanwhile
    /// arrives once an eth0 is back, at another address (and a new link-local one).
    @Test("a daemon on the LAN default takes interfaces up as they come and drops them as they go", .timeLimit(.minutes(1)))
    func interfacesComeAndGo() async throws {
        let bed = Netns.bedName("clifollow")
        try await Netns.withBed(bed, hosts: 2) {
            try Netns.unplug(bed, host: 1)
            let scratch = Scratch()
            let port = testDiscoveryPort()
            let bob = Self.member("bob", host: 1, bed: bed, scratch: scratch, port: port, interface: nil)
            let ana = Self.member("ana", host: 2, bed: bed, scratch: scratch, port: port, interface: nil)
            for m in [bob, ana] { try await m.start() }
            defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }
            #expect(bob.daemon?.log.contains(#""interfaces":[{"families":[],"name":"*","waiting":["IPv4"]}]"#) == true,
                    "\(bob.daemon?.log ?? "")")
            #expect(ana.daemon?.log.contains(#""interfaces":[{"families":["IPv4","IPv6"],"name":"eth0"}]"#) == true,
                    "\(ana.daemon?.log ?? "")")
            #expect(try await bob.ok(["inspect"]).contains("discovery on any LAN interface (waiting for IPv4)"))
            let task = try await bob.newTask("no network yet")
            try await bob.ok(["send", task.id, "first"])

            try Netns.plug(bed, host: 1)
            let plugged = ContinuousClock.now
            try await ana.ok(["join", task.invite])
            #expect(try await eventually { try await ana.texts(task.id) == ["first"] })
            print("eth0 plugged → first message at the joiner: \(ContinuousClock.now - plugged)")
            #expect(try await eventually(.seconds(5)) { try await bob.ok(["inspect"]).contains("discovery on eth0 (IPv4+IPv6)") })

            try Netns.unplug(bed, host: 1)
            #expect(try await eventually(.seconds(5)) {
                try await bob.ok(["inspect"]).contains("discovery on any LAN interface (waiting for IPv4)")
            })
            try await bob.ok(["send", task.id, "while unplugged"])
            try await Task.sleep(for: .seconds(1))
            #expect(try await !ana.texts(task.id).contains("while unplugged"))
            try Netns.plug(bed, host: 1, address: "10.77.0.11")
            let back = ContinuousClock.now
            #expect(try await eventually(.seconds(30)) { try await ana.texts(task.id).contains("while unplugged") })
            print("eth0 back → message sent while unplugged at the reader: \(ContinuousClock.now - back)")
            try await ana.ok(["send", task.id, "reply"])
            #expect(try await eventually { try await bob.texts(task.id) == ["first", "while unplugged", "reply"] })
            // The message may come over the session before the once-a-second look takes eth0 up.
            var report: [String: Any]?
            let shown = try await eventually(.seconds(5)) {
                report = try JSONSerialization.jsonObject(with: Data(try await bob.ok(["inspect", "--json"]).utf8)) as? [String: Any]
                let interfaces = report?["interfaces"] as? [[String: Any]]
                return interfaces?.count == 1 && interfaces?[0]["name"] as? String == "eth0"
                    && interfaces?[0]["families"] as? [String] == ["IPv4", "IPv6"]
            }
            #expect(shown, "\(report ?? [:])")
            for m in [bob, ana] { await m.stop() }
        }
    }

    /// Cuts hosts `a` and `b` apart, on both address families (the daemons talk IPv4 and
    /// IPv6 link-local): each drops what arrives from the other, and refuses to send to it.
    /// The output rule makes the sender's own `sendmsg` fail with EPERM, as a local firewall
    /// or a vanished route would; the transport must survive that too.
    static func partition(_ bed: String, _ a: Int, _ b: Int) throws {
        for (host, other) in [(a, b), (b, a)] {
            let v6 = try Netns.linkLocal(bed, host: other)
            for rule in [["add", "table", "inet", "bswpart"],
                         ["add", "chain", "inet", "bswpart", "in", "{ type filter hook input priority 0 ; }"],
                         ["add", "rule", "inet", "bswpart", "in", "ip", "saddr", Netns.address(host: other), "drop"],
                         ["add", "rule", "inet", "bswpart", "in", "ip6", "saddr", v6, "drop"],
                         ["add", "chain", "inet", "bswpart", "out", "{ type filter hook output priority 0 ; }"],
                         ["add", "rule", "inet", "bswpart", "out", "ip", "daddr", Netns.address(host: other), "drop"],
                         ["add", "rule", "inet", "bswpart", "out", "ip6", "daddr", v6, "drop"]] {
                try nft(bed, host, rule)
            }
        }
    }

    static func heal(_ bed: String, _ a: Int, _ b: Int) throws {
        for host in [a, b] { try nft(bed, host, ["delete", "table", "inet", "bswpart"]) }
    }

    static func nft(_ bed: String, _ host: Int, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", "\(bed)-h\(host)", "nft"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<2500 where process.isRunning { usleep(2000) }
        guard process.terminationStatus == 0 else { throw Netns.Failure(description: "nft \(arguments) failed") }
    }

    @Test("invite, join, chat, kill -9 and restart, then a partition heals", .timeLimit(.minutes(2)))
    func lanScenario() async throws {
        let bed = Netns.bedName("cli3")
        try await Netns.withBed(bed, hosts: 3) {
            let scratch = Scratch()
            let port = testDiscoveryPort()
            let bob = Self.member("bob", host: 1, bed: bed, scratch: scratch, port: port)
            let ana = Self.member("ana", host: 2, bed: bed, scratch: scratch, port: port)
            let carol = Self.member("carol", host: 3, bed: bed, scratch: scratch, port: port)
            for m in [bob, ana, carol] { try await m.start() }
            defer { for m in [bob, ana, carol] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }

            let task = try await bob.newTask("LAN roof")
            try await bob.ok(["send", task.id, "first"])
            let joinStart = ContinuousClock.now
            try await ana.ok(["join", task.invite])
            #expect(try await eventually { try await ana.texts(task.id) == ["first"] })
            print("join → first message (namespace LAN, processes): \(ContinuousClock.now - joinStart)")
            try await carol.ok(["join", task.invite])
            try await ana.ok(["send", task.id, "from ana"])
            try await carol.ok(["send", task.id, "from carol"])
            let three = Set(["first", "from ana", "from carol"])
            for m in [bob, ana, carol] { #expect(try await eventually { Set(try await m.texts(task.id)) == three }, "\(m.name)") }

            await carol.stop(SIGKILL)
            try await bob.ok(["send", task.id, "while carol is down"])
            try await carol.start()
            #expect(try await eventually { try await carol.texts(task.id).contains("while carol is down") })

            // Partition Bob from Ana: Bob's message reaches Carol, not Ana; after the heal, Ana.
            try Self.partition(bed, 1, 2)
            try await bob.ok(["send", task.id, "during the partition"])
            #expect(try await eventually { try await carol.texts(task.id).contains("during the partition") })
            try await Task.sleep(for: .seconds(1))
            #expect(try await !ana.texts(task.id).contains("during the partition"))
            try Self.heal(bed, 1, 2)
            #expect(try await eventually(.seconds(30)) { try await ana.texts(task.id).contains("during the partition") })
            let orders = try await [bob.texts(task.id), ana.texts(task.id), carol.texts(task.id)]
            #expect(orders[0] == orders[1] && orders[1] == orders[2], "\(orders)")
            #expect(orders[0].count == 5)
            for m in [bob, ana, carol] { await m.stop() }
        }
    }

    enum Family: String, CaseIterable, CustomStringConvertible {
        /// No IPv4 on the LAN at all.
        case ipv6Only
        /// Both families, but IPv4 carries only discovery: sessions must use IPv6.
        case ipv4SessionsBlocked
        /// Both families, IPv6 dropped entirely: everything on IPv4.
        case ipv6Blocked
        var description: String { rawValue }
    }

    /// DESIGN decision 6 (IPv6 `ff02::` where available): daemons find each other and hold
    /// their sessions on whichever family works — on a LAN with no IPv4, and on a dual-stack
    /// LAN where one family is filtered (the dial alternates between the two addresses seen).
    @Test("invite, join and chat when only one address family works", .timeLimit(.minutes(1)), arguments: Family.allCases)
    func oneFamilyWorks(_ family: Family) async throws {
        let bed = Netns.bedName("cli\(family.rawValue.prefix(5))")
        try await Netns.withBed(bed, hosts: 2, ipv6Only: family == .ipv6Only) {
            let scratch = Scratch()
            let port = testDiscoveryPort()
            for host in 1...2 {
                for rule in Self.filter(family, discoveryPort: port) { try Self.nft(bed, host, rule) }
            }
            let bob = Self.member("bob", host: 1, bed: bed, scratch: scratch, port: port)
            let ana = Self.member("ana", host: 2, bed: bed, scratch: scratch, port: port)
            for m in [bob, ana] { try await m.start() }
            defer { for m in [bob, ana] { if let d = m.daemon { kill(d.pid, SIGKILL) } } }

            let task = try await bob.newTask("one family")
            try await bob.ok(["send", task.id, "first"])
            let start = ContinuousClock.now
            try await ana.ok(["join", task.invite])
            #expect(try await eventually { try await ana.texts(task.id) == ["first"] })
            print("\(family): join → first message \(ContinuousClock.now - start)")
            try await ana.ok(["send", task.id, "reply"])
            #expect(try await eventually { try await bob.texts(task.id) == ["first", "reply"] })
            // The session runs on the family that works.
            let inspect = try await ana.ok(["inspect"])
            let expected = family == .ipv6Blocked ? "direct \(Netns.address(host: 1)):" : "direct [\(try Netns.linkLocal(bed, host: 1))%"
            #expect(inspect.contains(expected), "\(inspect)")
            if family == .ipv6Only {
                // IPv6 runs; IPv4 is looked for (the LAN may get it later).
                #expect(bob.daemon?.log.contains(#""interfaces":[{"families":["IPv6"],"name":"eth0","waiting":["IPv4"]}]"#) == true,
                        "\(bob.daemon?.log ?? "")")
                // Told to keep to IPv4, a third vault there finds nobody and says why.
                let carol = Self.member("carol", host: 2, bed: bed, scratch: scratch, port: port)
                let idle = try await carol.run(["join", task.invite, "--ipv4-only", "--wait", "1"])
                #expect(idle.ok && idle.stdout.contains("discovery did not run on eth0 (waiting for IPv4): no address there yet"), "\(idle)")
            }
            for m in [bob, ana] { await m.stop() }
        }
    }

    /// nft commands that make `family` true on a host.
    static func filter(_ family: Family, discoveryPort: Int) -> [[String]] {
        let table: [[String]] = [["add", "table", "inet", "bswfam"],
                                 ["add", "chain", "inet", "bswfam", "in", "{ type filter hook input priority 0 ; }"]]
        switch family {
        case .ipv6Only: return []
        case .ipv4SessionsBlocked:
            // IPv4 multicast to the discovery port still arrives; every other IPv4 datagram
            // (sessions, answers to queries) is dropped.
            return table + [["add", "rule", "inet", "bswfam", "in", "meta", "nfproto", "ipv4", "udp", "dport", "!=", "\(discoveryPort)", "drop"]]
        case .ipv6Blocked:
            return table + [["add", "rule", "inet", "bswfam", "in", "meta", "nfproto", "ipv6", "drop"]]
        }
    }
}
