import Dispatch
import Foundation
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import SwarmNIO

@Suite("Local control socket")
struct LocalControlSocketTests {
    /// The client blocks in read(2), as a CLI may; in tests it must not hold one of the few
    /// cooperative threads the server needs, so it runs on a dispatch thread.
    func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    func socketPath() -> String { NSTemporaryDirectory() + "bsw-ctl-\(UInt32.random(in: 0...UInt32.max)).sock" }

    @Test func oneRequestManyLinesThenClose() async throws {
        let path = socketPath()
        let server = try await LocalControlServer.start(path: path) { request, reply in
            for i in 0..<3 { try? await reply.send(request + Array(" \(i)".utf8)) }
        }
        let lines: [String] = try await offPool {
            guard let client = LocalControlClient.connect(path: path) else { return [] }
            try client.send(Array("hello".utf8))
            var lines: [String] = []
            while let line = try client.readLine() { lines.append(String(decoding: line, as: UTF8.self)) }
            return lines
        }
        #expect(lines == ["hello 0", "hello 1", "hello 2"])
        await server.close()
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(LocalControlClient.connect(path: path) == nil)
    }

    /// An answer larger than the socket's buffers (a task's log of big messages) arrives
    /// whole: the connection closes only after it has gone out.
    @Test func aLargeAnswerArrivesWhole() async throws {
        let path = socketPath()
        let answer = (0..<(3 << 20)).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        let server = try await LocalControlServer.start(path: path) { _, reply in
            try? await reply.send(answer)
            try? await reply.send(Array("after".utf8))
        }
        for _ in 0..<3 {
            let lines: [[UInt8]] = try await offPool {
                guard let client = LocalControlClient.connect(path: path) else { return [] }
                try client.send(Array("log".utf8))
                // A slow reader: the daemon's writes outrun it.
                usleep(50_000)
                var lines: [[UInt8]] = []
                while let line = try client.readLine() { lines.append(line) }
                return lines
            }
            #expect(lines.count == 2 && lines.first == answer && lines.last == Array("after".utf8),
                    "\(lines.map(\.count)) bytes")
        }
        await server.close()
    }

    /// A client that asks and then stops reading (a `bookswarm log` piped into a pager
    /// that waits) must not keep the server from closing: waiting for the answer to drain
    /// gives way when the server closes.
    @Test func closingTheServerDoesNotWaitForAClientThatStopsReading() async throws {
        let path = socketPath()
        let answer = [UInt8](repeating: UInt8(ascii: "a"), count: 8 << 20)
        let answered = Mutex(false)
        let server = try await LocalControlServer.start(path: path) { _, reply in
            try? await reply.send(answer)
            answered.withLock { $0 = true }
        }
        final class Holder: @unchecked Sendable { var client: LocalControlClient? }
        let holder = Holder()
        try await offPool {
            holder.client = LocalControlClient.connect(path: path)
            try holder.client?.send(Array("log".utf8))
        }
        #expect(holder.client != nil)
        let deadline = Date().addingTimeInterval(5)
        while !answered.withLock({ $0 }) && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(answered.withLock { $0 })
        let closed = Mutex(false)
        let closing = Task {
            await server.close()
            closed.withLock { $0 = true }
        }
        let closeDeadline = Date().addingTimeInterval(5)
        while !closed.withLock({ $0 }) && Date() < closeDeadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(closed.withLock { $0 }, "server.close() still waiting for a client that does not read")
        holder.client = nil  // closes the socket: a server still waiting gets EPIPE
        _ = await closing.value
    }

    @Test func clientClosingEndsAStreamingHandler() async throws {
        let path = socketPath()
        let ended = Mutex(false)
        let server = try await LocalControlServer.start(path: path) { _, reply in
            var i = 0
            while !Task.isCancelled {
                guard (try? await reply.send(Array("tick \(i)".utf8))) != nil else { break }
                i += 1
                try? await Task.sleep(for: .milliseconds(5))
            }
            ended.withLock { $0 = true }
        }
        let first: [[UInt8]?] = try await offPool {
            guard let client = LocalControlClient.connect(path: path) else { return [] }
            try client.send(Array("follow".utf8))
            let lines = [try client.readLine(), try client.readLine()]
            client.finish()
            return lines
        }
        #expect(first == [Array("tick 0".utf8), Array("tick 1".utf8)])
        let deadline = Date().addingTimeInterval(5)
        while !ended.withLock({ $0 }) && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ended.withLock { $0 })
        await server.close()
    }

    /// A client that closes its sending side once its request is out (`socat`, `nc -N`, a
    /// script's `shutdown(SHUT_WR)`) still gets the whole answer, and the handler runs to its
    /// end: before, NIO closed the connection at the client's EOF and the handler was cancelled.
    @Test func aClientThatHalfClosesAfterItsRequestGetsItsAnswer() async throws {
        let path = socketPath()
        let finished = Mutex(false)
        let server = try await LocalControlServer.start(path: path) { request, reply in
            try? await Task.sleep(for: .milliseconds(200))  // work after the client's EOF
            finished.withLock { $0 = !Task.isCancelled }
            try? await reply.send(request + Array(" done".utf8))
        }
        let lines: [[UInt8]] = try await offPool {
            guard let client = LocalControlClient.connect(path: path) else { return [] }
            try client.send(Array("leave".utf8))
            client.finish()
            var lines: [[UInt8]] = []
            while let line = try client.readLine() { lines.append(line) }
            return lines
        }
        #expect(lines == [Array("leave done".utf8)])
        #expect(finished.withLock { $0 }, "the handler was cancelled at the client's EOF")
        await server.close()
    }

    /// `clientGone()` tells a handler that its client went away altogether (its socket
    /// closed: the command exited or was killed) while it works, and not that it only closed
    /// its sending side after the request (it still waits for the answer).
    @Test func aHandlerLearnsThatItsClientWentAwayButNotFromAHalfClose() async throws {
        let path = socketPath()
        let outcomes = Mutex<[String]>([])
        let server = try await LocalControlServer.start(path: path) { _, reply in
            let outcome = await withTaskGroup(of: String.self) { group in
                group.addTask { try? await Task.sleep(for: .seconds(1)); return "done" }
                group.addTask { await reply.clientGone(); return "gone" }
                let first = await group.next() ?? ""
                group.cancelAll()
                return first
            }
            outcomes.withLock { $0.append(outcome) }
            try? await reply.send(Array(outcome.utf8))
        }
        let answer: [UInt8]? = try await offPool {
            guard let client = LocalControlClient.connect(path: path) else { return nil }
            try client.send(Array("backup".utf8))
            client.finish()
            return try client.readLine()
        }
        #expect(answer == Array("done".utf8), "a half-close is no going away")
        let start = ContinuousClock.now
        try await offPool {
            // Sent, then closed entirely (the client is released on return).
            try LocalControlClient.connect(path: path)?.send(Array("backup".utf8))
        }
        while outcomes.withLock({ $0.count }) < 2 && ContinuousClock.now < start + .seconds(5) {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(outcomes.withLock { $0 } == ["done", "gone"])
        #expect(ContinuousClock.now - start < .milliseconds(900), "told before the work's second was over")
        await server.close()
    }

    /// A stream that has nothing to send (a follow of a quiet task) learns that its client
    /// closed from `clientClosed()`, not from a failed write.
    @Test func anIdleStreamLearnsThatItsClientClosed() async throws {
        let path = socketPath()
        let ended = Mutex(false)
        let server = try await LocalControlServer.start(path: path) { _, reply in
            try? await reply.send(Array("live".utf8))
            await reply.clientClosed()
            ended.withLock { $0 = true }
        }
        let first: [UInt8]? = try await offPool {
            guard let client = LocalControlClient.connect(path: path) else { return nil }
            try client.send(Array("follow".utf8))
            return try client.readLine()  // the client is released (closed) on return
        }
        #expect(first == Array("live".utf8))
        let deadline = Date().addingTimeInterval(5)
        while !ended.withLock({ $0 }) && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ended.withLock { $0 })
        await server.close()
    }

    /// Found by fuzz-control: a line over the limit whose line break came in the same read
    /// as its last bytes was delivered (up to a read's size over the 1 MiB of §10.7).
    @Test func aLineOverTheLimitIsRefusedWhereverItsLineBreakArrives() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder(maxLength: 9)))
        try channel.writeInbound(ByteBuffer(string: "012345678\n0123"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "012345678"), "exactly the limit")
        #expect(throws: SwarmNIOError.self) { try channel.writeInbound(ByteBuffer(string: "456789\nab\n")) }
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "nothing of or after the long line")
        _ = try? channel.finish()
    }

    @Test func noDaemonMeansNoClient() {
        #expect(LocalControlClient.connect(path: socketPath()) == nil)
    }
}
