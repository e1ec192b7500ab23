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
    ///
    /// `readingIfUnwritable`: for a command that only reads (`ControlRequest.onlyReads`), a
    /// vault that cannot be written — its disk full, its file system read-only — is opened
    /// for reading only (`Vault.open`), and a note on stderr says so, once per process.
    /// `readingIfFull`, for a process that goes online (a daemon, a chat or `log --follow`
    /// without one): the same when the disk is full (only), the note
    /// saying what such a process does meanwhile (`Messenger+FullDisk.swift`).
    static func open(_ options: VaultOptions, role: String, creating: Bool, readingIfUnwritable: Bool = false,
                     readingIfFull: Bool = false) throws -> LocalPeer {
        let directory = options.directory
        if !creating && directory.holdsNoVault {
            throw CLIError("no vault in \(directory.path): check --dir (or $BOOKSWARM_DIR); "
                           + "bookswarm id, name, task new, join or daemon makes a new one")
        }
        // A daemon exists to be online: an --interface that names nothing here is a mistake
        // on its command line (exit 64), said before the vault is opened — and, where there
        // is none, before one is made for nothing.
        if role == "daemon", let names = options.interfaceNames {
            do { try VaultNetwork.resolveInterfaces(names) } catch { throw UsageError(oneLine(error)) }
        }
        let isNew = directory.holdsNoVault
        let peer = try LocalPeer(vault: Vault.open(directory, role: role, readingIfUnwritable: readingIfUnwritable,
                                                   readingIfFull: readingIfFull))
        // A mistyped --dir makes a new identity as readily as a first run: say so.
        if isNew {
            FileHandle.standardError.write(Data("bookswarm: note: created a new vault in \(directory.path) (a new identity)\n".utf8))
        }
        if let refusal = peer.vault.store.writeRefusal, noted.claim() {
            let note = readingIfFull
                ? "bookswarm: note: \(oneLine(refusal)); online without writing to the vault: what it holds is shown and served, "
                    + "and nothing new is stored, sent or marked read until there is space; then all goes on by itself\n"
                : "bookswarm: note: \(oneLine(refusal)); reading the vault without writing to it "
                    + "(read markers are not updated; commands that write fail until it can be written)\n"
            FileHandle.standardError.write(Data(note.utf8))
        }
        return peer
    }

    /// Whether the note of a vault read without writing was printed (`open`).
    private static let noted = Once()

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
