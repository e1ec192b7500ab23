import Foundation
import Testing
@testable import Vault

/// `Vault.backup(to:stopped:)` asked to stop (a daemon's backup whose client went away,
/// PROTOCOL.md §10.7).
@Suite struct VaultBackupTests {
    /// Whichever step it is asked to stop at, the backup leaves neither the destination nor
    /// its hidden directory (which holds the secret key) and says `.cancelled`; asked at
    /// every step and never told to stop, it completes.
    @Test func aBackupAskedToStopLeavesNothingAtWhicheverStep() throws {
        let parent = NSTemporaryDirectory() + "bookswarm-backup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let vault = try Vault.open(VaultDirectory(path: parent + "/vault"), role: "test")
        defer { vault.close() }
        try vault.store.createOrOpen(name: "notes").append(Array("kept".utf8))
        let copy = parent + "/copy", staging = Vault.backupStaging(for: parent + "/copy")
        var asked = 0
        let done = try vault.backup(to: copy) { asked += 1; return false }
        #expect(done.books == 1 && asked == 4, "asked before each of its 4 steps")
        try FileManager.default.removeItem(atPath: copy)
        for step in 1...4 {
            var asked = 0, half = false
            #expect(throws: VaultError(.cancelled, "")) {
                try vault.backup(to: copy) {
                    asked += 1
                    half = half || FileManager.default.fileExists(atPath: staging + "/identity.key")
                    return asked == step
                }
            }
            #expect(half == (step > 1), "step \(step): the half-built copy was there to remove")
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["vault"], "step \(step)")
        }
    }
}
