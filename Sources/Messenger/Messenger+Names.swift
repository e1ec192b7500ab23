import Books
import Foundation
import Swarm

/// Display names (PROTOCOL.md §10.2, type 7 `name`; §10.3). A peer may choose a name; it
/// travels as a `name` page in every book the peer writes in its tasks, so each reader
/// learns it from the author's own signed pages. Names are the authors' claims, not
/// identities: two people may choose the same one, so everything that shows a name shows
/// the peer id's first digits beside it.
extension Messenger {
    /// The longest display name, in UTF-8 bytes.
    public static let maxNameBytes = 64
    /// The store's book of this peer's own settings: its `name` pages. Served to nobody
    /// (it belongs to no task, §10.4).
    static let profileBookName = "profile"

    /// `text` as a display name: trimmed of surrounding white space, 1…64 bytes of UTF-8 on
    /// one line, without control or invisible formatting characters (which could make it
    /// pass for something else on a terminal). Nil when it is not one.
    public static func displayName(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= maxNameBytes else { return nil }
        return trimmed.unicodeScalars.allSatisfy(allowedInName) ? trimmed : nil
    }

    static func allowedInName(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse: return false
        default: return true
        }
    }

    /// What is wrong with one line of text refused (a name, a title), `trimmed` of what was
    /// `typed`: "got nothing but spaces", "got 300 bytes", "got U+202E, a control character".
    static func problem(of trimmed: String, typed: String, refused: (Unicode.Scalar) -> Bool) -> String {
        if trimmed.isEmpty { return typed.isEmpty ? "got nothing" : "got nothing but spaces" }
        if let scalar = trimmed.unicodeScalars.first(where: refused) {
            let code = String(format: "U+%04X", scalar.value)
            switch scalar.properties.generalCategory {
            case .lineSeparator, .paragraphSeparator: return "got a line break, \(code)"
            case .control where scalar == "\n" || scalar == "\r": return "got a line break"
            case .control, .format: return "got \(code), an invisible control character"
            default: return "got \(code), a character that is not text"
            }
        }
        return "got \(trimmed.utf8.count) bytes"
    }

    /// This peer's display name: the newest `name` page of its profile book; nil if it has
    /// not chosen one.
    public func ownName() throws -> String? {
        guard let book = try storage({ try store.book(named: Self.profileBookName) }), book.length > 0,
              let bytes = try storage({ try book.get(book.length - 1) }),
              let page = try? MessengerPage(decoding: bytes), case .name = page.kind else { return nil }
        return String(validating: page.data, as: UTF8.self).flatMap(Self.displayName)
    }

    /// Chooses this peer's display name: recorded in its profile book, and written as a
    /// `name` page to every book it writes in every task (its journals and the newest
    /// generation of each pairwise book), so its readers learn it — now if online, later by
    /// replication. Setting the name it already has writes nothing. Returns the name as
    /// stored (trimmed).
    @discardableResult
    public func setOwnName(_ text: String) throws -> String {
        guard let name = Self.displayName(text) else {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let problem = Self.problem(of: trimmed, typed: text) { !Self.allowedInName($0) }
            throw MessengerError(.invalidName, "a name is 1…\(Self.maxNameBytes) bytes of text on one line, "
                                 + "without control characters (\(problem))")
        }
        guard try ownName() != name else { return name }
        let page = PageSpec(kind: .name, data: Array(name.utf8))
        let profile = try storage { try store.createOrOpen(name: Self.profileBookName) }
        for task in tasks.keys {
            try appendToBooksWritten([page], in: task)
            notify(.changed(task))
        }
        // The profile last: a failure above leaves the old name in force, and setting the
        // name again writes it to every book again.
        try append([page], to: profile)
        return name
    }

    /// The `name` page that starts a book of this peer's (after its first pages), if it has
    /// chosen a name.
    func namePage() throws -> [PageSpec] {
        try ownName().map { [PageSpec(kind: .name, data: Array($0.utf8))] } ?? []
    }

    /// Every member's display name in the task, by peer id (hex): the newest `name` page
    /// (by its author's time) of the books held here that the member wrote.
    public func names(in task: TaskID) throws -> [String: String] {
        try taskLog(of: task).names
    }
}
