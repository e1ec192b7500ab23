import Sodium
import Swarm

/// Stateless proof that a requester receives at the address it claims (PROTOCOL.md §11.4),
/// in the manner of WireGuard's cookie reply (whitepaper §5.4.7): the cookie is a MAC over
/// the source endpoint under a secret that rotates, so the node keeps no state per requester
/// until one comes back with the cookie, and a spoofer who never sees the reply cannot.
///
/// `cookie = BLAKE2b-128(key: secret, "bookswarm/bootstrap/cookie/v1" ‖ endpoint)`.
struct CookieMinter {
    /// §11.4: the secret changes this often; the previous one is still accepted, so a cookie
    /// lives between one and two periods. Two minutes, as WireGuard's cookie secret.
    static let rotation: Duration = .seconds(120)

    private var current: [UInt8]
    private var previous: [UInt8]
    private var rotatedAt: Timestamp

    init(now: Timestamp, random: inout some RandomNumberGenerator) {
        current = Self.secret(&random)
        previous = Self.secret(&random)
        rotatedAt = now
    }

    static func secret(_ random: inout some RandomNumberGenerator) -> [UInt8] {
        (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    /// When the next rotation is due.
    var nextRotation: Timestamp { rotatedAt + Self.rotation }

    mutating func rotateIfDue(now: Timestamp, random: inout some RandomNumberGenerator) {
        guard now >= nextRotation else { return }
        secureZero(&previous)
        previous = current
        current = Self.secret(&random)
        rotatedAt = now
    }

    func mint(for endpoint: Endpoint) -> [UInt8] { Self.mac(current, endpoint) }

    func verify(_ cookie: [UInt8], for endpoint: Endpoint) -> Bool {
        guard cookie.count == BootstrapWire.cookieLength else { return false }
        // Both compared every time: the timing does not tell which secret matched.
        let a = constantTimeEquals(cookie, Self.mac(current, endpoint))
        let b = constantTimeEquals(cookie, Self.mac(previous, endpoint))
        return a || b
    }

    private static func mac(_ key: [UInt8], _ endpoint: Endpoint) -> [UInt8] {
        var w = Writer()
        w.bytes(BootstrapWire.cookieDomain)
        w.endpoint(endpoint)
        return BLAKE2b.hash(w.out, outputLength: BootstrapWire.cookieLength, key: key)
    }
}
