import ArgumentParser
import BookswarmControl
import Foundation
import Messenger
import Swarm
import Vault

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Chat in a task: history, live messages, a prompt that stays intact.",
        discussion: "Type a line and Enter to send it; /quit (or Ctrl-C, or Ctrl-D on an empty line) leaves. Without a daemon the network is up while the chat is open.")
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @OptionGroup var vault: VaultOptions

    func run() async throws {
        try await reportingErrors {
            let me = try await Control.call(ControlRequest(command: .id), vault, as: PeerIdentity.self).peer
            let session = try await FollowSession.open(task: task, options: vault, role: "chat")
            let terminal = ChatTerminal(prompt: "\(String(me.prefix(8)))> ")
            terminal.print("-- bookswarm chat \(task); /quit to leave --")
            terminal.start()
            let incoming = Task {
                for await item in session.items {
                    if item.event == .live, let summary = item.summary {
                        let online = summary.members.filter(\.online).map { Format.who($0.peer, name: $0.name, me: me) }
                        terminal.print("-- \(Format.title(summary.title, or: "(title not received yet)")): \(counted(summary.members.count, "member"))"
                                       + (online.isEmpty ? ", none online" : ", online: " + online.joined(separator: ", ")) + " --")
                    } else if let line = Format.line(item, me: me) {
                        terminal.print(line)
                    }
                }
            }
            for await line in terminal.lines() {
                do { try await session.send(line) } catch { terminal.print("! not sent: \(oneLine(error))") }
            }
            terminal.restore()
            session.close()
            incoming.cancel()
            await session.finish()
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
            let peer = try LocalPeer.open(vault, role: "daemon")
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
