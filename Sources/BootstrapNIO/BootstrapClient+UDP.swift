import Bootstrap
import NIOCore
import NIOPosix
import Swarm
import Sodium
import SwarmNIO

extension BootstrapClient {
    /// Starts a bootstrap client over a UDP socket. When the socket is bound to the
    /// unspecified address (`0.0.0.0`), the addresses of the host's interfaces (loopback
    /// left out) with the socket's port are offered to peers behind the same NAT (PROTOCOL.md
    /// §11.5), unless `configuration.localEndpoints` names them already.
    public static func start(identity: Ed25519.KeyPair, udp: UDPTransport, nodes: [Endpoint],
                             configuration: BootstrapClientMachine.Configuration = .init()) -> BootstrapClient {
        var configuration = configuration
        if configuration.localEndpoints.isEmpty {
            configuration.localEndpoints = interfaceEndpoints(for: udp.localEndpoint)
        }
        return start(identity: identity, transport: udp, nodes: nodes, configuration: configuration)
    }

    /// The endpoints a socket bound to `bound` receives at: itself, or for an unspecified
    /// address every IPv4 address of the host's interfaces except loopback, at most four.
    public static func interfaceEndpoints(for bound: Endpoint) -> [Endpoint] {
        guard bound.isUnspecified else { return [bound] }
        var out: [Endpoint] = []
        for interface in NetworkInterface.all() {
            for address in interface.ipv4Addresses {
                let endpoint = Endpoint(address: address, port: bound.port)
                guard !endpoint.isLoopback, !out.contains(endpoint) else { continue }
                out.append(endpoint)
            }
        }
        return Array(out.prefix(BootstrapWire.maxLocals))
    }
}
