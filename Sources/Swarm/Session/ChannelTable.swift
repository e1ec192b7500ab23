/// The channels of one session (§8.2). Ids are split by the two peer ids so both sides can
/// open channels without colliding: the peer with the lower id uses odd ids, the other even
/// ids; 0 is the control channel. Opens are retransmitted until accepted, because a lost
/// open would otherwise leave the remote unaware of the channel for good.
struct ChannelTable {
    struct PendingOpen {
        var label: [UInt8]
        var nextRetransmit: Timestamp
        var attempts: Int
    }

    private(set) var open: Set<UInt16> = [ChannelLimits.controlChannel]
    private(set) var pending: [UInt16: PendingOpen] = [:]
    private var nextLocal: UInt16
    private let first: UInt16

    init(localIsLower: Bool) {
        first = localIsLower ? 1 : 2
        nextLocal = first
    }

    /// Reserves a fresh local id, or nil when all 32 767 of ours are in use.
    mutating func allocate(label: [UInt8], now: Timestamp, retransmit: Duration) -> UInt16? {
        for _ in 0..<(Int(UInt16.max) / 2) {
            let id = nextLocal
            nextLocal = nextLocal >= UInt16.max - 1 ? first : nextLocal + 2
            if !open.contains(id) {
                open.insert(id)
                pending[id] = PendingOpen(label: label, nextRetransmit: now + retransmit, attempts: 1)
                return id
            }
        }
        return nil
    }

    /// Whether `id` is one the remote may open (of its parity, not 0).
    func isRemoteID(_ id: UInt16) -> Bool { id != 0 && id % 2 != first % 2 }

    /// A remote open: returns true if the channel is new.
    mutating func remoteOpened(_ id: UInt16) -> Bool { open.insert(id).inserted }

    /// Any sign of life from the remote on a channel we opened accepts it.
    mutating func accepted(_ id: UInt16) -> Bool { pending.removeValue(forKey: id) != nil }

    mutating func close(_ id: UInt16) -> Bool {
        pending[id] = nil
        return id != ChannelLimits.controlChannel && open.remove(id) != nil
    }

    mutating func rescheduleOpen(_ id: UInt16, at time: Timestamp) {
        pending[id]?.nextRetransmit = time
        pending[id]?.attempts += 1
    }

    var nextDeadline: Timestamp? { pending.values.map(\.nextRetransmit).min() }
}
