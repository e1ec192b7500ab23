import ArgumentParser
import BookswarmControl
import Foundation
import Messenger
import Swarm
import Synchronization
import Vault

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Chat in a task: history, live messages, a prompt that stays intact.",
        discussion: """
            Type a line and Enter to send it; /quit (or Ctrl-C, or Ctrl-D on an empty line) leaves. \
            /attach PATH [CAPTION] shares a file, /files lists the task's files, /save FILE [DEST] \
            writes one out, /withdraw FILE withdraws one of yours, /help lists the commands; a line that begins with // is sent with one /. \
            Without a daemon the network is up while the chat is open.
            """)
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @OptionGroup var vault: VaultOptions

    func run() async throws {
        try await reportingErrors {
            let session = try await FollowSession.open(task: task, options: vault, role: "chat")
            let me = try await session.call(ControlRequest(command: .id), as: PeerIdentity.self).peer
            let terminal = ChatTerminal(prompt: "\(String(me.prefix(8)))> ")
            terminal.print("-- bookswarm chat \(task); /help for commands, /quit to leave --")
            terminal.start()
            let shown = ChatProgress()
            let incoming = Task {
                var days = Format.DayLines()
                for await item in session.items {
                    defer { shown.saw(item) }
                    // Made once, at the time its day line is judged by.
                    let now = Date()
                    let line = Format.line(item, me: me, now: now)
                    if line != nil, let day = days.before(item, now: now) { terminal.print(day) }
                    if item.event == .live, let summary = item.summary {
                        let online = summary.members.filter(\.online).map { Format.who($0.peer, name: $0.name, me: me) }
                        terminal.print("-- \(Format.title(summary.title, or: "(title not received yet)")): \(counted(summary.members.count, "member"))"
                                       + (online.isEmpty ? ", none online" : ", online: " + online.joined(separator: ", ")) + " --")
                    } else if item.event == .whole, let line, let entry = item.entry {
                        terminal.print(line + " — " + ChatInput.saveHint(name: entry.file?.name ?? "", id: entry.id))
                    } else if let line {
                        terminal.print(line)
                    }
                }
                // The daemon stopped: nothing more would show, and lines typed would go
                // nowhere (or, once it is back, be sent unseen). End the chat and say why.
                guard session.daemonWentAway else { return }
                terminal.restore()
                FileHandle.standardError.write(Data("bookswarm: the daemon of \(session.directory) stopped: the chat ended (chat again once it runs)\n".utf8))
                Foundation.exit(1)
            }
            for await line in terminal.lines() {
                guard let input = ChatInput(parsing: line) else { continue }
                await run(input, in: session, terminal: terminal, me: me, shown: shown)
            }
            // The input ended (Ctrl-D, /quit, or the end of piped lines, which may come at
            // once): first the history and every line sent here, as a chat shows them.
            await shown.settled(within: .seconds(5))
            terminal.restore()
            session.close()
            incoming.cancel()
            await session.finish()
        }
    }

    /// Carries out one line typed at the prompt; what it prints (an error too) is one line
    /// above the prompt (`/files`, `/help`: one per file or command), and the chat goes on.
    private func run(_ input: ChatInput, in session: FollowSession, terminal: ChatTerminal, me: String, shown: ChatProgress) async {
        /// Runs `body`; a failure is one line, `! ` + `failed` + the error.
        func attempt(_ failed: String, _ body: () async throws -> Void) async {
            do { try await body() } catch { terminal.print("! \(failed)\(oneLine(error))") }
        }
        switch input {
        case let .message(text):
            await attempt("not sent: ") { shown.sent(try await session.send(text).id) }
        case let .attach(path, caption):
            await attempt("not attached: ") {
                terminal.print(Format.attached(try await session.call(.attach(task: nil, path: path, caption: caption), as: LogEntry.self)))
            }
        case .files:
            await attempt("") {
                let files = try await session.call(ControlRequest(command: .files), as: [FileReport].self)
                if files.isEmpty { terminal.print("no files in this task yet: /attach PATH") }
                for line in files.compactMap({ Format.file($0, me: me) }) { terminal.print(line) }
            }
        case let .save(file, destination):
            await attempt("not saved: ") {
                terminal.print(Format.saved(try await session.call(.save(task: nil, file: file, destination: destination), as: SaveResult.self)))
            }
        case let .withdraw(file):
            await attempt("not withdrawn: ") {
                terminal.print(Format.withdrew(try await session.call(ControlRequest(command: .withdraw, name: file), as: WithdrawResult.self)))
            }
        case .help:
            for line in ChatInput.helpLines { terminal.print(line) }
        case let .mistake(line):
            terminal.print("! \(line)")
        }
    }
}

/// What a chat has shown of the task: whether its history is (the first `live` item), and
/// which of the lines sent from it are not yet — so that when its input ends it leaves only
/// once the person has seen them.
final class ChatProgress: Sendable {
    private let state = Mutex<(caughtUp: Bool, sentUnseen: Set<String>, seen: Set<String>)>((false, [], []))

    func saw(_ item: FollowItem) {
        state.withLock { s in
            if item.event == .live { s.caughtUp = true }
            guard let id = item.entry?.id, item.event == .message else { return }
            if s.sentUnseen.remove(id) == nil, s.caughtUp { s.seen.insert(id) }
        }
    }

    /// A line sent: shown when its entry arrives (or arrived first).
    func sent(_ id: String) {
        state.withLock { s in if s.seen.remove(id) == nil { s.sentUnseen.insert(id) } }
    }

    /// Returns once the history and every line sent are shown, or after `limit`.
    func settled(within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline, !state.withLock({ $0.caughtUp && $0.sentUnseen.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon", abstract: "Run this peer in the foreground: discovery, sessions, replication.",
        discussion: "Other commands of the same --dir talk to it over <dir>/control.sock. Stops cleanly on SIGTERM or SIGINT.")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            // A Unix socket's path has room for 107 bytes (`sun_path`, with its NUL): say so
            // before anything starts, not as the socket library's error at the end.
            let socket = vault.directory.controlSocket
            let room = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1
            guard socket.utf8.count <= room else {
                throw CLIError("the vault's path is too long for its control socket (\(socket.utf8.count) bytes, "
                               + "at most \(room)): use a shorter --dir than \(vault.directory.path)")
            }
            // A full disk: online all the same, serving what the vault holds (PROTOCOL.md §10.6).
            let peer = try LocalPeer.open(vault, role: "daemon", creating: true, readingIfFull: true)
            let messenger = peer.messenger
            let server: LocalControlServerBox
            do {
                try await peer.goOnline(try vault.network)
                server = try await LocalControlServerBox.start(path: peer.vault.directory.controlSocket, peer: peer)
            } catch {
                await peer.close()
                throw error
            }
            let endpoint = peer.network?.localEndpoint.description ?? "?"
            let interfaces = await peer.network?.interfaces ?? []
            if output.json {
                struct Ready: Encodable {
                    var event = "ready"
                    var peer: String
                    var endpoint: String
                    var pid: Int32
                    /// Each discovery interface: its name and families, those it waits for (no
                    /// address yet), and why IPv6 failed there.
                    var interfaces: [DiscoveryInterface]
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                let ready = Ready(peer: messenger.localPeer.publicKey.hex, endpoint: endpoint, pid: getpid(), interfaces: interfaces)
                writeOut(try encoder.encode(ready) + Data("\n".utf8))
            } else {
                printOut("bookswarm daemon: peer \(messenger.localPeer.publicKey.hex) at udp \(endpoint), discovery on \(interfaces.map(\.description).joined(separator: ", ")), control \(server.path)")
                if interfaces.contains(where: { $0.name == DiscoveryInterface.anyLANName }) {
                    printOut("bookswarm daemon: no network interface is up with an IPv4 address yet; discovery starts on each as it comes (--interface NAME for an IPv6-only LAN, --interface lo for this machine alone)")
                }
            }
            await waitForTermination()
            await server.close()
            await peer.close()
        }
    }
}

/// Returns on SIGTERM or SIGINT.
func waitForTermination() async {
    for sig in [SIGTERM, SIGINT] { signal(sig, SIG_IGN) }
    let (stream, continuation) = AsyncStream<Void>.makeStream()
    let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0) }
    for source in sources {
        source.setEventHandler { continuation.yield() }
        source.resume()
    }
    for await _ in stream { break }
    for source in sources { source.cancel() }
}
