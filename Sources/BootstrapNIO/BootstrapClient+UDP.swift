import Bootstrap
import NIOCore
import NIOPosix
import Swarm
import Sodium
import SwarmNIO

extension BootstrapClient {
    /// How often a client over a socket bound to the unspecified address looks at the host's
    /// interface addresses again, to offer those it has now.
    public static let localEndpointsLookInterval: Duration = .seconds(2)

    /// Starts a bootstrap client over a UDP socket. When the socket is bound to the
    /// unspecified address (`0.0.0.0`), the addresses of the host's interfaces (loopback
    /// left out) with the socket's port are offered to peers behind the same NAT (PROTOCOL.md
    /// §11.5), unless `configuration.localEndpoints` names them already; they are looked at
    /// again every `localEndpointsLookInterval` while the client runs, and a change is
    /// registered with the nodes at once (an interface that came up, a new lease).
    public static func start(identity: Ed25519.KeyPair, udp: UDPTransport, nodes: [Endpoint],
                             configuration: BootstrapClientMachine.Configuration = .init()) -> BootstrapClient {
        var configuration = configuration
        let follow = configuration.localEndpoints.isEmpty && udp.localEndpoint.isUnspecified
        if configuration.localEndpoints.isEmpty {
            configuration.localEndpoints = interfaceEndpoints(for: udp.localEndpoint)
        }
        let client = start(identity: identity, transport: udp, nodes: nodes, configuration: configuration)
        if follow {
            let bound = udp.localEndpoint
            Task { [weak client] in
                while true {
                    try? await Task.sleep(for: localEndpointsLookInterval)
                    guard let client, !client.isClosed else { return }
                    client.setLocalEndpoints(interfaceEndpoints(for: bound))
                }
            }
        }
        return client
    }

    /// The endpoints a socket bound to `bound` receives at: itself, or for an unspecified
    /// address every IPv4 address of the host's interfaces that are up, except loopback, at
    /// most four.
    public static func interfaceEndpoints(for bound: Endpoint) -> [Endpoint] {
        guard bound.isUnspecified else { return [bound] }
        var out: [Endpoint] = []
        for interface in NetworkInterface.all() where interface.isUp {
            for address in interface.ipv4Addresses {
                let endpoint = Endpoint(address: address, port: bound.port)
                guard !endpoint.isLoopback, !out.contains(endpoint) else { continue }
                out.append(endpoint)
            }
        }
        return Array(out.prefix(BootstrapWire.maxLocals))
    }
}
