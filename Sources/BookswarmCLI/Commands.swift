import ArgumentParser
import BookswarmControl
import Foundation
import Messenger
import Swarm
import Vault

struct IdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "id", abstract: "Print this peer's id (its public key).")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let identity = try await Control.call(ControlRequest(command: .id), vault, as: PeerIdentity.self)
            if output.json { try printJSON(identity) } else {
                printOut(identity.peer + (identity.name.map { "  " + Format.shown($0, continuation: nil) } ?? ""))
            }
        }
    }
}

struct NameCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "name", abstract: "Show or choose the name the members of your tasks see.",
        discussion: """
            The name goes into every book you write in your tasks, so members see it once they \
            have replicated it (now if they are online, else later); they always see the first \
            8 hex digits of your peer id beside it, since anyone can choose any name. \
            1…\(Messenger.maxNameBytes) bytes on one line. Without NAME, prints the current one.
            """)
    @Argument(help: "The name to choose.") var name: String?
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let identity = try await Control.call(ControlRequest(command: .name, text: name), vault, as: PeerIdentity.self)
            if output.json { try printJSON(identity); return }
            if let name = identity.name { printOut(Format.shown(name, continuation: nil)) } else {
                printOut("no name chosen yet: bookswarm name NAME")
            }
        }
    }
}

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Copy this vault, as it is now, to a new directory (with a daemon running too).",
        discussion: """
            The copy holds the identity (your secret key: keep the copy as safe as the vault), \
            every book as one consistent snapshot, and the read markers. Appends and replication \
            go on meanwhile. A file copy of a vault whose daemon runs can catch the store in the \
            middle of a write; this cannot. To use the copy, give it as the vault (--dir DIR), \
            or move it into the vault's place while no bookswarm process runs: instead of the \
            vault, never beside it (the two would be the same peer writing different pages \
            into the same books, which the members refuse as forks).
            """)
    @Argument(help: "The new directory to write the copy to (it must not exist).") var destination: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        // "" would be the current directory, refused as existing: say what is wrong instead.
        if destination.isEmpty { throw ValidationError("the backup's destination is empty: give a new directory") }
    }

    func run() async throws {
        try await reportingErrors {
            let request = ControlRequest(command: .backup, path: absolutePath(destination))
            // Ctrl-C or SIGTERM (`interruptibly`): the half-built copy, secret key included,
            // goes with it rather than stay hidden beside the destination.
            let staging = Vault.backupStaging(for: absolutePath(destination))
            let vault = vault
            let result = try await interruptibly(vault, { try await Control.call(request, vault, as: VaultBackup.self) }) {
                try? FileManager.default.removeItem(atPath: staging)
                return !FileManager.default.fileExists(atPath: staging)
            }
            if output.json { try printJSON(result); return }
            let size = ByteCountFormatter.string(fromByteCount: Int64(clamping: result.bytes), countStyle: .file)
            printOut("backed up to \(result.path): \(counted(result.books, "book")), \(size)")
        }
    }
}

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task", abstract: "Create, leave, move on (remove members) and compile tasks; check compiled books.",
        subcommands: [TaskNewCommand.self, TaskLeaveCommand.self, TaskRemoveCommand.self, TaskCompileCommand.self, TaskCheckCommand.self])
}

struct TaskLeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave", abstract: "Leave a task: delete its messages and books from this vault.",
        discussion: """
            The other members keep theirs and are not told. Without --yes, says what would be \
            deleted and changes nothing. Joining again with the invite code brings the \
            messages back from the members.
            """)
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Flag(help: "Really leave and delete.") var yes = false
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let left = try await Control.call(ControlRequest(command: .taskLeave, task: task, confirm: yes), vault, as: LeaveResult.self)
            if output.json { try printJSON(left); return }
            printOut("left    \(left.task)  \(Format.title(left.title, or: "(title not received)")): \(counted(left.messages, "message")) "
                     + "and \(counted(left.books, "book")) deleted")
        }
    }
}

struct TaskRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Move a task on to a new one without some members.",
        discussion: """
            Nobody can be put out of a task: its invite code lets every member in, for good. \
            This creates a new task with the same title, of which you are the creator, and \
            takes every other member you know in the task along: their bookswarm joins it by \
            itself when it gets your books (the new invite travels sealed to each of them). \
            Those left out see that the task moved on, and nothing they can join. The old task \
            stays as it is, with its history; `tasks` shows where it moved on to.
            """)
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Argument(help: "The members to leave out: each a peer id, 8 hex digits of one or more, or a display name (any case, or its beginning).")
    var members: [String] = []
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        // A mistake on the command line (exit 64), before anything is opened.
        if members.isEmpty { throw ValidationError("name the members to leave out of the task's successor") }
    }

    func run() async throws {
        try await reportingErrors {
            let moved = try await Control.call(ControlRequest(command: .taskRemove, task: task, members: members), vault, as: MoveResult.self)
            if output.json { try printJSON(moved); return }
            let without = (moved.entry.without ?? []).map { Format.who($0, name: moved.entry.names?[$0], me: "") }.joined(separator: ", ")
            printOut("task    \(moved.successor.id)  \(Format.title(moved.successor.title, or: ""))")
            printOut("without \(without); \(counted(moved.entry.with?.count ?? 0, "member")) taken along (they join it by themselves)")
        }
    }
}

struct TaskNewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "new", abstract: "Create a task; print its id and invite code.")
    @Argument(help: "The task's title: 1–256 bytes on one line.") var title: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let task = try await Control.call(ControlRequest(command: .taskNew, text: title), vault, as: TaskSummary.self)
            if output.json { try printJSON(task); return }
            printOut("task    \(task.id)  \(Format.title(task.title, or: ""))")
            printOut("invite  \(task.invite)")
        }
    }
}

struct TaskCompileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Copy the task's messages into a book of your own, each copy verifiable against its author.")
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Argument(help: "The compiled book's name.") var name: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let result = try await Control.call(ControlRequest(command: .compile, task: task, name: name), vault, as: CompileResult.self)
            if output.json { try printJSON(result); return }
            printOut("\(result.name)  \(result.book)  +\(counted(result.copied, "copy", plural: "copies")), \(counted(Int(result.length), "page"))")
            if result.skipped > 0 {
                printOut("\(result.skipped) messages not copied: no verifiable proof of them (their book is forked), or too large to copy with their proof")
            }
        }
    }
}

struct TaskCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Re-verify every copy of a compiled book against its original author's signature.")
    @Argument(help: "The compiled book's name.") var name: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let checks = try await Control.call(ControlRequest(command: .check, name: name), vault, as: [CopyCheck].self)
            if output.json { try printJSON(checks) } else {
                for c in checks {
                    printOut("\(c.index)  \(c.authentic ? "authentic" : "NOT AUTHENTIC")  copy of \(c.originalBook.prefix(16))…[\(c.originalIndex)]")
                }
            }
            let bad = checks.filter { !$0.authentic }.count
            if bad > 0 { throw CLIError("\(bad) of \(checks.count) copies do not verify against their authors") }
        }
    }
}

struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join", abstract: "Join the task of an invite code.",
        discussion: "Waits (at most --wait seconds) until the task's creator is reached and its book arrives; without a daemon the network is up meanwhile.")
    @Argument(help: "The invite code (bsw1-…).") var code: String
    // Unconditional: `--wait -1` is a wrong number of seconds, not a missing value.
    @Option(parsing: .unconditional, help: "How long to wait for the creator, in seconds (0: do not wait).") var wait: Double = 15
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        // A day at most: enough for any join, and far from what a Duration can hold.
        guard wait.isFinite, wait >= 0, wait <= 86_400 else {
            throw ValidationError("--wait takes seconds from 0 to 86400, not \(wait)")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let invite = try Control.parseInvite(code)
            let deadline = ContinuousClock.now + .milliseconds(Int64(max(0, wait) * 1000))
            /// Reached: the creator's book is being read and its title page arrived.
            func reached(_ summary: TaskSummary) -> Bool {
                summary.members.contains { $0.peer == invite.creator.publicKey.hex && $0.readsFrom } && summary.title != nil
            }
            // A wait that lasts is said on stderr, once: silence for up to --wait seconds looks
            // like a hang. A creator reached at once (within `quiet`) goes unmentioned.
            var started = ContinuousClock.now
            let quiet: Duration = .seconds(1)
            let waiting = Once()
            func sayWaiting() {
                guard ContinuousClock.now - started >= quiet, waiting.claim() else { return }
                let seconds = wait.rounded() == wait ? "\(Int(wait))" : "\(wait)"
                FileHandle.standardError.write(Data(("bookswarm: joined; waiting up to \(seconds) s for the task's creator to send "
                    + "the title (Ctrl-C stops waiting; the task is kept)\n").utf8))
            }
            var summary: TaskSummary
            /// Interfaces where discovery could not run at all while we waited (no address).
            var idle: [DiscoveryInterface] = []
            if let answer = try await Control.callDaemon(ControlRequest(command: .join, text: code), directory: vault.directory) {
                summary = try JSONDecoder().decode(TaskSummary.self, from: answer)
                started = .now
                // One's own invite (the creator joining its own task): nobody to wait for.
                let own = try await Control.call(ControlRequest(command: .id), vault, as: PeerIdentity.self).peer
                while own != invite.creator.publicKey.hex && !reached(summary) && ContinuousClock.now < deadline {
                    sayWaiting()
                    try await Task.sleep(for: .milliseconds(100))
                    let all = try await Control.call(ControlRequest(command: .tasks), vault, as: [TaskSummary].self)
                    summary = all.first { $0.id == invite.task.hex } ?? summary
                }
            } else {
                // Options that cannot work are refused before anything is recorded.
                let network = try vault.network
                let peer = try await Control.openLocal(vault, role: "join", creating: true)
                do {
                    summary = try await peer.messenger.join(invite)
                    if invite.creator != peer.messenger.localPeer {
                        do {
                            try await peer.goOnline(network)
                        } catch {
                            // The join is recorded (an invite is worth keeping offline too);
                            // say so, and why the creator cannot be looked for now.
                            if output.json {
                                try printJSON(summary)
                            } else {
                                printOut("joined  \(summary.id)  \(Format.title(summary.title, or: "(title not received yet)"))")
                            }
                            throw CLIError("\(oneLine(error)); the task is kept, and its creator is looked for when this vault is next online (bookswarm daemon or chat)")
                        }
                        started = .now
                        while ContinuousClock.now < deadline {
                            summary = try await peer.messenger.summary(of: invite.task)
                            // The creator must also have our book id before we go offline.
                            if reached(summary), await peer.messenger.isAcknowledged(by: invite.creator, task: invite.task) { break }
                            sayWaiting()
                            try await Task.sleep(for: .milliseconds(100))
                        }
                        if !reached(summary) { idle = (await peer.network?.interfaces ?? []).filter { $0.families.isEmpty } }
                    }
                    await peer.close()
                } catch {
                    await peer.close()
                    throw error
                }
            }
            if output.json { try printJSON(summary); return }
            printOut("joined  \(summary.id)  \(Format.title(summary.title, or: "(title not received yet)"))")
            if !reached(summary) && summary.members.contains(where: { $0.peer == invite.creator.publicKey.hex }) {
                printOut("the creator was not reached yet; messages arrive when both are online")
            }
            if !idle.isEmpty {
                printOut("discovery did not run on \(idle.map(\.description).joined(separator: ", ")): no address there yet")
            }
        }
    }
}

struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List tasks with their members and unread counts.")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let tasks = try await Control.call(ControlRequest(command: .tasks), vault, as: [TaskSummary].self)
            if output.json { try printJSON(tasks); return }
            if tasks.isEmpty { printOut("no tasks yet: bookswarm task new TITLE, or bookswarm join CODE") }
            for task in tasks {
                let online = task.members.filter(\.online).count
                printOut("\(task.id.prefix(8))  \(Format.title(task.title, or: "(title not received yet)"))  \(counted(task.messages, "message")), \(task.unread) unread")
                let members = task.members.map { Format.who($0.peer, name: $0.name, me: "") + ($0.online ? "*" : "") }.joined(separator: ", ")
                printOut("          members: \(task.members.count) (\(online) online)" + (members.isEmpty ? "" : "  " + members))
                printOut("          invite:  \(task.invite)")
                if let successor = task.successor { printOut("          moved on to \(successor.prefix(8)) (a task without some of its members)") }
                if let superseding = task.supersededBy {
                    printOut("          superseded by \(superseding.prefix(8)) (two members moved the task before it on at once; the first move counts)")
                }
                for member in task.members { if let problem = member.problem { printOut("          ! \(problem)") } }
            }
        }
    }
}

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Append a chat message to a task (offline too: it is replicated when next online).")
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Argument(help: "The message.") var text: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let entry = try await Control.call(ControlRequest(command: .send, task: task, text: text), vault, as: LogEntry.self)
            if output.json { try printJSON(entry) }
        }
    }
}

struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Print a task's messages from all its books, oldest first, and when each member joined.")
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Flag(help: "Keep printing new messages as they arrive.") var follow = false
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let me = try await Control.call(ControlRequest(command: .id), vault, as: PeerIdentity.self, creating: false).peer
            if !follow {
                let entries = try await Control.call(ControlRequest(command: .log, task: task), vault, as: [LogEntry].self)
                if output.json {
                    try printJSON(entries)
                } else {
                    var days = Format.DayLines()
                    for e in entries {
                        if let day = days.before(e.time) { printOut(day) }
                        printOut(Format.line(e, me: me))
                    }
                }
                return
            }
            let session = try await FollowSession.open(task: task, options: vault, role: "log --follow")
            defer { session.close() }
            // Ctrl-C or SIGTERM: take the network down cleanly (peers are told) and leave —
            // without printing what taking it down does here (every member "left").
            let stopper = Task {
                await waitForTermination()
                guard !Task.isCancelled else { return }
                session.close()
                await session.finish()
                Foundation.exit(0)
            }
            defer { stopper.cancel() }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var days = Format.DayLines()
            for await item in session.items {
                if session.isClosed { break }
                if output.json {
                    writeOut(try encoder.encode(item) + Data("\n".utf8))
                } else if let line = Format.line(item, me: me) {
                    if let day = days.before(item) { printOut(day) }
                    printOut(line)
                }
            }
            if session.daemonWentAway {
                throw CLIError("the daemon of \(session.directory) stopped: no longer following (run log --follow again once it runs)")
            }
            await session.finish()
        }
    }
}

/// Until the sources are cancelled, Ctrl-C (SIGINT) or SIGTERM runs `cleanUp` (on a queue
/// of its own, while the command's work may still run) and exits with 128 + the signal.
/// For the commands that write a file of their own beside their result (`backup`, `save`
/// without a daemon): what they leave half-written goes. With a daemon, the exit closes the
/// control connection, and the daemon stops the request and removes what it wrote (§10.7).
/// Runs `call`, a request that may write a file or a copy beside its destination, so that
/// Ctrl-C or SIGTERM leaves nothing of it: the work is cancelled — it stops at its next step
/// and removes what it wrote — and, when this process does it itself (no daemon holds the
/// vault), waited for (at most 3 s); then `removeLeftovers` runs until it says nothing is
/// left (a file made meanwhile fails one try; at most 1 s), and the process exits. A
/// daemon's work stops when this process exits (its connection closes, kill -9 too), and
/// the daemon removes its own.
func interruptibly<T: Sendable>(_ vault: VaultOptions, _ call: @escaping @Sendable () async throws -> T,
                                removeLeftovers: @escaping @Sendable () -> Bool) async throws -> T {
    let ended = DispatchSemaphore(value: 0)
    let work = Task {
        defer { ended.signal() }
        return try await call()
    }
    let interrupts = onInterrupt {
        work.cancel()
        if !VaultLock.heldByDaemon(vault.directory) { _ = ended.wait(timeout: .now() + 3) }
        for _ in 0..<100 {
            if removeLeftovers() { break }
            usleep(10_000)
        }
    }
    defer { for source in interrupts { source.cancel() } }
    return try await work.value
}

func onInterrupt(_ cleanUp: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { signalNumber in
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber)
        source.setEventHandler {
            cleanUp()
            Foundation.exit(128 + signalNumber)
        }
        source.resume()
        return source
    }
}

/// Human-readable lines.
enum Format {
    /// A message: `[12:04:05] Ana (1d0f2a77): text`; a join: `[12:03:59] * Ana (1d0f2a77) joined`
    /// (the `*` of the chat's other events, never a message's `name: ` form), and a move:
    /// `[12:05:00] * Ana (1d0f2a77) moved the task on to a new one without Carol (3fa2b1c0)`; a file:
    /// `[12:04:09] Ana (1d0f2a77) attached roof.jpg (2.3 MB): caption` — not the `name: ` form
    /// either, so no chat message can pass for a file —, and once its author withdrew it
    /// `[12:04:09] Ana (1d0f2a77) withdrew a file`, in the same place, without name or caption.
    static func line(_ entry: LogEntry, me: String) -> String {
        switch entry.kind {
        case .chat:
            return "[\(clock(entry.time))] \(who(entry.author, name: entry.name, me: me)): \(shown(entry.text, continuation: "    | "))"
        case .join:
            return "[\(clock(entry.time))] * \(who(entry.author, name: entry.name, me: me)) joined"
        case .file where entry.withdrawn:
            return "[\(clock(entry.time))] \(who(entry.author, name: entry.name, me: me)) withdrew a file"
        case .file:
            let file = entry.file.map(named) ?? "a file"
            let caption = entry.text.isEmpty ? "" : ": " + shown(entry.text, continuation: "    | ")
            return "[\(clock(entry.time))] \(who(entry.author, name: entry.name, me: me)) attached \(file)\(caption)"
        case .successor:
            let without = (entry.without ?? []).map { who($0, name: entry.names?[$0], me: me) }.joined(separator: ", ")
            return "[\(clock(entry.time))] * \(who(entry.author, name: entry.name, me: me)) moved the task on to a new one without \(without)"
        }
    }

    /// A size as people read it: `512 bytes`, `1.5 KB`, `2.3 MB`, `1.1 GB` (powers of 1000,
    /// one decimal below 100, none from 100; 999.5 and up is the next unit).
    static func size(_ bytes: UInt64) -> String {
        if bytes == 1 { return "1 byte" }
        if bytes < 1000 { return "\(bytes) bytes" }
        var value = Double(bytes) / 1000
        var unit = 0
        let units = ["KB", "MB", "GB", "TB"]
        while value >= 999.5 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return (value < 99.95 ? String(format: "%.1f", value) : String(format: "%.0f", value)) + " " + units[unit]
    }

    /// Text another person wrote, made safe to put on a terminal: control characters
    /// (escape sequences that would move the cursor, retitle the window or clear a line;
    /// carriage returns), the invisible bidirectional overrides that reorder what is shown,
    /// and DEL become visible `\u{…}` escapes; a tab becomes a space; a line break starts
    /// an indented continuation line (`continuation`), so a message can never show a line
    /// that looks like another message. Titles, which are one line, pass `nil`: their line
    /// breaks are escaped too.
    static func shown(_ text: String, continuation: String?) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A where continuation != nil: out += "\n" + continuation!
            case 0x09: out += " "
            default:
                if TerminalText.acts(scalar) { out += TerminalText.escaped(scalar) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// A task's title as shown, or `fallback` when there is none.
    static func title(_ title: String?, or fallback: String) -> String { title.map { shown($0, continuation: nil) } ?? fallback }

    /// `now`: the time a `presence` or `whole` event is shown with (it happened as it arrives).
    static func line(_ item: FollowItem, me: String, now: Date = Date()) -> String? {
        switch item.event {
        case .message: return item.entry.map { line($0, me: me) }
        case .live: return nil
        case .presence:
            guard let peer = item.peer else { return nil }
            return "[\(clock(time(of: item, now: now)))] * \(who(peer, name: item.name, me: me)) "
                + (item.online == true ? "is here" : "left")
        case .whole:
            guard let entry = item.entry, let file = entry.file else { return nil }
            return "[\(clock(time(of: item, now: now)))] * \(named(file)) "
                + "from \(who(entry.author, name: entry.name, me: me)) is here"
        case .withdrawn:
            guard let entry = item.entry else { return nil }
            return "[\(clock(time(of: item, now: now)))] * \(who(entry.author, name: entry.name, me: me)) "
                + "withdrew a file attached at \(clock(entry.time)) (file \(entry.id.prefix(8)))"
        }
    }

    /// The time a follow item's line shows, in milliseconds: an entry's own, an event's `now`.
    static func time(of item: FollowItem, now: Date = Date()) -> UInt64 {
        item.event == .message ? item.entry?.time ?? 0 : milliseconds(now)
    }

    /// A date as pages carry time: milliseconds since 1970.
    static func milliseconds(_ date: Date) -> UInt64 { UInt64(max(0, date.timeIntervalSince1970 * 1000)) }

    /// What `attach` prints: `attached roof.jpg (2.3 MB) as file 1a2b3c4d`.
    static func attached(_ entry: LogEntry) -> String {
        let file = entry.file.map(named) ?? "the file"
        return "attached \(file) as file \(entry.id.prefix(8))"
    }

    /// One line of `files`: id, date and time, who, name, size, and whether it is here whole.
    static func file(_ report: FileReport, me: String) -> String? {
        let entry = report.entry
        if entry.withdrawn {
            return "\(entry.id.prefix(8))  \(date(entry.time))  \(who(entry.author, name: entry.name, me: me))  withdrawn by its author"
        }
        guard let file = entry.file else { return nil }
        // How far it has come, in whole per cent (99 until it is whole: never 100 % and partial).
        let percent = file.size == 0 ? 0 : min(99, report.held * 100 / file.size)
        let state = report.whole ? "whole" : "partial: \(size(report.held)) here (\(percent) %)"
        return "\(entry.id.prefix(8))  \(date(entry.time))  \(who(entry.author, name: entry.name, me: me))  "
            + "\(shown(file.name, continuation: nil))  \(size(file.size))  \(state)"
    }

    /// A file as the log, `attach` and a `whole` event name it: `roof.jpg (2.3 MB)`.
    static func named(_ file: AttachedFile) -> String { "\(shown(file.name, continuation: nil)) (\(size(file.size)))" }

    /// What `withdraw` prints: `withdrew roof.jpg (2.3 MB), file 1a2b3c4d: …`.
    static func withdrew(_ result: WithdrawResult) -> String {
        "withdrew \(named(result.file)), file \(result.entry.id.prefix(8)): the task's log shows that you withdrew a file, "
            + "without its name or caption (a copy saved before stays with whoever saved it)"
    }

    /// What `save` prints: `saved /home/ana/roof.jpg (2.3 MB)`.
    static func saved(_ result: SaveResult) -> String {
        "saved \(shown(result.path, continuation: nil))" + (result.entry.file.map { " (\(size($0.size)))" } ?? "")
    }

    /// Who wrote or came: "you", or the first 8 hex digits of the peer id, after the name
    /// they chose if they did ("Ana (db67fe8f)": a name is only a claim, the id tells two
    /// Anas apart).
    static func who(_ peer: String, name: String?, me: String) -> String {
        if peer == me { return "you" }
        guard let name else { return String(peer.prefix(8)) }
        return "\(shown(name, continuation: nil)) (\(peer.prefix(8)))"
    }

    /// `2025-06-01 10:12` (a file stays listed for days: its date with its time).
    static func date(_ milliseconds: UInt64) -> String {
        let t = localTime(milliseconds)
        return "\(day(t)) \(twoDigits(t.tm_hour)):\(twoDigits(t.tm_min))"
    }

    /// `2025-06-01`, local time.
    static func day(_ milliseconds: UInt64) -> String { day(localTime(milliseconds)) }

    private static func day(_ t: tm) -> String { "\(t.tm_year + 1900)-\(twoDigits(t.tm_mon + 1))-\(twoDigits(t.tm_mday))" }

    /// Lines show the time of day only: where the day changes between two lines, or the
    /// first is of another day than today, a line names the day (`-- 2025-06-01 --`), as
    /// chat applications do. A task whose lines are all of today shows none.
    struct DayLines {
        private var shown: String?
        private let today = Format.day(Format.milliseconds(Date()))

        /// The line to print before a line of `milliseconds`, if any.
        mutating func before(_ milliseconds: UInt64) -> String? {
            let day = Format.day(milliseconds)
            defer { shown = day }
            guard day != (shown ?? today) else { return nil }
            return "-- \(day) --"
        }

        /// `before` for what a follow item shows: an entry at its time, an event as it happens.
        mutating func before(_ item: FollowItem, now: Date = Date()) -> String? {
            item.event == .live ? nil : before(Format.time(of: item, now: now))
        }
    }

    /// `10:12:01`, local time.
    static func clock(_ milliseconds: UInt64) -> String {
        let t = localTime(milliseconds)
        return "\(twoDigits(t.tm_hour)):\(twoDigits(t.tm_min)):\(twoDigits(t.tm_sec))"
    }

    /// The local time of a page's timestamp, from the C library: a `DateFormatter` made per
    /// line (ICU's date symbols loaded each time) took 0.1 ms, 4 of the 4.7 s a `log` of
    /// 33 000 messages took.
    private static func localTime(_ milliseconds: UInt64) -> tm {
        var seconds = time_t(clamping: milliseconds / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return parts
    }

    private static func twoDigits(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
