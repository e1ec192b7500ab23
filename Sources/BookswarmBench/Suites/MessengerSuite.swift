import Books
import Foundation
import Messenger
import Sodium
import Swarm

/// `Tools/bench messenger`: what the messenger's everyday calls cost as a task's history
/// grows — a task of two members holding N chat messages (N = 1 000, 10 000, 100 000),
/// each in the author's journal and in its pairwise book for the other member, as a
/// message is written (PROTOCOL.md §10.2). For each N:
/// * `log` cold (a messenger just opened: every page read and decoded) and warm, and the
///   heap the messenger holds after the cold read (`RssAnon` before and after, each after
///   `malloc_trim`: the log kept, not what the read used and freed);
/// * `summary` (what `tasks` shows) and `markRead`, warm;
/// * one change as a follower (`log --follow`, `chat`) handles it: a message sent, then
///   the log and `markRead` (the figure);
/// * `send` of one more message (durable: one fsync per book written).
/// Warm figures are the median of 5 calls, `send` of 20.
enum MessengerBench {
    static var suite: Suite {
        Suite(name: "messenger", summary: "log, summary, follow step and send in a task of 1k, 10k, 100k messages") {
            for count in [1000, 10_000, 100_000] { try await measure(messages: count) }
        }
    }

    static func measure(messages count: Int) async throws {
        let directory = NSTemporaryDirectory() + "bench-messenger-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = SecretBytes(copying: [UInt8](repeating: 7, count: 32))
        let identity = try Ed25519.KeyPair(seed: secret)
        let me = PeerID(identity.publicKey)
        let other = PeerID(try Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: 8, count: 32))).publicKey)
        var store = try BookStore.open(directory: directory, masterSecret: secret)
        var messenger = try Messenger(identity: identity, store: store)
        let task = try await messenger.resolveTask(try await messenger.newTask(title: "bench").id)

        // The history, written straight into the books in batches (a `send` per message
        // would take one fsync each).
        let journal = try store.createOrOpen(name: TaskBookName.journal(of: me, task: task).text)
        let pairwise = try store.createOrOpen(name: TaskBookName(author: me, reader: other, task: task).text)
        let filled = now()
        for book in [journal, pairwise] {
            var previous: [UInt8]? = try book.length > 0 ? PageHash.leaf(book.get(book.length - 1)!).bytes : nil
            var written = 0
            while written < count {
                let batch = min(2000, count - written)
                var pages: [[UInt8]] = []
                pages.reserveCapacity(batch)
                for offset in 0..<batch {
                    let n = written + offset
                    let page = MessengerPage(
                        head: .init(author: me.bytes, book: book.id.bytes, index: book.length + UInt64(offset), previous: previous),
                        kind: .chat, data: Array("message \(n): the roof over the east wing leaks again".utf8),
                        meta: .init(time: 1_700_000_000_000 + UInt64(n), fields: ["id": String(format: "%024x", n)]))
                        .encoded()
                    previous = PageHash.leaf(page).bytes
                    pages.append(page)
                }
                try book.append(contentsOf: pages)
                written += batch
            }
        }
        Report.note("\(count) messages: history written in \(String(format: "%.1f", now() - filled)) s")

        // A fresh messenger over the same store: nothing cached.
        store.close()
        store = try BookStore.open(directory: directory, masterSecret: secret)
        defer { store.close() }
        messenger = try Messenger(identity: identity, store: store)
        _ = malloc_trim(0)
        let heapBefore = procStatusBytes("RssAnon")
        let coldStart = now()
        let entries = try await messenger.log(of: task)
        let cold = (now() - coldStart) * 1000
        // What the read left free goes back to the system first: what is counted is held.
        _ = malloc_trim(0)
        let heapHeld = procStatusBytes("RssAnon") - heapBefore
        guard entries.count >= count else { throw BenchFailure("the log holds \(entries.count) entries, not \(count)") }
        func median(_ times: Int, _ body: () async throws -> Void) async rethrows -> Double {
            var samples: [Double] = []
            for _ in 0..<times {
                let start = now()
                try await body()
                samples.append((now() - start) * 1000)
            }
            return percentile(samples, 0.5)
        }
        let warm = try await median(5) { _ = try await messenger.log(of: task) }
        let summary = try await median(5) { _ = try await messenger.summary(of: task) }
        let markRead = try await median(5) { try await messenger.markRead(task) }
        let send = try await median(20) { _ = try await messenger.send("one more", to: task) }
        // A follower's step after a change: a message more, then the log and `markRead`.
        var steps: [Double] = []
        for _ in 0..<5 {
            _ = try await messenger.send("and one more", to: task)
            let start = now()
            _ = try await messenger.log(of: task)
            try await messenger.markRead(task)
            steps.append((now() - start) * 1000)
        }
        let followStep = percentile(steps, 0.5)
        let label = count >= 1000 ? "\(count / 1000)k" : "\(count)"
        Report.result("messenger.log_cold_\(label)", cold, "ms")
        Report.result("messenger.log_warm_\(label)", warm, "ms")
        Report.result("messenger.log_heap_\(label)", Double(heapHeld) / 1e6, "MB")
        Report.result("messenger.summary_\(label)", summary, "ms")
        Report.result("messenger.mark_read_\(label)", markRead, "ms")
        Report.result("messenger.follow_step_\(label)", followStep, "ms")
        Report.result("messenger.send_\(label)", send, "ms")
    }
}

/// glibc's `malloc_trim`, which the Glibc module does not export: gives free heap back to
/// the system, so that `RssAnon` counts what is held.
@_silgen_name("malloc_trim") private func malloc_trim(_ pad: Int) -> Int32
