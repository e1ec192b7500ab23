import Testing
@testable import Swarm

@Suite("InMemoryNetwork")
struct InMemoryNetworkTests {
    @Test func deliversWithTheSourceEndpoint() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport()
        let b = network.makeTransport()
        #expect(a.localEndpoint != b.localEndpoint)
        a.send([Datagram(remote: b.localEndpoint, payload: [1, 2, 3])])
        var it = b.incoming.makeAsyncIterator()
        let batch = await it.next()
        #expect(batch == [Datagram(remote: a.localEndpoint, payload: [1, 2, 3])])
    }

    @Test func lossFollowsTheRateAndIsCounted() {
        let network = InMemoryNetwork(conditions: .init(lossRate: 0.2), seed: 3)
        let a = network.makeTransport()
        let b = network.makeTransport()
        a.send((0..<10_000).map { _ in Datagram(remote: b.localEndpoint, payload: [0]) })
        let (delivered, lost) = network.counts
        #expect(delivered + lost == 10_000)
        #expect((1_700...2_300).contains(lost))
    }

    @Test func aClosedTransportNeitherSendsNorReceives() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport()
        let b = network.makeTransport()
        await b.close()
        a.send([Datagram(remote: b.localEndpoint, payload: [1])])
        var it = b.incoming.makeAsyncIterator()
        #expect(await it.next() == nil)
        await a.close()
        a.send([Datagram(remote: b.localEndpoint, payload: [1])])
        #expect(network.counts.delivered == 1)
    }

    @Test func rebindingAnEndpointReplacesTheReceiver() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport()
        let b = network.makeTransport()
        let again = network.makeTransport(at: b.localEndpoint)
        a.send([Datagram(remote: b.localEndpoint, payload: [7])])
        var it = again.incoming.makeAsyncIterator()
        #expect(await it.next()?.first?.payload == [7])
    }
}
