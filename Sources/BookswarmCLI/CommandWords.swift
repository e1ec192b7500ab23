import ArgumentParser

/// The command words of a command line (`bookswarm task new …`) checked against the
/// commands there are, for what ArgumentParser cannot say well: a mistyped command next to
/// options (it reports the first option as unknown: `Unknown option '--dir'`), a mistyped
/// command alone (`Unexpected argument 'taks'`), options before the command, and
/// `bookswarm help taks` (the main help, exit 0).
enum CommandWords {
    /// The options of any command that take no value, so that those before the command
    /// can be told apart from an option and its value. Every other option takes one.
    static let flags: Set<String> = ["--json", "--ipv4-only", "--yes", "--follow"]

    /// What ArgumentParser answers itself wherever it stands.
    static let helpOptions: Set<String> = ["--help", "-h", "-help", "--version"]

    /// The commands whose positionals end in text a person types: a message, a title, a name.
    static let textCommands: [[String]] = [["send"], ["task", "new"], ["name"]]

    /// `arguments` with the positionals of a text command put after a `--` when one of them
    /// begins with "-" (`send Roof "-5 degrees outside"`), so that ArgumentParser takes the
    /// text as the text it is: it read `-oh no` as the options -o and -h and printed the
    /// help (exit 0, nothing sent). What stays an option: `--` and a letter (`--dir`), the
    /// help options, and the value after an option that takes one.
    static func textArguments(_ arguments: [String]) -> [String] {
        guard let path = textCommands.first(where: { arguments.starts(with: $0) }) else { return arguments }
        var options: [String] = [], positionals: [String] = []
        var dashed = false
        var index = path.count
        while index < arguments.count {
            let word = arguments[index]
            if word == "--" { return arguments }  // separated already
            if helpOptions.contains(word) || (word.hasPrefix("--") && word.dropFirst(2).first.map { $0.isASCII && $0.isLetter } == true) {
                let takesValue = !flags.contains(word) && !helpOptions.contains(word) && !word.contains("=")
                let end = min(arguments.count, index + (takesValue ? 2 : 1))
                options += arguments[index..<end]
                index = end
                continue
            }
            dashed = dashed || word.hasPrefix("-")
            positionals.append(word)
            index += 1
        }
        return dashed ? path + options + ["--"] + positionals : arguments
    }

    /// What is wrong with the command words of `arguments` (without the program's name), as
    /// one line without the `bookswarm: ` prefix; nil when they name a command (ArgumentParser
    /// then reads the rest), or when nothing here can say better than ArgumentParser.
    static func mistake(in arguments: [String]) -> String? {
        var command: ParsableCommand.Type = Bookswarm.self
        var path: [String] = []
        /// Options met before the command was complete (`bookswarm --dir D tasks`).
        var early: [String] = []
        var index = 0
        while index < arguments.count {
            let subcommands = command.configuration.subcommands
            if subcommands.isEmpty { break }  // a command: the rest is its arguments
            let word = arguments[index]
            if helpOptions.contains(word) { return nil }
            if word.hasPrefix("-") && word.count > 1 {
                // A group with a default command (`inspect`) takes that command's options.
                if command.configuration.defaultSubcommand != nil { return nil }
                let takesValue = !flags.contains(word) && !word.contains("=")
                let end = min(arguments.count, index + (takesValue ? 2 : 1))
                early += arguments[index..<end]
                index = end
                continue
            }
            guard let next = subcommands.first(where: { names(of: $0).contains(word) }) else {
                return unknown(word, among: subcommands, path: path)
            }
            command = next
            path.append(word)
            index += 1
        }
        guard !early.isEmpty else { return nil }
        // Where they go instead.
        let rest = Array(arguments[index...])
        if command.configuration.subcommands.isEmpty {
            return "options go after the command: bookswarm \(quoted(path + rest + early))"
        }
        let group = path.map { $0 + " " }.joined()
        return "options go after the command: bookswarm \(group)COMMAND \(quoted(early)) (see: bookswarm \(group)--help)"
    }

    /// `bookswarm help WORDS`: a mistake in WORDS (the help of a command that is not there
    /// would be the main help, with exit 0, as if all were well).
    static func helpMistake(in arguments: [String]) -> String? {
        guard arguments.first == "help", arguments.count > 1 else { return nil }
        let words = Array(arguments.dropFirst().prefix { !$0.hasPrefix("-") })
        return mistake(in: words)
    }

    /// `unknown command "taks" (did you mean tasks?)`, or where the list of commands is.
    static func unknown(_ word: String, among subcommands: [ParsableCommand.Type], path: [String]) -> String {
        let named = (path + [word]).joined(separator: " ")
        let candidates = suggestions(for: word, among: subcommands.map { names(of: $0)[0] })
        let prefix = path.map { $0 + " " }.joined()
        let hint = candidates.isEmpty || candidates.count > 3
            ? "see: bookswarm \(prefix)--help"
            : "did you mean " + listed(candidates.map { prefix + $0 }) + "?"
        return "unknown command \"\(named)\" (\(hint))"
    }

    /// The commands `word` was likely meant as: those it begins (`comp`: compile), else
    /// those closest to it within two edits, if it is long enough for that to say anything
    /// (`taks`: tasks, one letter left out; not task, two letters swapped: two edits).
    static func suggestions(for word: String, among commands: [String]) -> [String] {
        let typed = word.lowercased()
        let prefixed = commands.filter { $0.hasPrefix(typed) }
        if !prefixed.isEmpty { return prefixed }
        let distances = commands.map { ($0, editDistance(typed, $0)) }.filter { $0.1 <= 2 && $0.1 < typed.count }
        guard let best = distances.map(\.1).min() else { return [] }
        return distances.filter { $0.1 == best }.map(\.0)
    }

    /// Levenshtein distance: insertions, deletions and substitutions of a character.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    static func names(of command: ParsableCommand.Type) -> [String] {
        [command.configuration.commandName ?? command._commandName] + command.configuration.aliases
    }

    /// "a", "a or b", "a, b or c".
    static func listed(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items.last!
    }

    /// Words as a shell reads them back: quoted where they hold anything but plain characters.
    static func quoted(_ words: [String]) -> String {
        words.map { word in
            let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
                ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "-_./:=,@+%".unicodeScalars.contains($0)
            }
            return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
