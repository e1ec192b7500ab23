import NIOCore
import Testing
@testable import Swarm
@testable import SwarmNIO

/// Endpoints as text (what the CLI takes and prints), as socket addresses, and the swarm's
/// rule for a peer seen on both address families.
@Suite struct EndpointTests {
    static let linkLocal: [UInt8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x20, 0x39, 0x48, 0xff, 0xfe, 0x9f, 0xc3, 0x41]

    @Test func parsesAndPrintsBothFamiliesWithZones() throws {
        #expect(Endpoint("10.77.0.3:24771") == .v4(10, 77, 0, 3, port: 24771))
        #expect(Endpoint("10.77.0.3", defaultPort: 5) == .v4(10, 77, 0, 3, port: 5))
        let scoped = try #require(Endpoint("[fe80::2039:48ff:fe9f:c341%2]:41903"))
        #expect(scoped == Endpoint(address: .v6(Self.linkLocal), port: 41903, scopeID: 2))
        #expect(scoped.description == "[fe80::2039:48ff:fe9f:c341%2]:41903")
        #expect(Endpoint("fe80::2039:48ff:fe9f:c341%2", defaultPort: 7)?.scopeID == 2)
        #expect(scoped.isLinkLocalUnicast && !scoped.isLinkLocalMulticast)
        #expect(DiscoveryGroup.ipv6.isLinkLocalMulticast && !DiscoveryGroup.ipv6.isLinkLocalUnicast)
        // The same address on another link is another endpoint.
        #expect(scoped != Endpoint(address: .v6(Self.linkLocal), port: 41903, scopeID: 3))
        for bad in ["[fe80::1%]:1", "[fe80::1%eth0]:1", "[fe80::1%0]:1", "10.0.0.1%2:1", "[fe80::1%2:1", "[::1]:x", "1.2.3:4"] {
            #expect(Endpoint(bad) == nil, "\(bad)")
        }
    }

    @Test func printsIPv6InTheRFC5952Form() {
        func text(_ words: [UInt16]) -> String {
            Endpoint.ipv6Text(words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] })
        }
        #expect(text([0, 0, 0, 0, 0, 0, 0, 0]) == "::")
        #expect(text([0, 0, 0, 0, 0, 0, 0, 1]) == "::1")
        #expect(text([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]) == "2001:db8::1")
        #expect(text([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1]) == "2001:db8:0:1::1")   // the longest run
        #expect(text([0x2001, 0, 0, 1, 0, 0, 1, 1]) == "2001::1:0:0:1:1")        // the first of equal runs
        #expect(text([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]) == "2001:db8:0:1:1:1:1:1") // one zero group stays
        #expect(text([0xff02, 0, 0, 0, 0, 0, 0x4253, 0x4c44]) == "ff02::4253:4c44")
        // Every printed form parses back to the same bytes.
        for words in [[UInt16](repeating: 0, count: 8), [1, 0, 0, 0, 0, 0, 0, 0], [0xfe80, 0, 0, 0, 0x2039, 0x48ff, 0xfe9f, 0xc341]] {
            let bytes = words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
            #expect(Endpoint.parseIPv6(Substring(Endpoint.ipv6Text(bytes))) == bytes)
        }
    }

    @Test func socketAddressesKeepTheScopeAndMapIPv4ForADualStackSocket() throws {
        let scoped = Endpoint(address: .v6(Self.linkLocal), port: 41903, scopeID: 2)
        #expect(Endpoint(scoped.socketAddress) == scoped)
        let v4 = Endpoint.v4(10, 77, 0, 3, port: 24771)
        let mapped = v4.socketAddressForIPv6Socket
        #expect(mapped.protocol == .inet6)
        #expect(mapped.ipAddress == "::ffff:10.77.0.3")
        // What a dual-stack socket reports for an IPv4 peer is the IPv4 endpoint again.
        #expect(Endpoint(mapped) == v4)
        #expect(scoped.socketAddressForIPv6Socket == scoped.socketAddress)
    }

    @Test func aPeerSeenOnBothFamiliesStaysOnTheFirstUntilItFails() {
        let v4 = Endpoint.v4(10, 77, 0, 2, port: 4000)
        let v6 = Endpoint(address: .v6(Self.linkLocal), port: 4000, scopeID: 2)
        var c = Swarm.Candidate()
        var moved = c.saw(v4)
        #expect(moved)                     // first sighting: dial there
        moved = c.saw(v6)
        #expect(!moved)                    // the other family is only remembered
        #expect(c.endpoint == v4 && c.alternative == v6)
        moved = c.saw(v4)
        #expect(!moved)                    // seen again where it is: nothing moved
        let elsewhere = Endpoint.v4(10, 77, 0, 9, port: 4000)
        moved = c.saw(elsewhere)
        #expect(moved)                     // moved within its family: dial the new address
        #expect(c.endpoint == elsewhere && c.alternative == v6)
        c.failOver()                       // an attempt failed: the next goes to IPv6
        #expect(c.endpoint == v6 && c.alternative == elsewhere)
        c.failOver()
        #expect(c.endpoint == elsewhere)
        // A third path (a bootstrap node's virtual address, a global IPv6 one) joins the
        // rotation: IPv4 → IPv6 link-local → other IPv6 → IPv4.
        let virtual = Endpoint(address: .v6([1, 0] + [UInt8](repeating: 0, count: 13) + [7]), port: 9)
        moved = c.saw(virtual)
        #expect(!moved && c.endpoint == elsewhere && c.alternative == v6)
        c.failOver()
        #expect(c.endpoint == v6 && c.alternative == virtual)
        c.failOver()
        #expect(c.endpoint == virtual && c.alternative == elsewhere)
        var single = Swarm.Candidate()
        _ = single.saw(v6)
        single.failOver()                  // nothing else known: stays
        #expect(single.endpoint == v6 && single.alternative == nil)
    }
}
