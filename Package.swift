// swift-tools-version: 6.0
import PackageDescription

// The module graph mirrors the layers of DESIGN.md:
//   CSodium → Sodium → Noise ─┐
//                             ├→ Swarm (sans-I/O) → SwarmNIO (the one module that owns sockets)
//   CSQLite → Books ──────────┴→ Replication → Vault/Messenger → bookswarm
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")

let package = Package(
    name: "Bookswarm",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Sodium", targets: ["Sodium"]),
        .library(name: "Noise", targets: ["Noise"]),
        .library(name: "Books", targets: ["Books"]),
        .library(name: "Swarm", targets: ["Swarm"]),
        .library(name: "SwarmNIO", targets: ["SwarmNIO"]),
        .library(name: "Replication", targets: ["Replication"]),
        .library(name: "Vault", targets: ["Vault"]),
        .library(name: "Messenger", targets: ["Messenger"]),
        .executable(name: "bookswarm", targets: ["BookswarmCLI"]),
        .library(name: "Bootstrap", targets: ["Bootstrap"]),
        .library(name: "BootstrapNIO", targets: ["BootstrapNIO"]),
        .executable(name: "bookswarm-bootstrap", targets: ["BootstrapNode"]),
        .executable(name: "bootstrap-peer", targets: ["BootstrapPeer"]),
        .executable(name: "bookswarm-bench", targets: ["BookswarmBench"]),
        .executable(name: "bookswarm-demo", targets: ["BookswarmDemo"]),
        .executable(name: "fuzz-noise", targets: ["FuzzNoise"]),
        .executable(name: "fuzz-swarm", targets: ["FuzzSwarm"]),
        .executable(name: "fuzz-replication", targets: ["FuzzReplication"]),
        .executable(name: "fuzz-bootstrap", targets: ["FuzzBootstrap"]),
        .executable(name: "fuzz-messenger", targets: ["FuzzMessenger"]),
        .executable(name: "fuzz-control", targets: ["FuzzControl"]),
        .executable(name: "discovery-probe", targets: ["DiscoveryProbe"]),
        .executable(name: "swarm-peer", targets: ["SwarmPeer"]),
        .executable(name: "books-crash-child", targets: ["BooksCrashChild"]),
        .executable(name: "replication-peer", targets: ["ReplicationPeer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // Foundation: system libraries and crypto.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Sodium", dependencies: ["CSodium"]),
        .target(name: "Noise", dependencies: ["Sodium"]),

        // Books: the DB.
        .target(name: "Books", dependencies: ["Sodium", "CSodium", "CSQLite"]),

        // Swarm: sessions and discovery (sans-I/O), and the one module with sockets.
        .target(name: "Swarm", dependencies: ["Sodium", "Noise", nioCore]),
        .target(name: "SwarmNIO", dependencies: ["Swarm", "Sodium", nioCore, nioPosix]),

        // Bootstrap: rendezvous, hole punching and relay (sans-I/O), and its glue to UDPTransport
        // (no socket code of its own: SwarmNIO stays the one module with sockets).
        .target(name: "Bootstrap", dependencies: ["Swarm", "Sodium"]),
        .target(name: "BootstrapNIO", dependencies: ["Bootstrap", "Swarm", "SwarmNIO", "Sodium", nioCore, nioPosix]),

        // Replication, and the messenger on top.
        .target(name: "Replication", dependencies: ["Books", "Swarm", "Sodium"]),
        // Vault: one peer's DB and IO (directory, lock, identity, store, swarm over UDP).
        // Messenger: tasks, chat and the connection protocol over a store and a swarm; it
        // does not need the vault, so its tests run over in-memory swarms.
        .target(name: "Vault", dependencies: ["Sodium", "Books", "Swarm", "SwarmNIO", "Bootstrap", "BootstrapNIO"]),
        .target(name: "Messenger", dependencies: ["Sodium", "Books", "Swarm", "Replication"]),
        // The daemon's control protocol: requests and the daemon's answers (PROTOCOL.md §10.7),
        // apart from the command so that a fuzz target can drive it.
        .target(name: "BookswarmControl", dependencies: ["Messenger", "Vault", "Books", "Swarm", "SwarmNIO"]),
        .executableTarget(name: "BookswarmCLI", dependencies: [
            "BookswarmControl", "Vault", "Messenger", "Books", "Swarm", "SwarmNIO", "Bootstrap", "BootstrapNIO", "Sodium",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // The one-JSON-object-per-line event output of the processes below that tests spawn.
        .target(name: "JSONLines"),

        // Executables: tools, demo, fuzzing, and the processes integration tests spawn.
        .executableTarget(name: "BookswarmBench", dependencies: ["Sodium", "Noise", "Books", "CSQLite", "Swarm", "SwarmNIO", "Replication", "Bootstrap", "BootstrapNIO", "Messenger"]),
        .executableTarget(name: "BookswarmDemo", dependencies: ["Sodium", "Noise", nioCore, nioPosix]),
        // The fuzz targets of the readers of network bytes (one per module, a selector byte
        // per reader), over one shared driver.
        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzNoise", dependencies: ["FuzzSupport", "Sodium", "Noise"]),
        .executableTarget(name: "FuzzSwarm", dependencies: ["FuzzSupport", "Swarm", "Noise", "Sodium", nioCore]),
        .executableTarget(name: "FuzzReplication", dependencies: ["FuzzSupport", "Replication", "Books", "Swarm", "Sodium"]),
        .executableTarget(name: "FuzzBootstrap", dependencies: ["FuzzSupport", "Bootstrap", "Swarm", "Sodium"]),
        .executableTarget(name: "FuzzMessenger", dependencies: ["FuzzSupport", "Messenger", "Books", "Swarm", "Sodium"]),
        .executableTarget(name: "FuzzControl", dependencies: [
            "FuzzSupport", "BookswarmControl", "Messenger", "Books", "Swarm", "SwarmNIO", "Sodium", nioCore,
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .executableTarget(name: "DiscoveryProbe", dependencies: ["Swarm", "SwarmNIO", "Sodium"]),
        .executableTarget(name: "SwarmPeer", dependencies: ["JSONLines", "Swarm", "SwarmNIO", "Sodium", nioCore]),
        .executableTarget(name: "BooksCrashChild", dependencies: ["Books", "Sodium"]),
        .executableTarget(name: "ReplicationPeer", dependencies: ["JSONLines", "Replication", "Books", "Swarm", "SwarmNIO", "Sodium"]),
        .executableTarget(name: "BootstrapNode", dependencies: ["JSONLines", "Bootstrap", "BootstrapNIO", "Swarm"]),
        .executableTarget(name: "BootstrapPeer", dependencies: ["JSONLines", "Bootstrap", "BootstrapNIO", "Swarm", "SwarmNIO", "Sodium"]),

        // Helpers several test targets share (test targets cannot share files).
        .target(name: "BookswarmTestSupport", path: "Tests/Support"),

        .testTarget(name: "SodiumTests", dependencies: ["Sodium"]),
        .testTarget(name: "NoiseTests", dependencies: ["Sodium", "Noise"]),
        .testTarget(name: "BooksTests", dependencies: ["Books", "Sodium", "CSQLite"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SwarmTests", dependencies: [
            "BookswarmTestSupport", "Swarm", "SwarmNIO", "Sodium", .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "ReplicationTests", dependencies: ["BookswarmTestSupport", "Replication", "Books", "Swarm", "SwarmNIO", "Sodium"]),
        .testTarget(name: "BootstrapTests", dependencies: ["BookswarmTestSupport", "Bootstrap", "BootstrapNIO", "Swarm", "SwarmNIO", "Sodium", "Books", "Replication"]),
        .testTarget(name: "VaultTests", dependencies: ["Vault", "Books", "Sodium", "Swarm"]),
        .testTarget(name: "MessengerTests", dependencies: ["Messenger", "Books", "Replication", "Swarm", "Sodium"]),
        .testTarget(name: "JSONLinesTests", dependencies: ["JSONLines"]),
        .testTarget(name: "BookswarmControlTests", dependencies: ["BookswarmControl", "Messenger", "Books", "Sodium"]),
        .testTarget(name: "CLITests", dependencies: ["BookswarmTestSupport", "Messenger", "Sodium", "BookswarmCLI"]),
    ],
    swiftLanguageModes: [.v6]
)
