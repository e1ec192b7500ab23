import Bootstrap
import Foundation
import NIOCore
import NIOPosix
import Swarm
import SwarmNIO
import Synchronization

/// A bootstrap node on a UDP socket: the sans-I/O `BootstrapNode` driven by SwarmNIO's
/// `UDPTransport` (this module adds no socket code of its own).
///
/// ```swift
/// try await BootstrapServer.run(port: 49737)              // until the task is cancelled
/// let server = try await BootstrapServer.start(bind: .v4(127, 0, 0, 1, port: 0))
/// async let _ = server.run(); …; await server.stop()
/// ```
public final class BootstrapServer: Sendable {
    public let localEndpoint: Endpoint
    private let transport: UDPTransport
    private let node: Mutex<BootstrapNode>
    private let clock: any SwarmClock
    private let capture: Capture?
    private let stopped = Atomic<Bool>(false)

    /// Binds `0.0.0.0:port` (and nothing else) and serves until the calling task is cancelled.
    public static func run(port: UInt16, configuration: BootstrapNode.Configuration = .init()) async throws {
        let server = try await start(bind: .v4(0, 0, 0, 0, port: port), configuration: configuration)
        await withTaskCancellationHandler {
            await server.run()
        } onCancel: {
            Task { await server.stop() }
        }
    }

    /// Binds the socket and returns; `run()` serves.
    /// - Parameter capturePath: test mode: every datagram the node receives or sends is
    ///   appended to this file as `u8 direction (0 in, 1 out) ‖ u16le length ‖ payload`,
    ///   so a test can search what the node saw without a packet capture tool.
    public static func start(bind endpoint: Endpoint, configuration: BootstrapNode.Configuration = .init(),
                             capturePath: String? = nil, clock: any SwarmClock = SystemSwarmClock()) async throws -> BootstrapServer {
        var udp = UDPTransport.Configuration()
        udp.incomingBufferBatches = 1024
        let transport = try await UDPTransport.bind(endpoint, configuration: udp)
        let capture = try capturePath.map(Capture.init(path:))
        return BootstrapServer(transport: transport, node: BootstrapNode(configuration: configuration, now: clock.now()),
                               clock: clock, capture: capture)
    }

    private init(transport: UDPTransport, node: BootstrapNode, clock: any SwarmClock, capture: Capture?) {
        self.transport = transport
        localEndpoint = transport.localEndpoint
        self.node = Mutex(node)
        self.clock = clock
        self.capture = capture
    }

    /// Serves until `stop()`.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                for await batch in transport.incoming {
                    let now = clock.now()
                    capture?.record(batch, outgoing: false)
                    let out = node.withLock { n in
                        for datagram in batch { n.receive(datagram, now: now) }
                        return n.takeDatagrams()
                    }
                    if !out.isEmpty {
                        capture?.record(out, outgoing: true)
                        transport.send(out)
                    }
                }
            }
            group.addTask { [self] in
                while !stopped.load(ordering: .relaxed) {
                    let now = clock.now()
                    let out = node.withLock { n in
                        n.tick(now: now)
                        return n.takeDatagrams()
                    }
                    if !out.isEmpty { transport.send(out) }
                    // Expiry is per second; rotation every two minutes.
                    do { try await clock.sleep(until: now + .milliseconds(500)) } catch { return }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Closes the socket; `run()` returns.
    public func stop() async {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        await transport.close()
        capture?.close()
    }

    public var counters: BootstrapNode.Counters { node.withLock { $0.counters } }
    public var registrationCount: Int { node.withLock { $0.registrationCount } }
    public var transportCounters: UDPTransport.Counters { transport.counters }

    final class Capture: Sendable {
        private let handle: Mutex<FileHandle?>

        init(path: String) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw SwarmNIOError(.socketSetupFailed, "cannot write capture file \(path)")
            }
            handle = Mutex(h)
        }

        func record(_ datagrams: [Datagram], outgoing: Bool) {
            var bytes: [UInt8] = []
            for d in datagrams {
                bytes.append(outgoing ? 1 : 0)
                bytes.append(UInt8(d.payload.count & 0xff))
                bytes.append(UInt8(d.payload.count >> 8))
                bytes += d.payload
            }
            handle.withLock { $0?.write(Data(bytes)) }
        }

        func close() { handle.withLock { h in try? h?.close(); h = nil } }
    }
}
