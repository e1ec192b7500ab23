import Foundation
@testable import SwarmNIO
import Testing

/// The kernel's notices of interface changes (`InterfaceWatcher`): that a change makes
/// discovery look at once is tested in the namespace bed (`looksOnChange`); here, that a
/// watcher costs nothing once stopped — a daemon starts and stops discovery as often as
/// its network comes and goes.
@Suite struct InterfaceWatcherTests {
    static func count(_ directory: String) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: directory).count) ?? 0 }

    @Test func aStoppedWatcherLeavesNoDescriptorAndNoThread() async throws {
        let descriptors = Self.count("/proc/self/fd")
        let threads = Self.count("/proc/self/task")
        for _ in 0..<200 {
            let watcher = try #require(InterfaceWatcher { })
            watcher.stop()
            watcher.stop()  // idempotent
        }
        // Each thread closes its descriptors as it ends, a moment after `stop`.
        var settled = false
        for _ in 0..<200 where !settled {
            settled = Self.count("/proc/self/fd") <= descriptors + 5 && Self.count("/proc/self/task") <= threads + 5
            if !settled { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(settled, "descriptors \(descriptors) → \(Self.count("/proc/self/fd")), threads \(threads) → \(Self.count("/proc/self/task"))")
    }
}
