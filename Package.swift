// swift-tools-version: 6.0
import PackageDescription

// The module graph mirrors the layers of DESIGN.md:
//   CSodium → Sodium → Noise ─┐
//                             ├→ Swarm (sans-I/O) → SwarmNIO (the one module that owns sockets)
//   CSQLite → Books ──────────┴→ Replication → Vault/Messenger → bookswarm
let package = Package(
    name: "Bookswarm",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Sodium", targets: ["Sodium"]),
        .executable(name: "bookswarm-bench", targets: ["BookswarmBench"]),
        .library(name: "Noise", targets: ["Noise"]),
        .executable(name: "fuzz-noise", targets: ["FuzzNoise"]),
        .library(name: "SwarmNIO", targets: ["SwarmNIO"]),
        .executable(name: "discovery-probe", targets: ["DiscoveryProbe"]),
        .library(name: "Books", targets: ["Books"]),
        .executable(name: "books-crash-child", targets: ["BooksCrashChild"]),
        .library(name: "Replication", targets: ["Replication"]),
        .executable(name: "swarm-peer", targets: ["SwarmPeer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Sodium", dependencies: ["CSodium"]),
        .target(name: "Swarm", dependencies: ["Sodium", "Noise", .product(name: "NIOCore", package: "swift-nio")]),
        .target(name: "Noise", dependencies: ["Sodium"]),
        .target(name: "Messenger", dependencies: ["Sodium", "Swarm"]),
        .target(name: "Vault", dependencies: ["Sodium", "Swarm"]),
        .executableTarget(name: "BookswarmBench", dependencies: ["Sodium", "Swarm", "Noise", "Books", "CSQLite", "SwarmNIO"]),
        .executableTarget(name: "FuzzNoise", dependencies: ["Sodium", "Noise"]),
        .target(name: "SwarmNIO", dependencies: [
            "Swarm",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .executableTarget(name: "DiscoveryProbe", dependencies: ["Swarm", "SwarmNIO", "Sodium"]),
        .executableTarget(name: "SwarmPeer", dependencies: [
            "Swarm", "SwarmNIO", "Sodium", .product(name: "NIOCore", package: "swift-nio"),
        ]),

        .target(name: "Books", dependencies: ["Sodium", "CSodium", "CSQLite"]),
        .executableTarget(name: "BooksCrashChild", dependencies: ["Books", "Sodium"]),
        .target(name: "Replication", dependencies: ["Books", "Swarm", "Sodium"]),

        .testTarget(name: "SodiumTests", dependencies: ["Sodium"]),
        .testTarget(name: "NoiseTests", dependencies: ["Sodium", "Noise"]),
        .testTarget(name: "VaultTests", dependencies: ["Vault", "Sodium"]),
        .testTarget(name: "SwarmTests", dependencies: ["Swarm", "SwarmNIO", "Sodium"]),
        .testTarget(name: "MessengerTests", dependencies: ["Messenger", "Swarm", "Sodium"]),
        .testTarget(name: "ReplicationTests", dependencies: ["Replication", "Books", "Swarm", "SwarmNIO", "Sodium"]),
        .testTarget(name: "BooksTests", dependencies: ["Books", "Sodium", "CSQLite"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
