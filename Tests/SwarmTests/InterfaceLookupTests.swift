import Foundation
import Testing
@testable import Swarm
@testable import SwarmNIO

#if canImport(Glibc)
import Glibc
#endif

/// The one interface lookup (`NetworkInterface`, `InterfaceSpec.resolve`) that LAN discovery
/// and the vault share: on this host's `lo`, and on made-up interface lists for what a host
/// may not have (a second address, an interface down or without addresses).
@Suite("The interface lookup")
struct InterfaceLookupTests {
    static let eth = NetworkInterface(name: "eth7", index: 7, isUp: true, isLoopback: false, isMulticast: true,
                                      ipv4Addresses: [.v4(10, 1, 2, 3), .v4(10, 9, 9, 9)],
                                      ipv6LinkLocal: Endpoint("fe80::7", defaultPort: 0)!.address)

    static func detail(_ body: () throws -> Any) -> String? {
        do { _ = try body(); return nil } catch { return (error as? SwarmNIOError)?.detail ?? "\(error)" }
    }

    @Test func loopbackIsListedAndResolvesByNameAndByAddress() throws {
        let all = NetworkInterface.all()
        let lo = try #require(all.first { $0.name == "lo" }, "\(all)")
        #expect(lo.isLoopback && lo.isUp && lo.index == if_nametoindex("lo"))
        #expect(lo.ipv4Addresses.contains(.v4(127, 0, 0, 1)))
        #expect(!NetworkInterface.lanDefault(among: all).contains { $0.isLoopback }, "the LAN default never includes loopback")
        for text in ["lo", "loopback", "127.0.0.1"] { #expect(InterfaceSpec(parsing: text) == .loopback, "\(text)") }
        let byName = try InterfaceSpec.named("lo").resolve()
        #expect(byName.isLoopback && byName.ipv4 == .v4(127, 0, 0, 1) && byName.index == lo.index)
        #expect(!byName.ipv6Capable && byName.ipv6LinkLocal == nil, "IPv6 multicast does not deliver on lo")
        let byAddress = try InterfaceSpec.loopback.resolve()
        #expect(byAddress.name == "lo" && byAddress.ipv4 == .v4(127, 0, 0, 1) && !byAddress.ipv6Capable)
        // What a socket waiting for its address costs each second: one lookup.
        let start = ContinuousClock.now
        for _ in 0..<200 { _ = try InterfaceSpec.named("lo").resolve() }
        print("interface lookup: \((ContinuousClock.now - start) / 200) per call (\(all.count) interfaces)")
    }

    @Test func aNameNoInterfaceHasIsOneLineNamingIt() {
        #expect(InterfaceSpec(parsing: "no-such-if0") == .named("no-such-if0"))
        #expect(Self.detail { try InterfaceSpec(parsing: "no-such-if0").resolve() } == "no interface no-such-if0 exists here (see: ip link)")
        #expect(Self.detail { try InterfaceSpec.named("eth8").resolve(among: [Self.eth]) } == "no interface eth8 exists here (see: ip link)")
    }

    @Test func anAddressResolvesToTheInterfaceThatHoldsIt() throws {
        let spec = InterfaceSpec(parsing: "10.9.9.9")
        #expect(spec == .address(.v4(10, 9, 9, 9)) && spec.isAddress)
        let second = try spec.resolve(among: [Self.eth])
        #expect(second.name == "eth7" && second.index == 7 && second.ipv4 == .v4(10, 9, 9, 9))
        #expect(!second.ipv6Capable && second.ipv6LinkLocal == nil, "an interface given by its IPv4 address is IPv4 only")
        #expect(Self.detail { try InterfaceSpec(parsing: "192.0.2.77").resolve(among: [Self.eth]) }
                == "no interface holds 192.0.2.77 here (see: ip -4 addr)")
        #expect(Self.detail { try InterfaceSpec(parsing: "fe80::7").resolve(among: [Self.eth]) }
                == "an interface is named, or given by its IPv4 address; [fe80::7] is not one")
    }

    @Test func aNamedInterfaceResolvesWithWhatItHasNow() throws {
        let named = try InterfaceSpec.named("eth7").resolve(among: [Self.eth])
        #expect(named.ipv4 == .v4(10, 1, 2, 3) && named.ipv6Capable && named.ipv6LinkLocal == Self.eth.ipv6LinkLocal)
        // Down: its IPv4 address is still listed, but nothing is usable until it is up.
        var down = Self.eth
        down.isUp = false
        let resolvedDown = try InterfaceSpec.named("eth7").resolve(among: [down])
        #expect(resolvedDown.ipv4 == nil && resolvedDown.ipv6LinkLocal == nil && resolvedDown.ipv6Capable)
        #expect(NetworkInterface.lanDefault(among: [down]).isEmpty)
        // Up without addresses (a link before its DHCP lease): it resolves, with none.
        let bare = NetworkInterface(name: "eth7", index: 7, isUp: true, isLoopback: false, isMulticast: true)
        let resolvedBare = try InterfaceSpec.named("eth7").resolve(among: [bare])
        #expect(resolvedBare.ipv4 == nil && resolvedBare.ipv6LinkLocal == nil && resolvedBare.index == 7)
        // Not multicast-capable (a tunnel): IPv4 only.
        var tunnel = Self.eth
        tunnel.isMulticast = false
        let resolvedTunnel = try InterfaceSpec.named("eth7").resolve(among: [tunnel])
        #expect(resolvedTunnel.ipv4 != nil && !resolvedTunnel.ipv6Capable && resolvedTunnel.ipv6LinkLocal == nil)
        #expect(NetworkInterface.lanDefault(among: [tunnel, bare, Self.eth]).map(\.name) == ["eth7"])
    }

    /// What the look every second reopens (PROTOCOL.md §6.1): a socket whose own address or
    /// interface index changed or went — IPv4 by the interface's first IPv4 address, IPv6 by
    /// its usable link-local address — and nothing for a change of the other family's.
    @Test func aSocketIsStaleOnlyWhenItsOwnAddressOrIndexChanged() throws {
        func eth7(_ change: (inout NetworkInterface) -> Void = { _ in }) throws -> InterfaceSpec.Resolved {
            var eth = Self.eth
            change(&eth)
            return try InterfaceSpec.named("eth7").resolve(among: [eth])
        }
        let was = try eth7()
        let v4 = LANDiscovery.SocketPlan.multicast4(was, group: DiscoveryGroup.ipv4)
        let v6 = LANDiscovery.SocketPlan.multicast6(was, group: Endpoint(address: DiscoveryGroup.ipv6.address, port: DiscoveryGroup.port, scopeID: 7))
        func stale(_ now: InterfaceSpec.Resolved) -> (ipv4: Bool, ipv6: Bool) { (v4.isStale(for: v4.on(now)), v6.isStale(for: v6.on(now))) }

        #expect(stale(was) == (false, false), "unchanged: no churn")
        #expect(stale(try eth7 { $0.ipv4Addresses = [.v4(10, 1, 2, 4)] }) == (true, false), "a new IPv4 address (DHCP)")
        #expect(stale(try eth7 { $0.ipv4Addresses = [] }) == (true, false), "its IPv4 address gone")
        #expect(stale(try eth7 { $0.ipv4Addresses.append(.v4(10, 1, 2, 9)) }) == (false, false), "a second IPv4 address")
        #expect(stale(try eth7 { $0.ipv6LinkLocal = nil }) == (false, true), "its link-local address gone")
        #expect(stale(try eth7 { $0.ipv6LinkLocal = Endpoint("fe80::8", defaultPort: 0)!.address }) == (false, true), "a new link-local address")
        #expect(stale(try eth7 { $0.isUp = false }) == (true, true), "down")
        let back = try eth7 { $0.index = 9 }
        #expect(stale(back) == (true, true), "removed and back: a new index")
        if case let .multicast6(_, group) = v6.on(back) { #expect(group.scopeID == 9, "the IPv6 group is scoped to the new index") }
        // Gone (a named interface that cannot be found): both wait, with nothing to open on.
        #expect(v4.isStale(for: v4.lost()) && v6.isStale(for: v6.lost()) && !v4.lost().isReady && !v6.lost().isReady)

        // IPv6 may come later to an interface given by name (not to loopback, nor to one given
        // by its IPv4 address), whatever it has now.
        let notMulticast = try eth7 { $0.isMulticast = false }
        let loopback = try InterfaceSpec.loopback.resolve(among: [])
        let byAddress = try InterfaceSpec.address(.v4(10, 1, 2, 3)).resolve(among: [Self.eth])
        #expect(was.mayRunIPv6 && notMulticast.mayRunIPv6 && !notMulticast.ipv6Capable)
        #expect(!loopback.mayRunIPv6 && !byAddress.mayRunIPv6)
    }
}
