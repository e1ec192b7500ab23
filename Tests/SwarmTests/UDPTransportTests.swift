import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Swarm
@testable import SwarmNIO

@Suite("UDPTransport over loopback")
struct UDPTransportTests {
    /// Collects datagrams from `transport.incoming` until `count` arrived or `timeout` passed.
    static func receive(_ count: Int, from transport: UDPTransport, timeout: Duration = .seconds(5)) async -> [Datagram] {
        await withTaskGroup(of: [Datagram]?.self) { group in
            group.addTask {
                var got: [Datagram] = []
                for await batch in transport.incoming {
                    got += batch
                    if got.count >= count { break }
                }
                return got
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var result: [Datagram] = []
            for await r in group {
                if let r { result = r }
                group.cancelAll()
                break
            }
            return result
        }
    }

    @Test func bindsAnEphemeralPortOnIPv4Loopback() async throws {
        let t = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        #expect(t.localEndpoint.isLoopback)
        #expect(t.localEndpoint.port != 0)
        await t.close()
    }

    @Test func sendsAndReceivesABatchOverIPv4() async throws {
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let datagrams = (0..<200).map { i in
            Datagram(remote: b.localEndpoint, payload: [UInt8(i & 0xff), UInt8(i >> 8)] + [UInt8](repeating: 7, count: 1198))
        }
        a.send(datagrams)
        let got = await Self.receive(200, from: b)
        #expect(got.count == 200)
        #expect(got.allSatisfy { $0.remote == a.localEndpoint && $0.payload.count == 1200 })
        #expect(Set(got.map { Int($0.payload[0]) | Int($0.payload[1]) << 8 }) == Set(0..<200))
        #expect(a.counters.datagramsSent == 200)
        #expect(b.counters.datagramsReceived == 200)
        await a.close()
        await b.close()
    }

    @Test func deliversReadBurstsAsBatches() async throws {
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        // Fill the receiver's kernel buffer before it is read: the vector read then hands
        // over several datagrams at once.
        a.send((0..<64).map { _ in Datagram(remote: b.localEndpoint, payload: [1, 2, 3]) })
        var batches: [[Datagram]] = []
        var total = 0
        for await batch in b.incoming {
            batches.append(batch)
            total += batch.count
            if total >= 64 { break }
        }
        #expect(total == 64)
        #expect(batches.contains { $0.count > 1 }, "batch sizes \(batches.map(\.count))")
        await a.close()
        await b.close()
    }

    @Test func sendsAndReceivesOverIPv6WhenAvailable() async throws {
        let loopback6 = Endpoint(address: .v6([UInt8](repeating: 0, count: 15) + [1]), port: 0)
        guard let a = try? await UDPTransport.bind(loopback6) else {
            print("skipped: IPv6 loopback ::1 not available here")
            return
        }
        let b = try await UDPTransport.bind(loopback6)
        #expect(b.localEndpoint.isLoopback)
        a.send((0..<10).map { Datagram(remote: b.localEndpoint, payload: [UInt8($0)]) })
        let got = await Self.receive(10, from: b)
        #expect(got.count == 10)
        #expect(got.first?.remote == a.localEndpoint)
        await a.close()
        await b.close()
    }

    @Test func aDualStackSocketTalksToBothFamilies() async throws {
        let any6 = Endpoint(address: .v6([UInt8](repeating: 0, count: 16)), port: 0)
        guard let dual = try? await UDPTransport.bind(any6),
              let b6 = try? await UDPTransport.bind(Endpoint(address: .v6([UInt8](repeating: 0, count: 15) + [1]), port: 0)) else {
            print("skipped: IPv6 not available here")
            return
        }
        let b4 = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        #expect(dual.canSend(to: b4.localEndpoint) && dual.canSend(to: b6.localEndpoint))
        #expect(!b4.canSend(to: b6.localEndpoint) && !b6.canSend(to: b4.localEndpoint))
        // To an IPv4 peer (sent mapped), and back: the dual-stack socket reports it as IPv4.
        dual.send([Datagram(remote: b4.localEndpoint, payload: [4])])
        let at4 = await Self.receive(1, from: b4)
        #expect(at4.first?.payload == [4])
        #expect(at4.first?.remote == .v4(127, 0, 0, 1, port: dual.localEndpoint.port))
        b4.send([Datagram(remote: try #require(at4.first).remote, payload: [44])])
        let back = await Self.receive(1, from: dual)
        #expect(back.first?.remote == b4.localEndpoint)
        // And to an IPv6 one.
        dual.send([Datagram(remote: b6.localEndpoint, payload: [6])])
        #expect(await Self.receive(1, from: b6).first?.payload == [6])
        #expect(dual.counters.sendErrors == 0)
        // A family the socket cannot use is dropped and counted; the socket stays up.
        b4.send([Datagram(remote: b6.localEndpoint, payload: [1]), Datagram(remote: b6.localEndpoint, payload: [2])])
        b4.send([Datagram(remote: .v4(127, 0, 0, 1, port: dual.localEndpoint.port), payload: [7])])
        #expect(await Self.receive(1, from: dual).first?.payload == [7])
        #expect(b4.counters.sendErrors == 2 && b4.counters.socketRestarts == 0, "\(b4.counters)")
        for t in [dual, b4, b6] { await t.close() }
    }

    @Test func aHugeBurstNeverBlocksAndEveryDatagramIsSentOrCounted() async throws {
        var config = UDPTransport.Configuration()
        config.sendQueueHighWaterBytes = 64 << 10
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0), configuration: config)
        let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let burst = [Datagram](repeating: Datagram(remote: b.localEndpoint, payload: [UInt8](repeating: 1, count: 1200)), count: 20_000)
        let start = ContinuousClock.now
        a.send(burst)
        #expect(ContinuousClock.now - start < .milliseconds(100), "send only enqueues")
        // b never reads: the kernel drops what overflows its buffer; the sender's own queue
        // never exceeds its high-water mark, and every datagram is accounted for.
        var counters = a.counters
        for _ in 0..<100 where counters.datagramsSent + counters.sendDropped < 20_000 {
            try await Task.sleep(for: .milliseconds(20))
            counters = a.counters
        }
        #expect(counters.datagramsSent + counters.sendDropped == 20_000)
        #expect(counters.datagramsSent > 0)
        await a.close()
        await b.close()
    }

    @Test func closeFinishesIncomingAndLaterSendsAreDropped() async throws {
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        await a.close()
        for await _ in a.incoming {}
        a.send([Datagram(remote: .v4(127, 0, 0, 1, port: 9), payload: [0])])
        try await Task.sleep(for: .milliseconds(50))
        #expect(a.counters.sendDropped == 1)
        #expect(a.counters.datagramsSent == 0)
    }

    @Test func aSocketClosedUnderneathIsBoundAgainOnTheSamePort() async throws {
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        await a.closeSocketUnderneath()
        var restarted = false
        for _ in 0..<500 where !restarted {
            try await Task.sleep(for: .milliseconds(10))
            restarted = a.counters.socketRestarts == 1
        }
        #expect(restarted)
        // Both directions work again, on the same port, through the same `incoming`.
        var fromB = a.incoming.makeAsyncIterator()
        var fromA = b.incoming.makeAsyncIterator()
        b.send([Datagram(remote: a.localEndpoint, payload: [1, 2, 3])])
        #expect(await fromB.next()?.first?.payload == [1, 2, 3])
        a.send([Datagram(remote: b.localEndpoint, payload: [4])])
        #expect(await fromA.next()?.first?.payload == [4])
        await a.close()
        await b.close()
        #expect(await fromB.next() == nil)
    }

    @Test func bindingAForeignAddressIsAClearError() async throws {
        // 192.0.2.1 (TEST-NET-1) is never configured here; nothing is sent.
        await #expect(throws: SwarmNIOError(.socketSetupFailed, "")) {
            _ = try await UDPTransport.bind(.v4(192, 0, 2, 1, port: 0))
        }
        // A failed bind leaves no socket behind (NIO's future-based bind did: `rebind`, which
        // retries every second, lost a descriptor each time).
        func descriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }
        let before = descriptors()
        for _ in 0..<2000 { _ = try? await UDPTransport.bind(.v4(192, 0, 2, 1, port: 0)) }
        // A leak is one descriptor per attempt. Other tests run beside this one and hold
        // sockets of their own: a few dozen, a few hundred on a loaded machine.
        #expect(descriptors() - before < 1000, "\(before) → \(descriptors())")
    }

    @Test func endpointRoundTripsThroughSocketAddress() {
        let e4 = Endpoint.v4(10, 77, 0, 3, port: 24771)
        #expect(Endpoint(e4.socketAddress) == e4)
        let e6 = Endpoint(address: .v6([0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [9]), port: 1)
        #expect(Endpoint(e6.socketAddress) == e6)
    }

    @Test func segmentationRunsStopAtAnEndpointASizeOrTheKernelsCap() {
        let x = Endpoint.v4(127, 0, 0, 1, port: 1)
        let y = Endpoint.v4(127, 0, 0, 1, port: 2)
        func d(_ remote: Endpoint, _ size: Int) -> Datagram { Datagram(remote: remote, payload: [UInt8](repeating: 1, count: size)) }
        // Equal sizes to one endpoint, then a shorter one ends the run (it may be its last).
        let mixed = [d(x, 100), d(x, 100), d(x, 40), d(x, 100), d(y, 100), d(y, 120), d(y, 0)]
        #expect(UDPTransport.runEnd(mixed, from: 0) == 3)
        #expect(UDPTransport.runEnd(mixed, from: 3) == 4)   // the endpoint changes
        #expect(UDPTransport.runEnd(mixed, from: 4) == 5)   // a longer one may not follow
        #expect(UDPTransport.runEnd(mixed, from: 5) == 6)   // nor an empty one
        #expect(UDPTransport.runEnd(mixed, from: 6) == 7)
        let many = [Datagram](repeating: d(x, 1135), count: 200)
        #expect(UDPTransport.runEnd(many, from: 0) == UDPTransport.Configuration.segmentsPerWrite(1135))
        #expect(UDPTransport.Configuration.segmentsPerWrite(1135) * 1135 <= UDPTransport.Configuration.maxBytesPerWrite)
        #expect(UDPTransport.runEnd([Datagram](repeating: d(x, 10), count: 100), from: 0) == 64)
    }

    /// With offloads (this kernel has them; the test says so when not), a batch of mixed
    /// sizes and endpoints leaves in GSO writes and arrives as exactly the datagrams sent,
    /// one `Datagram` each, whether or not the receiver's kernel glued them (GRO).
    @Test func offloadedSendsArriveAsTheDatagramsSent() async throws {
        guard UDPTransport.Configuration.kernelHasOffloads else {
            print("skipped: this kernel has no UDP GSO/GRO (or BOOKSWARM_UDP_OFFLOAD=0)")
            return
        }
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        let c = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0))
        var sent: [Datagram] = []
        for i in 0..<300 {
            // Runs of 1135-byte datagrams with a short one every 50th, all to b, then a few to c.
            let size = i % 50 == 49 ? 300 + i : 1135
            var payload = [UInt8](repeating: UInt8(i % 251), count: size)
            payload[0] = UInt8(i & 0xff)
            payload[1] = UInt8(i >> 8)
            sent.append(Datagram(remote: i < 290 ? b.localEndpoint : c.localEndpoint, payload: payload))
        }
        a.send(sent)
        async let toC = Self.receive(10, from: c)
        let gotB = await Self.receive(290, from: b)
        let gotC = await toC
        func key(_ d: Datagram) -> Int { Int(d.payload[0]) | Int(d.payload[1]) << 8 }
        #expect(gotB.count == 290)
        #expect(gotC.count == 10)
        let byIndex = Dictionary(uniqueKeysWithValues: (gotB + gotC).map { (key($0), $0) })
        for (i, datagram) in sent.enumerated() {
            #expect(byIndex[i]?.payload == datagram.payload, "datagram \(i)")
            #expect(byIndex[i]?.remote == a.localEndpoint)
        }
        let counters = a.counters
        #expect(counters.datagramsSent == 300)
        #expect(counters.segmentedWrites > 0)
        #expect(counters.segmentedDatagrams > 200)
        #expect(b.counters.datagramsReceived == 290)
        await a.close(); await b.close(); await c.close()
    }

    @Test func withoutOffloadsEveryDatagramIsAWriteOfItsOwn() async throws {
        var configuration = UDPTransport.Configuration()
        configuration.segmentationOffload = false
        configuration.receiveOffload = false
        let a = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0), configuration: configuration)
        let b = try await UDPTransport.bind(.v4(127, 0, 0, 1, port: 0), configuration: configuration)
        a.send((0..<100).map { i in Datagram(remote: b.localEndpoint, payload: [UInt8(i)] + [UInt8](repeating: 3, count: 999)) })
        let got = await Self.receive(100, from: b)
        #expect(Set(got.map { Int($0.payload[0]) }) == Set(0..<100))
        #expect(got.allSatisfy { $0.payload.count == 1000 })
        #expect(a.counters.segmentedWrites == 0)
        await a.close(); await b.close()
    }

    @Test func rawFloorMeasuresLoopbackThroughput() async throws {
        let r = try await RawUDPFloor.measure(datagramSize: 1200, duration: .milliseconds(200))
        #expect(r.datagramsReceived > 0)
        #expect(r.datagramsReceived <= r.datagramsSent)
        print("raw NIO UDP floor (debug build): \(r)")
        if UDPTransport.Configuration.kernelHasOffloads {
            let o = try await RawUDPFloor.measure(datagramSize: 1200, duration: .milliseconds(200), offload: true)
            #expect(o.datagramsReceived > 0)
            #expect(o.datagramsReceived <= o.datagramsSent)
            print("raw NIO UDP floor with GSO/GRO (debug build): \(o)")
        }
    }
}
