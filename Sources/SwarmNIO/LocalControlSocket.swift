import NIOCore
import NIOPosix
import Sodium
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's local control socket: how `bookswarm send`, `log --follow`, `chat` and
/// `inspect` talk to a running daemon of the same vault directory.
///
/// A Unix-domain stream socket in the vault directory (itself mode 0700; the socket is made
/// 0600). One request per connection: the client writes one line, the server answers with
/// zero or more lines and closes. A client may close its sending side once it has written
/// its request (`shutdown(SHUT_WR)`, what `socat` and `nc -N` do): the request is carried out
/// and answered all the same. A streaming handler (follow) watches `Reply.clientClosed()` to
/// stop when the client closes its end; a handler whose work is only the client's to have
/// (a backup, a saved file) watches `Reply.clientGone()` to stop when the client went away
/// altogether (it exited, was killed, or closed its socket), which a half-close is not.
/// Lines are opaque bytes here; the CLI puts JSON in them.
public final class LocalControlServer: Sendable {
    /// Writes one reply line to the client. Throws once the client has gone.
    public struct Reply: Sendable {
        let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
        let closed: ClientClosed
        let gone: ClientClosed

        /// Returns once the client has closed its end (or half of it: it sends nothing more
        /// after its request either way); a streaming handler races it against its stream.
        public func clientClosed() async { await closed.wait() }

        /// Returns once the connection is closed: the client's socket is closed entirely (on
        /// Linux its end hangs up, which NIO takes as a reset and closes the channel), or the
        /// server is closing. Not when the client only shut its sending side down: it still
        /// waits for the answer. Gives way when the task is cancelled.
        public func clientGone() async { await gone.wait() }

        public func send(_ line: [UInt8]) async throws {
            var buffer = ByteBuffer()
            buffer.reserveCapacity(line.count + 1)
            buffer.writeBytes(line)
            buffer.writeInteger(UInt8(ascii: "\n"))
            try await writer.write(buffer)
        }
    }

    public typealias Handler = @Sendable (_ request: [UInt8], _ reply: Reply) async -> Void

    /// Longest request line accepted; longer ones close the connection.
    public static let maxLineBytes = 1 << 20

    public let path: String
    private let channel: Channel
    private let acceptTask: Task<Void, Never>

    /// Binds `path` (an existing socket file there is replaced: the caller holds the vault
    /// lock, so no live server owns it) and serves until `close()`.
    public static func start(path: String, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             handler: @escaping Handler) async throws -> LocalControlServer {
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 32)
                // A client that closes its sending side after the request still reads the
                // answer: without this NIO would close the whole connection at its EOF.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(LineDecoder(maxLength: LocalControlServer.maxLineBytes)))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw SwarmNIOError(.socketSetupFailed, "cannot listen on \(path): \(error)")
        }
        chmod(path, 0o600)
        let task = Task<Void, Never> {
            _ = try? await server.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in connections {
                            group.addTask { await serve(connection, handler: handler) }
                        }
                    } catch {
                        // The listening socket closed: stop accepting.
                    }
                }
            }
        }
        return LocalControlServer(path: path, channel: server.channel, acceptTask: task)
    }

    private init(path: String, channel: Channel, acceptTask: Task<Void, Never>) {
        self.path = path
        self.channel = channel
        self.acceptTask = acceptTask
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, handler: @escaping Handler) async {
        let channel = connection.channel
        try? await connection.executeThenClose { inbound, outbound in
            let (requests, delivered) = AsyncStream<[UInt8]>.makeStream()
            let closed = ClientClosed()
            let gone = ClientClosed()
            channel.closeFuture.whenComplete { _ in gone.signal() }
            await withTaskGroup(of: Bool.self) { group in
                // The reader owns the inbound side: the first line is the request; the
                // client closing its end afterwards (EOF or error) is told to the handler
                // (`Reply.clientClosed`), which a request that is not a stream ignores.
                group.addTask {
                    var lines = inbound.makeAsyncIterator()
                    if let first = try? await lines.next() {
                        delivered.yield(Array(first.readableBytesView))
                    }
                    delivered.finish()
                    while (try? await lines.next()) != nil {}
                    closed.signal()
                    return false
                }
                group.addTask {
                    for await request in requests {
                        await handler(request, Reply(writer: outbound, closed: closed, gone: gone))
                        break
                    }
                    // The answer is complete once it has gone out: a write returns when the
                    // channel took it, and a close would drop what the socket's buffers could
                    // not take yet (an answer of a few hundred KB to a client that reads it
                    // slowly). Writes leave in order, so an empty one written after the
                    // answer completes when all of it has been written.
                    // The wait gives way when the task is cancelled (the server closing, or
                    // the client's end closed first): a future alone would wait for a client
                    // that stopped reading for ever, and `close()` with it.
                    try? await withTaskCancellationHandler {
                        try await channel.writeAndFlush(ByteBuffer()).get()
                    } onCancel: {
                        channel.close(promise: nil)
                    }
                    // Closing the channel also ends the reader, which inbound iteration alone
                    // would not notice.
                    try? await channel.close()
                    return true
                }
                // Until the handler is done: the reader ending first (the client's EOF) ends
                // nothing by itself.
                while let handlerDone = await group.next(), !handlerDone {}
                group.cancelAll()
            }
        }
    }

    /// Stops listening, ends open connections, and removes the socket file.
    public func close() async {
        try? await channel.close()
        acceptTask.cancel()
        _ = await acceptTask.value
        unlink(path)
    }
}

/// Splits a byte stream into lines (without the `\n`), refusing lines over `maxLength`:
/// the control socket's framing (public for its fuzz target).
public struct LineDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maxLength: Int

    public init(maxLength: Int) { self.maxLength = maxLength }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maxLength { throw SwarmNIOError(.invalidAddress, "control line too long") }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        // Its line break may come in the same read as the bytes that take it over the limit.
        if length > maxLength { throw SwarmNIOError(.invalidAddress, "control line too long") }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// The client end: plain blocking POSIX, because a CLI command does one exchange and exits.
public final class LocalControlClient {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var sawEOF = false

    /// Connects to the daemon's socket; nil when no daemon listens there.
    public static func connect(path: String) -> LocalControlClient? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { close(fd); return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { close(fd); return nil }
        return LocalControlClient(fd: fd)
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Sends the request line.
    public func send(_ line: [UInt8]) throws {
        var bytes = line
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SwarmNIOError(.closed, "daemon closed the control connection") }
            offset += n
        }
    }

    /// The next reply line, or nil once the daemon has closed the connection.
    public func readLine() throws -> [UInt8]? {
        // Bytes before `scanned` hold no line break: each read is searched once, so a long
        // answer costs linear time, not a rescan of all of it per read.
        var scanned = 0
        while true {
            if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            scanned = buffer.count
            if sawEOF { return nil }
            let n = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { chunk -> Int in
                let n = read(fd, chunk.baseAddress, chunk.count)
                if n > 0 { buffer.append(contentsOf: chunk[0..<n]) }
                return n
            }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw SwarmNIOError(.closed, "control connection failed: \(errnoText(errno))") }
            if n == 0 { sawEOF = true }
        }
    }

    /// Closes the sending side, telling a streaming handler to stop.
    public func finish() {
        shutdown(fd, Int32(SHUT_WR))
    }
}

/// Whether a control client has closed its end (or gone), for the handler to wait on.
final class ClientClosed: Sendable {
    private let state = Mutex<(closed: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `signal()` was called (at once if it was), or when the task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.closed || Task.isCancelled { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
    }
}
