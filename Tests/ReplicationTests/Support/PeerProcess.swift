import BookswarmTestSupport
import Foundation

/// A `replication-peer` child (see `JSONLinesProcess`).
typealias PeerProcess = JSONLinesProcess

extension JSONLinesProcess {
    /// The built `replication-peer`, if any.
    static var replicationPeer: String? { binary("replication-peer") }
}

/// The namespace test bed (`Tools/netns`, through the shared `Netns` helper) as the
/// replication process tests use it: a bed with loss on every host interface.
enum TestBed {
    static var unavailableReason: String? { Netns.unavailableReason }

    static var available: Bool { Netns.available && PeerProcess.replicationPeer != nil }

    static func name(_ tag: String) -> String { Netns.bedName("r" + tag) }

    static func inHost(_ bed: String, _ host: Int, _ command: [String]) -> [String] { Netns.inHost(bed, host, command) }

    static func withBed<T>(_ name: String, hosts: Int, loss: Double, _ body: () async throws -> T) async throws -> T {
        try await Netns.withBed(name, hosts: hosts) {
            if loss > 0 { try Netns.loss(name, percent: loss) }
            return try await body()
        }
    }
}
