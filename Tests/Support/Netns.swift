import Foundation

/// The namespace test bed (`Tools/netns`) from Swift tests: a bridge LAN of hosts
/// `NAME-h1…hN` at 10.77.0.K. Tests that use it are enabled only when `Netns.available`
/// (root, `ip`, `nft`, the script); otherwise Swift Testing counts them as skipped with
/// `Netns.unavailableReason`. CI runs as root, so there they run. Shared by every test target
/// that builds a bed (the `BookswarmTestSupport` target: test targets cannot share files).
public enum Netns {
    public static var script: URL { RepoScript.url("Tools/netns") }

    /// Why the bed cannot run here, or nil when it can.
    public static let unavailableReason: String? = {
        if geteuid() != 0 { return "network namespace tests need root" }
        for tool in ["ip", "nft"] where RepoScript.which(tool) == nil {
            return "network namespace tests need '\(tool)' (apt-get install iproute2 nftables)"
        }
        if !FileManager.default.isExecutableFile(atPath: script.path) { return "Tools/netns not found at \(script.path)" }
        return nil
    }()

    public static var available: Bool { unavailableReason == nil }

    /// A bed name unique to this process and `tag` (≤ 16 characters, as the script wants).
    public static func bedName(_ tag: String) -> String {
        "b\(getpid() % 1_000_000)\(tag.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(8))"
    }

    public typealias Failure = RepoScript.Failure

    @discardableResult
    public static func tool(_ arguments: [String]) throws -> String { try RepoScript.run("Tools/netns", arguments) }

    public static func up(_ name: String, hosts: Int) throws { try tool(["up", name, "\(hosts)"]) }
    public static func loss(_ name: String, percent: Double) throws { try tool(["loss", name, String(format: "%.2f", percent)]) }
    public static func down(_ name: String) { _ = try? tool(["down", name]) }
    /// Removes host `host`'s eth0 (its veth pair): only `lo` is left there.
    public static func unplug(_ name: String, host: Int) throws { try tool(["unplug", name, "\(host)"]) }
    /// Gives host `host` an eth0 again (a new veth pair on the bridge, so a new index and a new
    /// link-local address), with its bed address or `address`, and the multicast route.
    public static func plug(_ name: String, host: Int, address: String? = nil) throws {
        try tool(["plug", name, "\(host)"] + (address.map { [$0] } ?? []))
    }
    public static func status(_ name: String) -> String { (try? tool(["status", name])) ?? "" }

    /// argv that runs `command` inside host `host` (1-based) of bed `name`.
    public static func inHost(_ name: String, _ host: Int, _ command: [String]) -> [String] {
        ["/usr/bin/env", "ip", "netns", "exec", "\(name)-h\(host)"] + command
    }

    public static func address(host: Int) -> String { "10.77.0.\(host)" }

    /// The IPv6 link-local address of host `host`'s eth0 (`fe80::…`, without a zone).
    public static func linkLocal(_ name: String, host: Int) throws -> String {
        try tool(["addr6", name, "\(host)"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Builds a bed, runs `body`, and tears the bed down whatever happens (off the pool).
    /// `ipv6Only`: the hosts have IPv6 link-local addresses and no IPv4 at all.
    public static func withBed<T>(_ name: String, hosts: Int, ipv6Only: Bool = false,
                                  _ body: () async throws -> T) async throws -> T {
        try await RepoScript.withBed("Tools/netns", name: name, up: ["\(hosts)"] + (ipv6Only ? ["--ipv6-only"] : []), body)
    }
}
