import CSodium

/// libsodium is initialised exactly once, from whichever thread first needs it.
///
/// Swift runs the initialiser of a global `let` exactly once and thread-safely, so every
/// entry point of this module touches `Sodium.ready` before calling into libsodium.
public enum Sodium {
    static let ready: Void = {
        // sodium_init returns 0 on success, 1 if already initialised, -1 on failure.
        // Failure means no usable entropy source: nothing cryptographic can continue.
        precondition(sodium_init() >= 0, "libsodium could not be initialised")
    }()

    /// Initialise libsodium now (optional: every API in this module does it on first use).
    public static func initialize() { _ = ready }

    /// The libsodium version string, for diagnostics.
    public static var version: String {
        _ = ready
        return String(cString: sodium_version_string())
    }
}
