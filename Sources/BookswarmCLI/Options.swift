import ArgumentParser
import BookswarmControl
import Foundation
import Swarm
import Vault

/// Options every command takes: which vault, and where its network runs.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The vault directory.",
        discussion: "Default: $BOOKSWARM_DIR, else $XDG_DATA_HOME/bookswarm, else ~/.local/share/bookswarm."))
    var dir: String?

    @Option(name: .long, help: ArgumentHelp("A LAN discovery interface: lo, a name such as eth0, or an IPv4 address; repeat for several.",
        discussion: "Default: every non-loopback, multicast-capable interface that is up with an IPv4 address, followed as interfaces come and go (with none yet, discovery waits). A named interface runs discovery over IPv4 and, where it has an IPv6 link-local address, over IPv6 too. The network options are used by `daemon`, and by `join`, `chat` and `log --follow` when no daemon of the vault runs (they then bring the network up themselves); other commands ignore them."))
    var interface: [String] = []

    @Flag(name: .customLong("ipv4-only"), help: "Run discovery and sessions over IPv4 only, even where interfaces have IPv6.")
    var ipv4Only = false

    // Optional, so that the help shows "any free port" once and not also "(default: 0)".
    @Option(name: .long, help: "The UDP port for sessions (default: any free port).")
    var port: UInt16?

    @Option(name: .customLong("discovery-port"), help: "The LAN discovery port (default: the project's; tests pick their own).")
    var discoveryPort: UInt16?

    @Option(name: .long, help: ArgumentHelp("A bootstrap node, HOST:PORT; repeat for several.",
        discussion: "Bootstrap nodes find peers beyond the LAN, punch holes through NATs and relay when no direct path opens. LAN discovery keeps running beside them, and a LAN path wins over a punched one, a punched one over a relay."))
    var bootstrap: [String] = []

    var directory: VaultDirectory { VaultDirectory.resolve(explicit: dir) }

    func validate() throws {
        // Port 0 would bind a random port nobody else looks at: discovery would hear nothing.
        if discoveryPort == 0 { throw ValidationError("--discovery-port takes a port from 1 to 65535") }
        // Checked as written whatever the command (resolving waits for the network's use):
        // a daemon already running ignores them, a mistake should not pass unseen.
        for node in bootstrap where !isNodeSyntax(node) {
            throw ValidationError("--bootstrap takes HOST:PORT (a port from 1 to 65535, an IPv6 address in brackets), not \"\(node)\"")
        }
    }

    /// Each `--interface` (a comma-separated list counts as several); nil for none given,
    /// the LAN default.
    var interfaceNames: [String]? {
        interface.isEmpty ? nil : interface.flatMap { $0.split(separator: ",").map(String.init) }
    }

    var network: VaultNetwork.Options {
        get throws {
            var options = VaultNetwork.Options(
                interfaces: interfaceNames,
                port: port ?? 0, discoveryPort: discoveryPort, bootstrapNodes: try bootstrap.map(resolveNode))
            options.ipv6 = !ipv4Only
            return options
        }
    }
}

/// Whether `text` reads as `HOST:PORT`: a literal endpoint, or a host name and a port
/// from 1 to 65535 (`resolveNode` looks the name up).
func isNodeSyntax(_ text: String) -> Bool {
    if let literal = Endpoint(text) { return literal.port != 0 }
    guard let colon = text.lastIndex(of: ":"), colon > text.startIndex, let port = UInt16(text[text.index(after: colon)...]), port != 0 else {
        return false
    }
    let host = text[..<colon]
    return host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
}

/// `HOST:PORT` → an endpoint: an IPv4 or bracketed IPv6 literal as is, a host name through
/// the system resolver (first IPv4 address, then IPv6).
func resolveNode(_ text: String) throws -> Endpoint {
    if let literal = Endpoint(text) {
        guard literal.port != 0 else { throw CLIError("bootstrap node \"\(text)\" has port 0") }
        return literal
    }
    guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port != 0, colon > text.startIndex else {
        throw CLIError("bootstrap node \"\(text)\" is not HOST:PORT")
    }
    let host = String(text[..<colon])
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
    var results: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &results) == 0, let first = results else {
        throw CLIError("bootstrap node \(host) cannot be resolved")
    }
    defer { freeaddrinfo(results) }
    var found: [Endpoint] = []
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let entry = cursor {
        if let address = entry.pointee.ai_addr {
            if entry.pointee.ai_family == AF_INET {
                let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                let bytes = withUnsafeBytes(of: v4) { Array($0) }
                found.append(Endpoint(addressBytes: bytes, port: port)!)
            } else if entry.pointee.ai_family == AF_INET6 {
                let v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                found.append(Endpoint(addressBytes: withUnsafeBytes(of: v6) { Array($0) }, port: port)!)
            }
        }
        cursor = entry.pointee.ai_next
    }
    guard let best = found.first(where: { $0.addressBytes.count == 4 }) ?? found.first else {
        throw CLIError("bootstrap node \(host) has no address")
    }
    return best
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of text (one document; `log --follow`: one object per line; `daemon`: its ready line).")
    var json = false
}
