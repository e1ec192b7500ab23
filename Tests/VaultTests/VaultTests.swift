import Foundation
import Testing
import Sodium
@testable import Vault

@Suite struct VaultTests {
    func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "bookswarm-vault-\(UUID().uuidString)"
        return path
    }

    @Test func resolvesDirectoryInDocumentedOrder() {
        #expect(VaultDirectory.resolve(explicit: "/a/b", environment: ["BOOKSWARM_DIR": "/c"]).path == "/a/b")
        #expect(VaultDirectory.resolve(explicit: nil, environment: ["BOOKSWARM_DIR": "/c", "XDG_DATA_HOME": "/x"]).path == "/c")
        #expect(VaultDirectory.resolve(explicit: nil, environment: ["XDG_DATA_HOME": "/x", "HOME": "/h"]).path == "/x/bookswarm")
        #expect(VaultDirectory.resolve(explicit: nil, environment: ["XDG_DATA_HOME": "relative", "HOME": "/h"]).path == "/h/.local/share/bookswarm")
        #expect(VaultDirectory.resolve(explicit: nil, environment: ["HOME": "/h"]).path == "/h/.local/share/bookswarm")
        // Relative: from the current directory, made absolute ("./" and ".." resolved).
        #expect(VaultDirectory.resolve(explicit: "./v/../w", environment: [:], currentDirectory: "/home/ana").path == "/home/ana/w")
        #expect(VaultDirectory.resolve(explicit: nil, environment: ["BOOKSWARM_DIR": "v"], currentDirectory: "/srv").path == "/srv/v")
    }

    @Test func identityIsCreatedOnceAndReloaded() throws {
        let dir = VaultDirectory(path: temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        try dir.prepare()
        let first = try Identity.loadOrCreate(in: dir)
        let again = try Identity.loadOrCreate(in: dir)
        #expect(first.keyPair.publicKey == again.keyPair.publicKey)
        #expect(first.masterSecret == again.masterSecret)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.identityFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // The master secret is not the seed.
        #expect(first.masterSecret != first.keyPair.seed)
    }

    @Test func refusesAnIdentityOthersCanRead() throws {
        let dir = VaultDirectory(path: temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        try dir.prepare()
        _ = try Identity.loadOrCreate(in: dir)
        chmod(dir.identityFile, 0o644)
        #expect(throws: VaultError(.identityTooOpen, "")) { try Identity.loadOrCreate(in: dir) }
        do { _ = try Identity.loadOrCreate(in: dir) } catch {
            #expect(error.message.contains(dir.identityFile))
            #expect(error.message.contains("chmod 600"))
        }
    }

    @Test func refusesACorruptIdentityAndKeepsIt() throws {
        let dir = VaultDirectory(path: temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        try dir.prepare()
        _ = FileManager.default.createFile(atPath: dir.identityFile, contents: Data("garbage\n".utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: VaultError(.identityCorrupt, "")) { try Identity.loadOrCreate(in: dir) }
        #expect(FileManager.default.contents(atPath: dir.identityFile) == Data("garbage\n".utf8))
    }

    @Test func secondOwnerIsRefusedWithTheFirstOnesPid() throws {
        let dir = VaultDirectory(path: temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        try dir.prepare()
        let lock = try VaultLock.acquire(dir, role: "daemon")
        do {
            _ = try VaultLock.acquire(dir, role: "send")
            Issue.record("second lock acquired")
        } catch {
            #expect(error.code == .locked)
            #expect(error.message.contains("daemon (pid \(getpid()))"))
        }
        lock.release()
        _ = try VaultLock.acquire(dir, role: "send")
    }

    @Test func unusableDirectoryIsNamed() throws {
        let file = temporaryDirectory()
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(throws: VaultError(.directoryUnusable, "")) { try VaultDirectory(path: file).prepare() }
    }
}
