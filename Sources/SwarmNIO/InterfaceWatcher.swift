import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Tells when the host's interfaces or addresses change, as the kernel announces it on a
/// route netlink socket (links, IPv4 and IPv6 addresses): LAN discovery looks at the
/// interfaces again within milliseconds of a cable plugged in, a DHCP lease, or an IPv6
/// address leaving its tentative state, rather than at its next look (every second, which
/// stays as the fallback: a lost netlink message — the socket's buffer overran — costs a
/// second at most).
///
/// One thread waits in `poll` on the netlink socket and a pipe that `stop()` writes to;
/// every batch of messages read is one call of `changed` (what changed is not parsed: the
/// look reads the interfaces whole). Linux only; elsewhere, or where the socket cannot be
/// opened (a sandbox without netlink), `init` returns nil and the looks every second remain.
final class InterfaceWatcher: Sendable {
    private let socket: Int32
    private let wake: (read: Int32, write: Int32)
    private let stopped = Atomic<Bool>(false)

    init?(changed: @escaping @Sendable () -> Void) {
        #if os(Linux)
        let fd = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Self.routeProtocol)
        guard fd >= 0 else { return nil }
        // struct sockaddr_nl: family (16 bits), padding (16), port id (32: 0, the kernel
        // assigns one), multicast groups (32).
        var address = (family: UInt16(AF_NETLINK), pad: UInt16(0), pid: UInt32(0),
                       groups: UInt32(Self.linkGroup | Self.ipv4AddressGroup | Self.ipv6AddressGroup))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, 12) }
        }
        var pipeEnds: [Int32] = [0, 0]
        guard bound == 0, pipe(&pipeEnds) == 0 else {
            close(fd)
            return nil
        }
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        socket = fd
        wake = (pipeEnds[0], pipeEnds[1])
        // The thread holds the watcher until `stop()` ends it.
        let thread = Thread { [self] in
            // Named from inside: set before `start`, the name does not reach the kernel.
            Thread.current.name = "if-watch"
            run(changed)
        }
        thread.start()
        #else
        return nil
        #endif
    }

    /// NETLINK_ROUTE (linux/netlink.h), which Glibc's module does not carry.
    static let routeProtocol: Int32 = 0
    // RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR (linux/rtnetlink.h).
    static let linkGroup = 0x1
    static let ipv4AddressGroup = 0x10
    static let ipv6AddressGroup = 0x100

    /// Ends the thread (it closes the socket and the pipe's reading end on its way out).
    /// Idempotent; the watcher lives until it is called.
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        close(wake.write)
    }

    private func run(_ changed: @Sendable () -> Void) {
        var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while !stopped.load(ordering: .acquiring) {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents != 0 { break }
            guard fds[0].revents != 0 else { continue }
            if fds[0].revents & Int16(POLLIN) == 0 { break }  // error or hang-up: leave it to the looks
            // Drain what is there (a burst: an address and its routes), then tell once. An
            // overrun (ENOBUFS) also means something changed.
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count > 0 || (count < 0 && (errno == ENOBUFS || errno == EINTR)) { continue }
                break
            }
            changed()
        }
        close(socket)
        close(wake.read)
    }
}
