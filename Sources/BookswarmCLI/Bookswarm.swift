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
        Start with `bookswarm task new TITLE`, give the invite code to someone, who runs \
        `bookswarm join CODE`; then both `bookswarm chat TASK`. `bookswarm daemon` keeps the \
        peer online in the background.
        """,
        subcommands: [IdCommand.self, TaskCommand.self, JoinCommand.self, TasksCommand.self, SendCommand.self,
                      LogCommand.self, ChatCommand.self, DaemonCommand.self, InspectCommand.self, BootstrapCommand.self])
}
