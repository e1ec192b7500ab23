import FuzzSupport

/// Genuine requests for the control target's corpus: each command as the bookswarm command
/// writes it, naming the bed's tasks in the ways a person does (title, id prefix, invite
/// code), a few that are refused, and framing scripts.
enum Seeds {
    static var requests: [(name: String, line: String)] {
        let joinedPrefix = String(VaultBed.joined.task.hex.prefix(8))
        let joinedInvite = VaultBed.joined.text
        let files = VaultBed.shared.files
        return [
            ("id", #"{"command":"id"}"#),
            ("tasks", #"{"command":"tasks"}"#),
            ("name", #"{"command":"name","text":"Ana"}"#),
            ("name-show", #"{"command":"name"}"#),
            ("task-new", #"{"command":"task-new","text":"Paint the fence"}"#),
            ("join", #"{"command":"join","text":"\#(VaultBed.other.text)"}"#),
            ("send", #"{"command":"send","task":"Fix the roof","text":"I can come on Saturday."}"#),
            ("send-prefix", #"{"command":"send","task":"\#(joinedPrefix)","text":"hi"}"#),
            ("log", #"{"command":"log","markRead":false,"task":"Fix the roof"}"#),
            ("log-invite", #"{"command":"log","task":"\#(joinedInvite)"}"#),
            ("inspect", #"{"command":"inspect"}"#),
            ("inspect-verify", #"{"command":"inspect","verify":true}"#),
            ("compile", #"{"command":"compile","name":"record","task":"Fix the roof"}"#),
            ("check", #"{"command":"check","name":"record"}"#),
            ("task-leave-ask", #"{"command":"task-leave","task":"Fix the roof"}"#),
            ("task-leave", #"{"command":"task-leave","confirm":true,"task":"Fix the roof"}"#),
            ("task-remove", #"{"command":"task-remove","members":["Ana"],"task":"Fix the roof"}"#),
            ("follow", #"{"command":"follow","task":"Fix the roof"}"#),
            ("attach", #"{"command":"attach","path":"\#(files)/\#(VaultBed.fileName)","task":"Fix the roof","text":"again"}"#),
            ("attach-named", #"{"command":"attach","name":"leak.txt","path":"\#(files)/\#(VaultBed.fileName)","task":"Fix the roof"}"#),
            ("files", #"{"command":"files","task":"Fix the roof"}"#),
            ("save", #"{"command":"save","name":"\#(VaultBed.fileName)","path":"\#(files)/out","task":"Fix the roof"}"#),
            ("save-as", #"{"command":"save","name":"\#(VaultBed.fileName)","path":"\#(files)/out/copy.txt","task":"Fix the roof"}"#),
            ("save-outside", #"{"command":"save","name":"\#(VaultBed.fileName)","path":"/tmp/x","task":"Fix the roof"}"#),
            ("unknown-task", #"{"command":"send","task":"Fix the ro\u0001f","text":"x"}"#),
            ("unknown-command", #"{"command":"delete","task":"Fix the roof"}"#),
            ("wrong-type", #"{"command":"inspect","verify":"yes"}"#),
            ("not-json", "send Fix the roof"),
        ]
    }

    static var framings: [(name: String, script: [UInt8])] {
        func script(limit: UInt8, _ chunks: [String]) -> [UInt8] {
            var s = FuzzScript([limit])
            for chunk in chunks { s.chunk(Array(chunk.utf8)) }
            return s.bytes
        }
        return [
            ("one-line", script(limit: 40, [#"{"command":"id"}"#, "\n"])),
            ("split", script(limit: 40, [#"{"comm"#, #"and":"tasks"}"# + "\n" + #"{"command""#, ":\"id\"}\n"])),
            ("too-long", script(limit: 8, ["0123456", "789\nab\n"])),
            ("unterminated", script(limit: 40, [#"{"command":"id"}"#])),
        ]
    }
}
