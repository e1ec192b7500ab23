import ArgumentParser
import Foundation

/// `bookswarm`: the task messenger on the command line (issue 6). Every command works with
/// or without a running daemon of the same vault: with one, it asks the daemon over the
/// control socket; without, it opens the vault itself (and, for `join`, `chat` and
/// `log --follow`, brings the network up for its own duration).
@main
struct Bookswarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bookswarm",
        abstract: "A peer-to-peer task messenger: tasks, invite codes, chat over a LAN.",
        discussion: """
        Start with `bookswarm name YOUR-NAME` and `bookswarm task new TITLE`, give the invite \
        code to someone, who runs `bookswarm join CODE`; then both `bookswarm chat TASK`. \
        `bookswarm daemon` keeps the peer online in the background.
        """,
        subcommands: [IdCommand.self, NameCommand.self, TaskCommand.self, JoinCommand.self, TasksCommand.self, SendCommand.self,
                      AttachCommand.self, FilesCommand.self, SaveCommand.self, WithdrawCommand.self, LogCommand.self, ChatCommand.self, DaemonCommand.self, InspectCommand.self, BackupCommand.self,
                      BootstrapCommand.self])

    /// ArgumentParser's `main`, except that a mistake on the command line is one line on
    /// stderr (what is wrong, and where the help is) and exit 64, like every other error of
    /// this CLI, instead of the error, the argument's help and the whole usage.
    /// A mistyped command is named as such, with the command meant if one is close
    /// (`CommandWords`), rather than as its first option being unknown.
    static func main() async {
        let arguments = CommandWords.textArguments(Array(CommandLine.arguments.dropFirst()))
        func usageMistake(_ line: String) -> Never {
            FileHandle.standardError.write(Data("bookswarm: \(line)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        if let mistake = CommandWords.helpMistake(in: arguments) { usageMistake(mistake) }
        let command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }  // --help, --version
            usageMistake(CommandWords.mistake(in: arguments) ?? usageLine(for: error))
        }
        do {
            if var async = command as? AsyncParsableCommand { try await async.run() } else { var sync = command; try sync.run() }
        } catch {
            // Commands report their own errors (`reportingErrors`) and throw only an exit code.
            exit(withError: error)
        }
    }

    /// "Missing expected argument '<code>' (see: bookswarm join --help)".
    static func usageLine(for error: Error) -> String {
        let message = message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "invalid arguments"
        let stripped = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
        let help = fullMessage(for: error).split(whereSeparator: \.isNewline)
            .first { $0.contains("See '") }
            .flatMap { line in line.split(separator: "'").dropFirst().first.map(String.init) } ?? "bookswarm --help"
        return "\(stripped) (see: \(help))"
    }
}
