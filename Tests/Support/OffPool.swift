import Foundation

/// Runs blocking work — a command that takes seconds, a fixture of 100 000 pages — on a
/// thread of its own and waits for it without holding a thread of the cooperative pool.
/// The pool has one thread per core (two on the project's machines), and the tests run in
/// parallel on it: a test body that blocks a pool thread for seconds stalls every other
/// test's tasks meanwhile, and tests that measure time (sessions, timeouts) then fail for
/// want of a thread, not for a fault of the code they test.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
