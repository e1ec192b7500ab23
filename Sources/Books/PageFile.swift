import Foundation
import Sodium
import Synchronization

/// `<directory>/books.pages`: the bytes of the pages a reader stores (PROTOCOL.md §4.10),
/// appended one answer at a time, each page's row naming where its bytes are (`at`,
/// `size`). A verified answer is then written once — by one `pwrite` here, its rows a
/// few dozen bytes each in the database — instead of twice through SQLite (the WAL, then
/// the checkpoint) with every B-tree page it fills: end-to-end replication of 1 KiB pages
/// ran about half again as fast (BENCHMARKS.md, session 17).
///
/// Ordering, which is all the crash safety there is to it: an answer's bytes are written
/// before the transaction naming them commits, so a killed process leaves at worst one
/// answer's bytes that no row names at the file's end (never read; the next open appends
/// after them), and a transaction rolled back leaves its bytes to the next answer. The file
/// is synced before each checkpoint pass and when the store closes; the end that was synced
/// then is recorded in the database (`page_file.synced`) by the next verified answer's
/// transaction, and the rows of the answers written beyond it (`page_file_write`) are
/// checked when the store opens — after a power loss, bytes the database says were written
/// may not be (§4.10).
///
/// The descriptor is used from any thread (`pread`/`pwrite` take their offset); `end`
/// changes only under the store's lock.
final class PageFile: @unchecked Sendable {
    static let fileName = "books.pages"
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` (linux/falloc.h), which Glibc's module
    /// does not export.
    static let punchHoleKeepSize: Int32 = 0x02 | 0x01

    let path: String
    private let descriptor: Int32
    let writable: Bool
    /// Where the next answer's bytes go: the file's size at open, then past every write.
    private let endOffset: Atomic<UInt64>
    /// The end as of the last `sync` that succeeded: every byte before it is on disk.
    private let durableOffset = Atomic<UInt64>(0)
    /// A sync failed: `durableOffset` no longer moves (`sync`).
    private let syncFailed = Atomic<Bool>(false)
    /// The end last recorded in the database as on disk (`page_file.synced`); under the
    /// store's lock.
    var recorded: UInt64 = 0
    /// Bytes written and not yet synced from which the checkpointer syncs the file even
    /// though the WAL is small (rows of pages in the file are): it bounds what the check at
    /// open reads after a crash.
    static let syncBacklog: UInt64 = 64 << 20
    var backlog: UInt64 { end &- durableEnd }
    /// Ranges of deleted books' pages to give back to the file system once no backup
    /// reads the file (`free`, `backupBegins`).
    private let pending = Mutex<(backups: Int, ranges: [Range<UInt64>])>((0, []))

    /// Opens (creating, when `writable`) the file in `directory`. A store that only reads
    /// needs no file where it has none (no row names one): `nil` then.
    static func open(directory: String, writable: Bool) throws -> PageFile? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let fd = Glibc.open(path, writable ? O_RDWR | O_CREAT | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno
            if !writable && reason == ENOENT { return nil }
            throw PageFile.failure("cannot open", reason, path: path)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = errno
            Glibc.close(fd)
            throw PageFile.failure("cannot read the size of", reason, path: path)
        }
        return PageFile(path: path, descriptor: fd, writable: writable, end: UInt64(info.st_size))
    }

    private init(path: String, descriptor: Int32, writable: Bool, end: UInt64) {
        self.path = path
        self.descriptor = descriptor
        self.writable = writable
        endOffset = Atomic(end)
    }

    deinit { Glibc.close(descriptor) }

    /// The offset the next `write` puts its bytes at.
    var end: UInt64 { endOffset.load(ordering: .acquiring) }

    /// The end as of the last `sync` that succeeded.
    var durableEnd: UInt64 { durableOffset.load(ordering: .acquiring) }

    /// Writes `bytes` at `end` and returns where they begin; `end` moves past them only with
    /// `commit`, once the rows naming them are committed, so that a transaction rolled back
    /// leaves its bytes to be written over. A failure names the file: `diskFull` when the
    /// disk is full, as from SQLite.
    func write(_ bytes: UnsafeRawBufferPointer) throws -> UInt64 {
        let start = end
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(start) + off_t(done))
            guard written > 0 else {
                if written < 0 && errno == EINTR { continue }
                throw PageFile.failure("cannot write to", written < 0 ? errno : EIO, path: path)
            }
            done += written
        }
        return start
    }

    /// Moves `end` past bytes written by `write` whose rows are committed.
    func commit(through newEnd: UInt64) {
        if newEnd > end { endOffset.store(newEnd, ordering: .releasing) }
    }

    /// Reads `count` bytes at `offset` into a buffer valid for `body`. Bytes the file does not
    /// hold (it was cut short) are `corruptDatabase` naming it.
    func read<R>(at offset: UInt64, count: Int, page: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withUnsafeTemporaryAllocation(byteCount: max(count, 1), alignment: 16) { buffer in
            var done = 0
            while done < count {
                let n = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PageFile.failure("cannot read page \(page) from", errno, path: path)
                }
                guard n > 0 else {
                    throw BooksError(.corruptDatabase, "page \(page)'s \(count) bytes at offset \(offset) lie beyond the file's end", file: path)
                }
                done += n
            }
            return try body(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// Puts everything written so far on disk (`fdatasync`) and returns the end it covers.
    ///
    /// Once a sync has failed, `durableEnd` stays where it was for as long as the file is
    /// open: Linux reports a failed write-back once, to the next sync, and a later sync
    /// succeeds although the bytes it failed to write are lost. Only the check at the next
    /// open can tell them (§4.10).
    @discardableResult
    func sync() throws -> UInt64 {
        let covered = end
        guard fdatasync(descriptor) == 0 else {
            let reason = errno
            syncFailed.store(true, ordering: .releasing)
            throw PageFile.failure("cannot sync", reason, path: path)
        }
        if covered > durableEnd, !syncFailed.load(ordering: .acquiring) { durableOffset.store(covered, ordering: .releasing) }
        return covered
    }

    /// Gives the bytes of `ranges` (a deleted book's pages, their rows gone) back to the file
    /// system, keeping every offset (`fallocate` punching holes); after the backups reading
    /// the file now have finished. Best effort: a file system that cannot punch keeps them.
    func free(_ ranges: [Range<UInt64>]) {
        guard writable, !ranges.isEmpty else { return }
        let now: [Range<UInt64>] = pending.withLock { p in
            if p.backups > 0 {
                p.ranges += ranges
                return []
            }
            return ranges
        }
        punch(now)
    }

    /// A backup copies pages from the file from now until `backupEnds`: no hole is punched
    /// meanwhile, since its snapshot of the database may still name the bytes.
    func backupBegins() { pending.withLock { $0.backups += 1 } }

    func backupEnds() {
        let now: [Range<UInt64>] = pending.withLock { p in
            p.backups -= 1
            guard p.backups == 0 else { return [] }
            defer { p.ranges = [] }
            return p.ranges
        }
        punch(now)
    }

    private func punch(_ ranges: [Range<UInt64>]) {
        for range in PageFile.merged(ranges) where !range.isEmpty {
            _ = punchHole(descriptor, PageFile.punchHoleKeepSize, Int64(range.lowerBound), Int64(range.count))
        }
    }

    /// `ranges` sorted, with ranges that touch or overlap made one.
    static func merged(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, range.lowerBound <= last.upperBound {
                result[result.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }

    static func failure(_ what: String, _ reason: Int32, path: String) -> BooksError {
        switch reason {
        case ENOSPC: BooksError(.diskFull, "the disk is full: \(what) the page file: \(errnoText(reason))", file: path)
        case EDQUOT: BooksError(.diskFull, "the disk quota is used up: \(what) the page file: \(errnoText(reason))", file: path)
        case EROFS, EACCES, EPERM: BooksError(.storageReadOnly, "\(what) the page file: \(errnoText(reason))", file: path)
        default: BooksError(.storage, "\(what) the page file: \(errnoText(reason))", file: path)
        }
    }
}

/// glibc's `fallocate` (a GNU extension the Glibc module leaves out), 64-bit offsets.
@_silgen_name("fallocate64")
private func punchHole(_ fd: Int32, _ mode: Int32, _ offset: Int64, _ length: Int64) -> Int32
