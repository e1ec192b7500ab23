import ArgumentParser
import Vault

/// Options every command takes: which vault, and where its network runs.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The vault directory.",
        discussion: "Default: $BOOKSWARM_DIR, else $XDG_DATA_HOME/bookswarm, else ~/.local/share/bookswarm."))
    var dir: String?

    @Option(name: .long, help: ArgumentHelp("A LAN discovery interface: lo, a name such as eth0, or an IPv4 address; repeat for several.",
        discussion: "Default: every non-loopback, multicast-capable interface that is up. Used when this command brings the network up itself (no daemon running)."))
    var interface: [String] = []

    @Option(name: .long, help: "The UDP port for sessions (default: any free port).")
    var port: UInt16 = 0

    @Option(name: .customLong("discovery-port"), help: "The LAN discovery port (default: the project's; tests pick their own).")
    var discoveryPort: UInt16?

    var directory: VaultDirectory { VaultDirectory.resolve(explicit: dir) }

    var network: VaultNetwork.Options {
        VaultNetwork.Options(interfaces: interface.isEmpty ? nil : interface.flatMap { $0.split(separator: ",").map(String.init) },
                             port: port, discoveryPort: discoveryPort)
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (one document; `--follow` prints one JSON object per line).")
    var json = false
}
