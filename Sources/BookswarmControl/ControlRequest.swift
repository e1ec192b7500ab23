import Messenger
import Swarm

/// One request on the daemon's control socket (PROTOCOL.md §10.7): a JSON object on one
/// line. A missing string counts as `""`; unknown keys are ignored.
public struct ControlRequest: Codable, Sendable {
    public enum Command: String, Codable, Sendable {
        case id, name, taskNew = "task-new", taskLeave = "task-leave", join, tasks, send, log, inspect, compile, check, follow
        /// `path`: the absolute path of a new directory to write a copy of the vault to.
        case backup
        /// `task`, `path` (absolute) of a file the daemon reads, `text` the caption, `name`
        /// the file's name (absent: the path's last component).
        case attach
        /// `task`: its files, with how much of each is held here.
        case files
        /// `task`, `name` (the file: id, name or id prefix), `path` (absolute destination).
        case save
        /// `task`, `members` (each a peer id, 8 hex digits of one or more, or a display
        /// name): move the task on to a new one without them.
        case taskRemove = "task-remove"
        /// `task`, `name` (one of this peer's files: id, name or id prefix): withdraw it.
        case withdraw
    }

    public var command: Command
    public var task: String?
    public var text: String?
    public var name: String?
    /// `attach`: the file to read; `save`: where to write the file; `backup`: the new
    /// directory (absolute paths).
    public var path: String?
    public var verify: Bool?
    public var markRead: Bool?
    /// `task-leave`: really leave (without it, the answer says what would be deleted).
    public var confirm: Bool?
    /// `task-remove`: the members to leave out.
    public var members: [String]?

    public init(command: Command, task: String? = nil, text: String? = nil, name: String? = nil, path: String? = nil,
                verify: Bool? = nil, markRead: Bool? = nil, confirm: Bool? = nil, members: [String]? = nil) {
        self.command = command
        self.task = task
        self.text = text
        self.name = name
        self.path = path
        self.verify = verify
        self.markRead = markRead
        self.confirm = confirm
        self.members = members
    }
}

extension ControlRequest.Command {
    /// Whether the daemon stops the request when its client goes away before the answer
    /// (PROTOCOL.md §10.7): those whose only product is a file or directory written for the
    /// client, which is the client's to have or not. The rest change the vault or the tasks,
    /// or only read: carried out whatever the client does after sending it.
    public var stopsWithItsClient: Bool {
        switch self {
        case .backup, .save: true
        case .id, .name, .taskNew, .taskLeave, .join, .tasks, .send, .log, .inspect, .compile, .check, .follow, .attach, .files,
             .taskRemove, .withdraw: false
        }
    }
}

extension ControlRequest {
    /// Whether the request only reads the vault, so that it can be carried out on a vault
    /// that cannot be written (a command's `LocalPeer.open`, `readingIfUnwritable`; a vault
    /// online on a full disk tries to write again before any other, `Control.execute`): it
    /// shows what the vault holds, or writes only outside it (`save` writes a file where it
    /// is asked to).
    /// `log` marks the task read, which such a vault keeps in memory only. `backup` writes
    /// only its destination (on a full disk: another file system), reading the store through
    /// a connection that writes nothing.
    public var onlyReads: Bool {
        switch command {
        case .id, .tasks, .log, .inspect, .check, .files, .save, .backup: true
        case .name: text == nil
        case .taskLeave: confirm != true
        case .taskNew, .join, .taskRemove, .send, .compile, .follow, .attach, .withdraw: false
        }
    }
}

/// The result of `id`.
public struct PeerIdentity: Codable, Sendable {
    public var peer: String
    /// The display name this peer chose (`bookswarm name`), if any.
    public var name: String?

    public init(peer: String, name: String? = nil) {
        self.peer = peer
        self.name = name
    }
}

/// What the daemon's network adds to `inspect`: the counters of what it dropped below the
/// sessions, and how discovery runs on each interface now.
public struct NetworkStatus: Sendable {
    public var drops: [String: UInt64]
    public var interfaces: [DiscoveryInterface]?

    public init(drops: [String: UInt64] = [:], interfaces: [DiscoveryInterface]? = nil) {
        self.drops = drops
        self.interfaces = interfaces
    }
}

/// One line of a `follow` stream.
public struct FollowItem: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// An entry of the log, from history or new: a message, or a member's join
        /// (`entry.kind`).
        case message
        /// The history is complete; live events follow.
        case live
        /// A member connected or left.
        case presence
        /// A file another member attached (`entry`, its `file` entry) is here whole now: it
        /// can be saved. Told once per file, and only for a file that was not whole here when
        /// the history was sent (whether it comes whole at once or part by part).
        case whole
        /// A file shown before (`entry`, its `file` entry, now `withdrawn`) was withdrawn by
        /// its author: its name and caption are no longer shown. Told once per file, and only
        /// for a file shown unwithdrawn before (one withdrawn already comes so in its
        /// `message`).
        case withdrawn
    }

    public var event: Kind
    public var entry: LogEntry?
    public var peer: String?
    /// On `presence`: the member's display name, if they chose one.
    public var name: String?
    public var online: Bool?
    /// On `live`: the task's title and members.
    public var summary: TaskSummary?

    public init(event: Kind, entry: LogEntry? = nil, peer: String? = nil, name: String? = nil, online: Bool? = nil,
                summary: TaskSummary? = nil) {
        self.event = event
        self.entry = entry
        self.peer = peer
        self.name = name
        self.online = online
        self.summary = summary
    }
}
