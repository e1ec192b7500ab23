import BookswarmControl
import Messenger
import SwarmNIO

/// The daemon's control server, answering with the messenger.
struct LocalControlServerBox: Sendable {
    let server: LocalControlServer
    var path: String { server.path }

    static func start(path: String, peer: LocalPeer) async throws -> LocalControlServerBox {
        let messenger = peer.messenger
        let server = try await LocalControlServer.start(path: path) { line, reply in
            await Control.serve(line, reply: { try await reply.send($0) }, clientClosed: { await reply.clientClosed() },
                                clientGone: { await reply.clientGone() }, messenger: messenger, vault: peer.vault, network: {
                guard let network = peer.network else { return NetworkStatus() }
                return NetworkStatus(drops: await network.dropCounters(), interfaces: await network.interfaces)
            })
        }
        return LocalControlServerBox(server: server)
    }

    func close() async { await server.close() }
}
