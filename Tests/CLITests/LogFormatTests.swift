import Foundation
import BookswarmControl
import Messenger
import Testing
@testable import BookswarmCLI

/// How `log`, `log --follow` and `chat` print an entry of the log (`Format.line`).
@Suite struct LogFormatTests {
    static let ana = "1d0f2a77" + String(repeating: "0", count: 56)
    static let me = "db67fe8f" + String(repeating: "1", count: 56)

    @Test("a message is `[time] who: text`; a join is `[time] * who joined`, never in a message's form")
    func joinLines() {
        let message = LogEntry(author: Self.ana, id: "m", time: 0, text: "hello", book: "b", index: 3, name: "Ana")
        let join = LogEntry(author: Self.ana, id: "j", time: 0, text: "", book: "b", index: 2, name: "Ana", kind: .join)
        let clock = Format.clock(0)
        #expect(Format.line(message, me: Self.me) == "[\(clock)] Ana (1d0f2a77): hello")
        #expect(Format.line(join, me: Self.me) == "[\(clock)] * Ana (1d0f2a77) joined")
        var mine = join
        mine.author = Self.me
        #expect(Format.line(mine, me: Self.me) == "[\(clock)] * you joined")
        var unnamed = join
        unnamed.name = nil
        #expect(Format.line(unnamed, me: Self.me) == "[\(clock)] * 1d0f2a77 joined")
        // The follow stream's items print the same way (`log --follow`, `chat`).
        #expect(Format.line(FollowItem(event: .message, entry: join), me: Self.me) == "[\(clock)] * Ana (1d0f2a77) joined")
    }

    @Test("lines show the time of day; a line names the day where it changes, and none for lines of today")
    func dayLines() {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let day: UInt64 = 86_400_000
        var today = Format.DayLines()
        #expect(today.before(now) == nil && today.before(now + 1) == nil)
        var older = Format.DayLines()
        let lines = [now - 3 * day, now - 3 * day + 1, now - day, now].map { older.before($0) }
        #expect(lines == ["-- \(Format.day(now - 3 * day)) --", nil, "-- \(Format.day(now - day)) --", "-- \(Format.day(now)) --"])
        #expect(Format.day(0).count == 10 && Format.date(0).hasPrefix(Format.day(0)))
        // A follow stream: an entry at its time, an event as it happens, `live` never.
        var follow = Format.DayLines()
        let old = LogEntry(author: Self.ana, id: "m", time: now - 2 * day, text: "hi", book: "b", index: 1)
        #expect(follow.before(FollowItem(event: .message, entry: old)) == "-- \(Format.day(now - 2 * day)) --")
        #expect(follow.before(FollowItem(event: .live)) == nil)
        #expect(follow.before(FollowItem(event: .presence)) == "-- \(Format.day(now)) --")
    }

    @Test("inspect's label of a book name: task books shortened, any other name as it is")
    func bookLabels() {
        let task = String(repeating: "7", count: 32)
        #expect(InspectPrinter.label("\(Self.ana)-\(Self.me)-\(task)", me: Self.me) == "1d0f2a77→me task 77777777")
        #expect(InspectPrinter.label("\(Self.ana)-\(Self.me)-\(task).2", me: Self.me) == "1d0f2a77→me task 77777777 (generation 2)")
        #expect(InspectPrinter.label("\(Self.me)-\(Self.me)-\(task)", me: Self.me) == "journal of task 77777777")
        // A name a person chose (`task compile` takes any) that only looks like one: its third
        // part splits into no pieces at all. `task[0]` trapped inspect.
        let chosen = "compiled:" + String(repeating: "c", count: 55) + "-\(Self.me)-."
        #expect(!InspectPrinter.label(chosen, me: Self.me).isEmpty)
        #expect(!InspectPrinter.label("compiled:" + String(repeating: "c", count: 55) + "-\(Self.me)-...", me: Self.me).isEmpty)
    }

    @Test("a file is `[time] who attached NAME (SIZE): caption`, never in a message's form; its name shown escaped")
    func fileLines() {
        let roof = AttachedFile(name: "roof.jpg", size: 2_345_678, parts: 9, hash: "")
        var file = LogEntry(author: Self.ana, id: "f", time: 0, text: "above the window", book: "b", index: 9, name: "Ana", kind: .file, file: roof)
        let clock = Format.clock(0)
        #expect(Format.line(file, me: Self.me) == "[\(clock)] Ana (1d0f2a77) attached roof.jpg (2.3 MB): above the window")
        file.text = ""
        #expect(Format.line(file, me: Self.me) == "[\(clock)] Ana (1d0f2a77) attached roof.jpg (2.3 MB)")
        file.author = Self.me
        file.text = "two\nlines"
        #expect(Format.line(file, me: Self.me) == "[\(clock)] you attached roof.jpg (2.3 MB): two\n    | lines")
        // A name that reached the log broke no rule of §10.2, but is shown as any text is.
        file.file?.name = "a\u{200F}b"
        #expect(Format.line(file, me: Self.me).contains("attached a\\u{200f}b (2.3 MB)"))
        #expect([0, 1, 999, 1000, 1499, 99_949, 99_950, 999_499, 999_500, 2_345_678, 67_108_864, 1_000_000_000].map(Format.size)
                == ["0 bytes", "1 byte", "999 bytes", "1.0 KB", "1.5 KB", "99.9 KB", "100 KB", "999 KB", "1.0 MB", "2.3 MB", "67.1 MB", "1.0 GB"])
    }

    @Test("`files`: whole, or how much is here with its share in whole per cent, never 100 % while partial")
    func filesListLines() {
        let roof = AttachedFile(name: "roof.jpg", size: 2_345_678, parts: 9, hash: "")
        let entry = LogEntry(author: Self.ana, id: "f00dfeed99", time: 0, text: "", book: "b", index: 9, name: "Ana", kind: .file, file: roof)
        let start = "f00dfeed  \(Format.date(0))  Ana (1d0f2a77)  roof.jpg  2.3 MB  "
        #expect(Format.file(FileReport(entry: entry, held: 2_345_678, whole: true), me: Self.me) == start + "whole")
        #expect(Format.file(FileReport(entry: entry, held: 300_000, whole: false), me: Self.me) == start + "partial: 300 KB here (12 %)")
        #expect(Format.file(FileReport(entry: entry, held: 2_345_000, whole: false), me: Self.me) == start + "partial: 2.3 MB here (99 %)")
        #expect(Format.file(FileReport(entry: entry, held: 0, whole: false), me: Self.me) == start + "partial: 0 bytes here (0 %)")
    }

    @Test("a file of another member's that became whole: `[now] * NAME (SIZE) from who is here`")
    func wholeLines() {
        let roof = AttachedFile(name: "roof\u{1b}.jpg", size: 2_345_678, parts: 9, hash: "")
        let entry = LogEntry(author: Self.ana, id: "f", time: 0, text: "", book: "b", index: 9, name: "Ana", kind: .file, file: roof)
        let now = Date(timeIntervalSince1970: 1_000)
        #expect(Format.line(FollowItem(event: .whole, entry: entry), me: Self.me, now: now)
                == "[\(Format.clock(1_000_000))] * roof\\u{1b}.jpg (2.3 MB) from Ana (1d0f2a77) is here")
        #expect(Format.line(FollowItem(event: .whole), me: Self.me) == nil)
    }

    @Test("a withdrawn file: `[time] who withdrew a file` in its place, `withdrawn by its author` in `files`, a `*` line when it happens")
    func withdrawnLines() {
        let roof = AttachedFile(name: "roof.jpg", size: 2_345_678, parts: 9, hash: "")
        var entry = LogEntry(author: Self.ana, id: "f00dfeed99", time: 0, text: "above the window", book: "b", index: 9, name: "Ana",
                             kind: .file, file: roof)
        entry.withdraw()
        let clock = Format.clock(0)
        #expect(Format.line(entry, me: Self.me) == "[\(clock)] Ana (1d0f2a77) withdrew a file")
        var mine = entry
        mine.author = Self.me
        #expect(Format.line(mine, me: Self.me) == "[\(clock)] you withdrew a file")
        #expect(Format.file(FileReport(entry: entry, held: 0, whole: false), me: Self.me)
                == "f00dfeed  \(Format.date(0))  Ana (1d0f2a77)  withdrawn by its author")
        let now = Date(timeIntervalSince1970: 1_000)
        #expect(Format.line(FollowItem(event: .withdrawn, entry: entry), me: Self.me, now: now)
                == "[\(Format.clock(1_000_000))] * Ana (1d0f2a77) withdrew a file attached at \(clock) (file f00dfeed)")
        #expect(Format.line(FollowItem(event: .withdrawn), me: Self.me) == nil)
        #expect(Format.withdrew(WithdrawResult(entry: entry, file: roof)).hasPrefix("withdrew roof.jpg (2.3 MB), file f00dfeed: "))
    }
}
