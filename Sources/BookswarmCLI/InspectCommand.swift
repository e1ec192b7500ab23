import ArgumentParser
import BookswarmControl
import Foundation
import Messenger

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Devtools: books, peers and sessions, tasks and members, recent events and refusals.",
        subcommands: [InspectShow.self, InspectVerify.self], defaultSubcommand: InspectShow.self)
}

struct InspectShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show what this peer holds and sees (the default).")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let report = try await Control.call(ControlRequest(command: .inspect), vault, as: InspectReport.self)
            if output.json { try printJSON(report) } else { InspectPrinter.print(report) }
        }
    }
}

struct InspectVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Re-verify every book from the disk up.")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let report = try await Control.call(ControlRequest(command: .inspect, verify: true), vault, as: InspectReport.self)
            if output.json { try printJSON(report.books) } else {
                for book in report.books {
                    printOut("\(book.verified ? "ok  " : "BAD ") \(book.id.prefix(16))…  \(book.role)  \(book.held)/\(book.length)  \(InspectPrinter.label(book.name, me: report.peer))"
                             + (book.problem.map { "  — \($0)" } ?? ""))
                }
            }
            let bad = report.books.filter { !$0.verified }.count
            if bad > 0 { throw CLIError("\(bad) of \(report.books.count) books failed verification") }
        }
    }
}

enum InspectPrinter {
    static func print(_ r: InspectReport) {
        printOut("peer \(r.peer)  \(r.online ? "online at udp \(r.endpoint ?? "?")" : "offline (no daemon)")")
        if let interfaces = r.interfaces { printOut("discovery on \(interfaces.map(\.description).joined(separator: ", "))") }
        if let storage = r.storage { printOut("cannot write: \(storage)") }
        printOut("\nbooks (\(r.books.count))")
        for b in r.books {
            printOut("  \(b.id.prefix(16))…  \(b.role.padding(toLength: 6, withPad: " ", startingAt: 0))  held \(b.held)/\(b.length)  "
                     + "\(b.verified ? "verified" + (b.problem.map { " (\($0))" } ?? "") : "NOT VERIFIED: \(b.problem ?? "")")  \(label(b.name, me: r.peer))"
                     + (b.peers.isEmpty ? "" : "  peers: " + b.peers.map { "\($0.key.prefix(8))@\($0.value)" }.sorted().joined(separator: " ")))
        }
        printOut("\nsessions (\(r.sessions.count))")
        for s in r.sessions {
            let rtt = s.rttMilliseconds.map { String(format: "%.2f ms", $0) } ?? "?"
            printOut("  \(s.peer.prefix(8))  \(s.path)  \(s.established ? "up" : "handshaking")  rtt \(rtt)  last seen \(String(format: "%.1f", s.lastSeenSecondsAgo)) s ago  packets \(s.packetsSent)↑ \(s.packetsReceived)↓")
        }
        printOut("\ntasks (\(r.tasks.count))")
        for t in r.tasks {
            printOut("  \(t.id.prefix(8))  \(Format.title(t.title, or: "(title not received yet)"))  \(t.messages) messages  creator \(t.creator.prefix(8))")
            for m in t.members {
                printOut("      \(Format.who(m.peer, name: m.name, me: ""))  \(m.online ? "online " : "offline")  writes-to \(m.writesTo)  reads-from \(m.readsFrom)")
            }
        }
        printOut("\nrecent events (\(r.events.count))")
        for e in r.events.suffix(30) { printOut("  \(Format.clock(e.time))  \(e.kind): \(e.detail)") }
        printOut("\nrefusals (\(r.refusals.count))")
        for e in r.refusals.suffix(30) { printOut("  \(Format.clock(e.time))  \(e.kind): \(e.detail)") }
        printOut("\ndropped (\(r.drops.values.reduce(0, +)))")
        for (reason, count) in r.drops.sorted(by: { $0.key < $1.key }) { printOut("  \(reason): \(count)") }
    }

    /// A book's name with ids shortened: `author→reader task` or the name itself.
    static func label(_ name: String?, me: String) -> String {
        guard let name else { return "(unnamed)" }
        // Only a task book's name is shortened; any other (a compiled book's takes any text,
        // and may look like one) is shown as it is.
        guard let book = TaskBookName(parsing: name) else { return name }
        let (authorHex, readerHex) = (book.author.publicKey.hex, book.reader.publicKey.hex)
        let author = authorHex == me ? "me" : String(authorHex.prefix(8))
        let reader = readerHex == me ? "me" : String(readerHex.prefix(8))
        let task = book.task.hex.prefix(8)
        // A later generation of the pair's book (PROTOCOL.md §10.3).
        let generation = book.generation > 0 ? " (generation \(book.generation))" : ""
        return book.isJournal ? "journal of task \(task)" : "\(author)→\(reader) task \(task)\(generation)"
    }
}
