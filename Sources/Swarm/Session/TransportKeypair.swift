import Sodium

/// The keys of one completed handshake, as WireGuard keeps them: indices on both sides, a
/// send counter that is the explicit nonce, and the replay window of the receive side.
struct TransportKeypair {
    let sendKey: SecretBytes
    let receiveKey: SecretBytes
    let localIndex: UInt32
    let remoteIndex: UInt32
    let isInitiator: Bool
    let createdAt: Timestamp
    /// The handshake hash these keys came from; capabilities sent under them bind to it.
    let handshakeHash: [UInt8]
    var sendCounter: UInt64 = 0
    var replay = ReplayWindow()
    /// Whether a packet under these keys has authenticated: for the initiator, the proof
    /// that the responder took them (until then it keeps confirming, §7.3).
    var heardFrom = false

    init(send: SecretBytes, receive: SecretBytes, localIndex: UInt32, remoteIndex: UInt32,
         isInitiator: Bool, createdAt: Timestamp, handshakeHash: [UInt8]) {
        sendKey = send
        receiveKey = receive
        self.localIndex = localIndex
        self.remoteIndex = remoteIndex
        self.isInitiator = isInitiator
        self.createdAt = createdAt
        self.handshakeHash = handshakeHash
    }

    /// Whether these keys may still send (WireGuard's reject limits, whitepaper §6.1).
    func canSend(now: Timestamp, configuration: SessionConfiguration, timing: SessionTiming) -> Bool {
        sendCounter < configuration.rejectAfterMessages && now.nanoseconds(since: createdAt) < timing.rejectAfterTime
    }

    /// Builds the transport packet for `frame`: header, then the frame sealed in place with
    /// the header as associated data (§7.4). One allocation per packet.
    mutating func seal(_ frame: SessionFrame) -> [UInt8] {
        let plaintextLength = frame.encodedLength
        precondition(plaintextLength <= PacketFormat.maxTransportPlaintext, "callers check message sizes")
        var out: [UInt8] = []
        out.reserveCapacity(PacketFormat.transportHeaderLength + plaintextLength + PacketFormat.tagLength)
        TransportHeader(receiverIndex: remoteIndex, counter: sendCounter).write(into: &out)
        frame.write(into: &out)
        out.append(contentsOf: repeatElement(0, count: PacketFormat.tagLength))
        let counter = sendCounter
        sendCounter += 1
        let key = sendKey
        out.withUnsafeMutableBytes { buffer in
            let header = UnsafeRawBufferPointer(rebasing: buffer[0..<PacketFormat.transportHeaderLength])
            let body = UnsafeMutableRawBufferPointer(rebasing: buffer[PacketFormat.transportHeaderLength...])
            // libsodium allows the ciphertext to overwrite the plaintext in place.
            let plaintext = UnsafeRawBufferPointer(rebasing: body[0..<plaintextLength])
            ChaChaPoly.seal(key: key, counter: counter, associatedData: header, plaintext: plaintext, into: body)
        }
        return out
    }

    /// Decrypts a transport packet addressed to these keys; nil when it does not
    /// authenticate. Does not touch the replay window: the caller does, after this succeeds.
    func open(_ packet: [UInt8], counter: UInt64) -> [UInt8]? {
        let length = packet.count - PacketFormat.minTransportLength
        let key = receiveKey
        var ok = true
        let plaintext = [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            packet.withUnsafeBytes { buffer in
                let header = UnsafeRawBufferPointer(rebasing: buffer[0..<PacketFormat.transportHeaderLength])
                let body = UnsafeRawBufferPointer(rebasing: buffer[PacketFormat.transportHeaderLength...])
                do {
                    _ = try ChaChaPoly.open(key: key, counter: counter, associatedData: header, ciphertext: body,
                                            into: UnsafeMutableRawBufferPointer(out))
                } catch {
                    ok = false
                }
            }
            initialized = ok ? length : 0
        }
        return ok ? plaintext : nil
    }
}
