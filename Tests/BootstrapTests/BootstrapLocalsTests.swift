@testable import Bootstrap
import BookswarmTestSupport
import Foundation
import Swarm
import Testing

/// The addresses a peer offers a bootstrap node for peers behind the same NAT (its *locals*,
/// PROTOCOL.md §11.3, §11.5) follow its interfaces as they come and go, in the namespace
/// test bed: host 1 runs a node that records every datagram (`--capture`), host 2 a peer; a
/// test reads the registrations the node received and the locals in each.
@Suite("Offered local addresses follow the interfaces", .serialized,
       .enabled(if: Netns.available, "\(Netns.unavailableReason ?? "")"))
struct BootstrapLocalsTests {
    static let nodePort = 7100

    /// Starts the node on host 1 of `bed`, recording into `capture`.
    static func startNode(_ bed: String, capture: String) async throws -> ChildProcess {
        guard let binary = ChildProcess.binary("bookswarm-bootstrap") else {
            throw Netns.Failure(description: "bookswarm-bootstrap is not built: run `swift build`")
        }
        let node = try ChildProcess(Netns.inHost(bed, 1, [binary, "--port", "\(nodePort)", "--bind", Netns.address(host: 1), "--capture", capture]))
        _ = await node.waitFor(.seconds(5)) { $0.event == "ready" }
        return node
    }

    /// The locals of every registration the node received so far, in order.
    static func registeredLocals(_ capture: String) -> [[Endpoint]] {
        guard let data = FileManager.default.contents(atPath: capture) else { return [] }
        let bytes = [UInt8](data)
        var out: [[Endpoint]] = []
        var i = 0
        while i + 3 <= bytes.count {
            let incoming = bytes[i] == 0
            let length = Int(bytes[i + 1]) | Int(bytes[i + 2]) << 8
            guard i + 3 + length <= bytes.count else { break }
            let payload = Array(bytes[(i + 3)..<(i + 3 + length)])
            i += 3 + length
            guard incoming, case let .register(register)? = BootstrapMessage(decoding: payload),
                  register.signature.contains(where: { $0 != 0 }) else { continue }
            out.append(register.locals)
        }
        return out
    }

    /// Polls the capture until the last registration's locals, as a set, are `expected`.
    static func eventuallyRegistered(_ capture: String, _ expected: Set<Endpoint>, within timeout: Duration) async -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if let last = registeredLocals(capture).last, Set(last) == expected { return ContinuousClock.now - start }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// A second interface in host `host`, `eth1` with the address 192.168.77.K: one end of a
    /// veth pair whose other end (`eth1p`, no address) stays in the host, so nothing it
    /// sends leaves the host.
    static func addSecondInterface(_ bed: String, host: Int) throws {
        for command in [["ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"], ["ip", "link", "set", "eth1p", "up"],
                        ["ip", "addr", "add", "192.168.77.\(host)/24", "dev", "eth1"], ["ip", "link", "set", "eth1", "up"]] {
            try Netns.tool(["exec", bed, "\(host)"] + command)
        }
    }

    /// `bookswarm daemon` with no `--interface` (the LAN default, followed), started while its
    /// host has no address at all: it starts, waiting; once eth0 gets its address the node
    /// hears from it, and the registration offers that address; a second interface that comes
    /// is offered at once beside it (not at the next refresh, 20 s later), and dropped when
    /// it goes.
    @Test(.timeLimit(.minutes(2))) func aDaemonOffersTheAddressesItsInterfacesHaveNow() async throws {
        guard let bookswarm = ChildProcess.binary("bookswarm") else {
            throw Netns.Failure(description: "bookswarm is not built: run `swift build`")
        }
        let bed = Netns.bedName("bslocals")
        let capture = "/tmp/bootstrap-locals-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let vault = NSTemporaryDirectory() + "bookswarm-locals-\(UUID().uuidString.prefix(8))"
        defer {
            try? FileManager.default.removeItem(atPath: capture)
            try? FileManager.default.removeItem(atPath: vault)
        }
        try await Netns.withBed(bed, hosts: 2) {
            try Netns.tool(["exec", bed, "2", "ip", "addr", "flush", "dev", "eth0"])
            let node = try await Self.startNode(bed, capture: capture)
            defer { node.kill() }
            let daemon = try ChildProcess(Netns.inHost(bed, 2, [
                bookswarm, "daemon", "--json", "--dir", vault, "--discovery-port", "\(31_900 + Int(getpid() % 90))",
                "--bootstrap", "\(Netns.address(host: 1)):\(Self.nodePort)",
            ]))
            defer { daemon.kill() }
            let ready = try #require(await daemon.waitFor(.seconds(15)) { $0.event == "ready" }, "\(daemon.transcript)")
            #expect(ready.raw.contains(#""interfaces":[{"families":[],"name":"*","waiting":["IPv4"]}]"#), "\(ready.raw)")
            let port = try #require(ready.fields["endpoint"].flatMap { Endpoint($0) }?.port, "\(ready.raw)")
            try await Task.sleep(for: .seconds(1))
            #expect(Self.registeredLocals(capture).isEmpty, "no address, no route to the node")

            for command in [["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"], ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"]] {
                try Netns.tool(["exec", bed, "2"] + command)
            }
            let eth0 = Endpoint.v4(10, 77, 0, 2, port: port)
            let first = await Self.eventuallyRegistered(capture, [eth0], within: .seconds(10))
            #expect(first != nil, "\(Self.registeredLocals(capture))")

            try Self.addSecondInterface(bed, host: 2)
            let eth1 = Endpoint.v4(192, 168, 77, 2, port: port)
            let added = await Self.eventuallyRegistered(capture, [eth0, eth1], within: .seconds(10))
            #expect(added != nil, "\(Self.registeredLocals(capture))")

            try Netns.tool(["exec", bed, "2", "ip", "link", "del", "eth1"])
            let removed = await Self.eventuallyRegistered(capture, [eth0], within: .seconds(10))
            #expect(removed != nil, "\(Self.registeredLocals(capture))")
            print("daemon: eth0's address offered \(first.map { "\($0)" } ?? "never") after it came; a second interface "
                  + "after \(added.map { "\($0)" } ?? "never"), dropped after \(removed.map { "\($0)" } ?? "never")")
            await daemon.stop()
        }
    }

    /// The library's client over a socket bound to 0.0.0.0 (`bootstrap-peer --bind 0.0.0.0`)
    /// offers the host's interface addresses as they are now, looked at every 2 s.
    @Test(.timeLimit(.minutes(2))) func aClientOnAWildcardSocketOffersTheHostsAddressesNow() async throws {
        guard let peer = ChildProcess.binary("bootstrap-peer") else {
            throw Netns.Failure(description: "bootstrap-peer is not built: run `swift build`")
        }
        let bed = Netns.bedName("bswild")
        let capture = "/tmp/bootstrap-wild-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: capture) }
        try await Netns.withBed(bed, hosts: 2) {
            let node = try await Self.startNode(bed, capture: capture)
            defer { node.kill() }
            let client = try ChildProcess(Netns.inHost(bed, 2, [
                peer, "--bind", "0.0.0.0", "--port", "42000", "--seed", "7", "--topic", String(repeating: "ab", count: 32),
                "--bootstrap", "\(Netns.address(host: 1)):\(Self.nodePort)", "--seconds", "20",
            ]))
            defer { client.kill() }
            let eth0 = Endpoint.v4(10, 77, 0, 2, port: 42000)
            #expect(await Self.eventuallyRegistered(capture, [eth0], within: .seconds(10)) != nil, "\(Self.registeredLocals(capture))")
            try Self.addSecondInterface(bed, host: 2)
            let eth1 = Endpoint.v4(192, 168, 77, 2, port: 42000)
            #expect(await Self.eventuallyRegistered(capture, [eth0, eth1], within: .seconds(10)) != nil, "\(Self.registeredLocals(capture))")
            try Netns.tool(["exec", bed, "2", "ip", "link", "set", "eth1", "down"])
            #expect(await Self.eventuallyRegistered(capture, [eth0], within: .seconds(10)) != nil,
                    "an interface that is down is not offered: \(Self.registeredLocals(capture))")
            await client.stop()
        }
    }
}
