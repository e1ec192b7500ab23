/// Where LAN discovery datagrams go (PROTOCOL.md §6.1).
public enum DiscoveryGroup {
    /// The discovery port, shared by every Bookswarm process on a host (`SO_REUSEADDR`).
    /// 24771 is not in the IANA registry's assigned list as shipped in Debian's
    /// /etc/services, and lies below Linux's ephemeral range (32768–60999), so the kernel
    /// never hands it to an unrelated socket.
    public static let port: UInt16 = 24771

    /// IPv4 group 239.255.66.83 ("B", "S"): inside 239.255.0.0/16, the IPv4 Local Scope of
    /// RFC 2365 §6.1, which routers must not forward beyond the site; with TTL 1 the
    /// datagrams stay on the link anyway. Administratively scoped, so no registration needed.
    public static let ipv4: Endpoint = .v4(239, 255, 66, 83, port: port)

    /// IPv6 group ff02::4253:4c44 (link-local scope, "BSLD"), for a transport that adds
    /// IPv6 discovery; RFC 4291 §2.7 scope 2 never leaves the link.
    public static let ipv6: Endpoint = Endpoint(
        address: .v6([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x53, 0x4c, 0x44]), port: port)
}
