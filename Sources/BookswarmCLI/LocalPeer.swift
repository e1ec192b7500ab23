import BookswarmControl
import Foundation
import Messenger
import Swarm
import Vault

/// A vault opened by this process, with its messenger; online while `network` is set.
/// The daemon keeps one for its lifetime; a command without a daemon opens one for its own
/// duration (taking the vault's lock, so it never runs beside a daemon of the same vault).
final class LocalPeer: @unchecked Sendable {
    let vault: Vault
    let messenger: Messenger
    private(set) var network: VaultNetwork?
    private var running: [Task<Void, Never>] = []

    init(vault: Vault) throws {
        self.vault = vault
        do {
            messenger = try Messenger(identity: vault.identity.keyPair, store: vault.store, stateFile: vault.messengerStateFile)
        } catch {
            vault.close()
            throw error
        }
    }

    /// `creating`: whether this command may make a new vault where there is none (`id`,
    /// `name`, `task new`, `join`, `daemon`). The others — which only read or add to what a
    /// vault holds — refuse an empty place rather than make up a new identity there, so a
    /// mistyped `--dir` is an error, not an empty `tasks` that looks like everything is lost.
    static func open(_ options: VaultOptions, role: String, creating: Bool) throws -> LocalPeer {
        let directory = options.directory
        if !creating && directory.holdsNoVault {
            throw CLIError("no vault in \(directory.path): check --dir (or $BOOKSWARM_DIR); "
                           + "bookswarm id, name, task new, join or daemon makes a new one")
        }
        return try LocalPeer(vault: Vault.open(directory, role: role))
    }

    /// Brings the network up: discovery, sessions, the connection protocol, replication.
    func goOnline(_ options: VaultNetwork.Options) async throws {
        let network = try await VaultNetwork.start(identity: vault.identity, options: options)
        self.network = network
        let messenger = messenger
        running.append(Task { try? await network.run() })
        running.append(Task {
            await messenger.run(swarm: network.swarm, clock: network.clock,
                                describePath: { [network] in network.describePath($0) })
        })
        // Let the messenger join its tasks before the caller acts.
        for _ in 0..<100 where !(await messenger.isOnline) { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// Stops the network (telling peers), then closes the store and releases the lock.
    func close() async {
        if let network { await network.stop() }
        for task in running { await task.value }
        running = []
        network = nil
        vault.close()
    }
}
