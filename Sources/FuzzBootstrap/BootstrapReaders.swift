import Bootstrap
import FuzzSupport
import Sodium
import Swarm

/// Every reader of bytes from another machine in Bootstrap, behind a selector byte:
///
/// 0. the datagrams of §11: `BootstrapMessage(decoding:)`, what a node and a peer both parse;
/// 1. a `BootstrapNode` with two registered, introduced peers (`NodeBed`), driven by a
///    script of datagrams (some with a valid cookie and signature put in), relays and time;
/// 2. a `BootstrapClientMachine` registered at a node and introduced to a peer (`ClientBed`),
///    driven by datagrams from the node, the peer and strangers, the sessions' sends and time.
///
/// Beyond "no crash": what decodes re-encodes to the same bytes; what the node answers an
/// unproven request is never larger than the request (§11.4); what either sends decodes.
enum BootstrapReaders: FuzzTarget {
    static let name = "bootstrap"

    static func fuzzOne(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let rest = Array(input.dropFirst())
        switch selector % 3 {
        case 0: message(rest)
        case 1: NodeBed.run(FuzzInput(rest))
        default: ClientBed.run(FuzzInput(rest))
        }
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        (NodeBed.poised.genuine + ClientBed.poised.genuine.map { ($0.name, $0.bytes) }).enumerated()
            .map { ("message-\($0)-\($1.name)", [0] + $1.bytes) }
            + NodeBed.seedScripts.map { ("node-\($0.name)", [1] + $0.bytes) }
            + ClientBed.seedScripts.map { ("client-\($0.name)", [2] + $0.bytes) }
    }

    /// §11.1: a datagram that decodes re-encodes to its bytes.
    static func message(_ bytes: [UInt8]) {
        guard let message = BootstrapMessage(decoding: bytes) else { return }
        check(message, encodes: bytes)
    }

    static func check(_ message: BootstrapMessage, encodes bytes: [UInt8]) {
        precondition(message.encoded() == bytes, "a bootstrap datagram re-encodes to its bytes")
        precondition(BootstrapMessage(decoding: message.encoded()) == message, "decode(encode(x)) == x")
    }

    static func keys(_ n: UInt8) -> Ed25519.KeyPair {
        try! Ed25519.KeyPair(seed: SecretBytes(copying: [UInt8](repeating: n, count: 32)))
    }

    /// A short name for a datagram, for seed files.
    static func kind(_ bytes: [UInt8]) -> String {
        guard let message = BootstrapMessage(decoding: bytes) else { return "raw" }
        return "\(message)".prefix { $0 != "(" }.description
    }
}
