import ArgumentParser
import BookswarmControl
import Foundation
import Messenger

/// Files attached to a task (PROTOCOL.md §10.2 Files, §10.7 `attach`, `files`, `save`).

/// `path` made absolute against this process's working directory: the daemon that reads or
/// writes it has its own.
func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// The requests of `attach` and `save`, as the commands and `chat`'s /attach and /save make
/// them: paths made absolute here (`task` nil: the chat's session fills it in).
extension ControlRequest {
    static func attach(task: String?, path: String, caption: String?, name: String? = nil) -> ControlRequest {
        ControlRequest(command: .attach, task: task, text: caption, name: name, path: absolutePath(path))
    }

    /// `destination` nil: the current directory.
    static func save(task: String?, file: String, destination: String?) -> ControlRequest {
        ControlRequest(command: .save, task: task, name: file,
                       path: absolutePath(destination ?? FileManager.default.currentDirectoryPath))
    }
}

struct AttachCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach", abstract: "Share a file with a task (offline too: it is replicated when next online).",
        discussion: """
            At most 64 MiB. The file goes into every book you write in the task, like a \
            message; each vault stores its bytes once, whatever the number of books that hold \
            it. The others see its name (the file's own, or \
            --name) and its size in the log, and save it with `bookswarm save`.
            """)
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Argument(help: "The file to share.") var path: String
    @Option(help: "A caption, shown with the file.") var text: String?
    @Option(help: "The name the others see (default: the file's own).") var name: String?
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let entry = try await Control.call(.attach(task: task, path: path, caption: text, name: name), vault, as: LogEntry.self)
            if output.json { try printJSON(entry); return }
            printOut(Format.attached(entry))
        }
    }
}

struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files", abstract: "List a task's files: id, when, who, name, size, and whether it is here whole.")
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let me = try await Control.call(ControlRequest(command: .id), vault, as: PeerIdentity.self, creating: false).peer
            let files = try await Control.call(ControlRequest(command: .files, task: task), vault, as: [FileReport].self)
            if output.json { try printJSON(files); return }
            if files.isEmpty { printOut("no files in this task yet: bookswarm attach TASK PATH") }
            for line in files.compactMap({ Format.file($0, me: me) }) { printOut(line) }
        }
    }
}

/// Removes the hidden files this process was writing a saved file to: `.ID.partial-PID-N`
/// in `destination` if it is a directory, else beside it. True when none is left.
func removeOwnPartialFiles(near destination: String) -> Bool {
    var isDirectory: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: destination, isDirectory: &isDirectory)
    let directory = exists && isDirectory.boolValue ? destination : (destination as NSString).deletingLastPathComponent
    let mark = ".partial-\(getpid())-"
    var left = false
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where entry.hasPrefix(".") && entry.contains(mark) {
        do { try FileManager.default.removeItem(atPath: directory + "/" + entry) } catch { left = true }
    }
    return !left
}

struct SaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save", abstract: "Write a file of a task out, once it is here whole and matches its hash.",
        discussion: """
            FILE is the file's id (or the beginning of it, 4+ hex digits, as `bookswarm files` \
            shows it) or its name. DEST is a new file, or a directory to put the file in under \
            its name (default: the current directory). An existing file is never replaced; a \
            file not here whole yet, or whose bytes do not match the hash its author gave, is \
            not written.
            """)
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Argument(help: "The file: its id (or its beginning), or its name.") var file: String
    @Argument(help: "Where to write it: a new file, or a directory (default: the current directory).") var destination: String?
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let request = ControlRequest.save(task: task, file: file, destination: destination)
            // Ctrl-C or SIGTERM (`interruptibly`): the hidden file it was writing
            // (`.ID.partial-PID-N`, PROTOCOL.md §10.7), up to 64 MiB, goes too.
            let vault = vault
            let saved = try await interruptibly(vault, { try await Control.call(request, vault, as: SaveResult.self) }) {
                removeOwnPartialFiles(near: request.path ?? "")
            }
            if output.json { try printJSON(saved); return }
            printOut(Format.saved(saved))
        }
    }
}

struct WithdrawCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "withdraw", abstract: "Withdraw a file you attached (offline too: it is replicated when next online).",
        discussion: """
            FILE is one of your files of the task: its id (or the beginning of it, 4+ hex \
            digits) or its name. Every member's log then shows that you withdrew a file, in \
            its place, without its name or caption, and nobody can save it any more. Books \
            are append-only: its bytes stay in the members' vaults, and a copy saved before \
            stays with whoever saved it.
            """)
    @Argument(help: "The task: its id (or a prefix), invite code, or title (or its beginning).") var task: String
    @Argument(help: "Your file: its id (or its beginning), or its name.") var file: String
    @OptionGroup var vault: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let request = ControlRequest(command: .withdraw, task: task, name: file)
            let withdrawn = try await Control.call(request, vault, as: WithdrawResult.self)
            if output.json { try printJSON(withdrawn); return }
            printOut(Format.withdrew(withdrawn))
        }
    }
}
