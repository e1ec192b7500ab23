import Foundation
import NIOCore
import NIOPosix
import Noise
import Sodium

/// `Tools/demo`: two peers on UDP 127.0.0.1 (ephemeral ports) run a Noise IK and a Noise XX
/// handshake over real datagrams, with static keys derived from their Ed25519 identities,
/// then exchange encrypted messages both ways. Every step is printed with its time.
///
/// Datagrams (demo framing, not the session protocol of PROTOCOL.md §7):
///   handshake: 0x01 ‖ Noise handshake message
///   transport: 0x02 ‖ nonce (8 bytes, little-endian) ‖ ciphertext
/// The explicit nonce is Noise §11.4's way to carry transport messages over a channel that
/// may reorder them.
@main
struct Demo {
    static let exchangedMessages = 3
    /// Loopback answers in well under a millisecond; 10 s only guards against a hang.
    static let timeLimitSeconds: Int64 = 10

    static func main() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = Log(clock: clock, start: start)
        let (aliceChannel, aliceAddress) = try await UDPPeer.bind(group: group)
        let (bobChannel, bobAddress) = try await UDPPeer.bind(group: group)
        // Bounded in time: should a datagram be lost, closing the sockets ends the wait.
        let watchdog = group.next().scheduleTask(in: .seconds(timeLimitSeconds)) {
            aliceChannel.channel.close(promise: nil)
            bobChannel.channel.close(promise: nil)
        }
        let failures = try await aliceChannel.executeThenClose { aliceIn, aliceOut in
            try await bobChannel.executeThenClose { bobIn, bobOut in
                let alice = UDPPeer(name: "alice", identity: .generate(), address: aliceAddress, inbound: aliceIn, outbound: aliceOut)
                let bob = UDPPeer(name: "bob", identity: .generate(), address: bobAddress, inbound: bobIn, outbound: bobOut)
                log.step("alice listens on \(alice.address), id \(alice.identity.publicKey.hex.prefix(16))…")
                log.step("bob   listens on \(bob.address), id \(bob.identity.publicKey.hex.prefix(16))…")
                var failures = 0
                for pattern in [NoisePattern.IK, .XX] {
                    do {
                        try await runSession(pattern, alice, bob, log)
                    } catch {
                        log.step("FAILED: \(HandshakeState.protocolName(pattern)): \(error)")
                        failures += 1
                    }
                }
                return failures
            }
        }
        watchdog.cancel()
        try await group.shutdownGracefully()
        guard failures == 0 else {
            log.step("demo failed")
            exit(1)
        }
        log.step("demo complete: IK and XX handshakes, \(2 * exchangedMessages) encrypted messages each, over UDP loopback")
    }

    static func runSession(_ pattern: NoisePattern, _ alice: UDPPeer, _ bob: UDPPeer, _ log: Log) async throws {
        let name = HandshakeState.protocolName(pattern)
        let prologue = Array("bookswarm demo".utf8)
        log.section("\(name): alice initiates\(pattern == .IK ? ", knowing bob's id" : ", knowing nothing of bob")")
        // A peer's Noise static key is the X25519 form of its Ed25519 identity (DESIGN.md §2).
        var initiator = try HandshakeState(pattern: pattern, initiator: true, prologue: prologue,
                                           localStatic: alice.identity.x25519(),
                                           remoteStatic: pattern == .IK ? bob.identity.publicKey.x25519() : nil)
        var responder = try HandshakeState(pattern: pattern, initiator: false, prologue: prologue,
                                           localStatic: bob.identity.x25519())
        let began = log.clock.now
        var index = 0
        while !initiator.isComplete || !responder.isComplete {
            let aliceWrites = initiator.isMyTurnToWrite
            let (from, to) = aliceWrites ? (alice, bob) : (bob, alice)
            let payload = Array("\(from.name)'s handshake payload \(index + 1)".utf8)
            let message = aliceWrites ? try initiator.writeMessage(payload: payload) : try responder.writeMessage(payload: payload)
            try await from.send([0x01] + message, to: to.address)
            let datagram = try await to.receive()
            guard datagram.first == 0x01 else { throw DemoError("expected a handshake datagram") }
            let body = Array(datagram.dropFirst())
            let received = aliceWrites ? try responder.readMessage(body) : try initiator.readMessage(body)
            log.step("\(from.name) → \(to.name)  handshake message \(index + 1): \(datagram.count) B datagram, payload \"\(String(decoding: received, as: UTF8.self))\"")
            index += 1
        }
        let elapsed = log.clock.now - began
        guard initiator.handshakeHash == responder.handshakeHash else { throw DemoError("handshake hashes differ") }
        guard responder.remoteStaticKey == (try alice.identity.publicKey.x25519()),
              initiator.remoteStaticKey == (try bob.identity.publicKey.x25519()) else {
            throw DemoError("a remote static key does not match the peer's Ed25519 identity")
        }
        log.step("handshake complete in \(Log.format(elapsed)), \(index) messages; h = \(initiator.handshakeHash.hexString.prefix(16))…; each side's static key matches the other's Ed25519 id")

        var (aliceSend, aliceReceive) = try initiator.split()
        var (bobSend, bobReceive) = try responder.split()
        let transportBegan = log.clock.now
        for n in 1...exchangedMessages {
            try await exchange("hello bob, message \(n)", from: alice, to: bob, &aliceSend, &bobReceive, log)
            try await exchange("hello alice, reply \(n)", from: bob, to: alice, &bobSend, &aliceReceive, log)
        }
        log.step("\(2 * exchangedMessages) transport messages in \(Log.format(log.clock.now - transportBegan))")
    }

    static func exchange(_ text: String, from: UDPPeer, to: UDPPeer, _ send: inout CipherState, _ receive: inout CipherState, _ log: Log) async throws {
        let nonce = send.nonce
        let ciphertext = try send.encrypt(associatedData: [], plaintext: Array(text.utf8))
        let sentAt = log.clock.now
        try await from.send([0x02] + withUnsafeBytes(of: nonce.littleEndian, Array.init) + ciphertext, to: to.address)
        let datagram = try await to.receive()
        guard datagram.count >= 9, datagram[0] == 0x02 else { throw DemoError("expected a transport datagram") }
        let receivedNonce = datagram[1..<9].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let plaintext = try receive.decrypt(nonce: receivedNonce, associatedData: [], ciphertext: Array(datagram[9...]))
        log.step("\(from.name) → \(to.name)  encrypted \(datagram.count) B, nonce \(receivedNonce), in \(Log.format(log.clock.now - sentAt)): \"\(String(decoding: plaintext, as: UTF8.self))\"")
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints each step with the time since the demo started.
struct Log: Sendable {
    let clock: ContinuousClock
    let start: ContinuousClock.Instant

    func step(_ text: String) {
        print("[\(Log.format(clock.now - start, width: 10))] \(text)")
    }

    func section(_ text: String) {
        print("")
        step("== \(text)")
    }

    static func format(_ d: Duration, width: Int = 0) -> String {
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        var text = String(Int(ms * 1000))  // whole microseconds
        while text.count < 4 { text = "0" + text }
        text.insert(".", at: text.index(text.endIndex, offsetBy: -3))
        text += " ms"
        while text.count < width { text = " " + text }
        return text
    }
}
