import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a killed process leaves behind under a name that carries its process id — a
/// backup's staging directory, a save's hidden file, a fuzzer's scratch directory — and
/// that no process will finish or remove: its process is gone.
public enum Leftovers {
    /// Whether no process `pid` exists now (this process and nonsense ids never qualify).
    public static func processIsGone(_ pid: Int32) -> Bool {
        pid > 0 && pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Removes each entry of `parent` (file or directory) named `prefix`, a process id and,
    /// when `numbered`, `-` and a number, whose process is gone.
    public static func remove(in parent: String, prefix: String, numbered: Bool = false) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
            guard rest.count == (numbered ? 2 : 1), let pid = Int32(rest[0]), !numbered || UInt32(rest[1]) != nil,
                  processIsGone(pid) else { continue }
            try? FileManager.default.removeItem(atPath: (parent as NSString).appendingPathComponent(entry))
        }
    }
}
