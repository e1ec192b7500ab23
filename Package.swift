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
        .library(name: "Books", targets: ["Books"]),
        .executable(name: "books-crash-child", targets: ["BooksCrashChild"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Sodium", dependencies: ["CSodium"]),
        .target(name: "Swarm", dependencies: ["Sodium", .product(name: "NIOCore", package: "swift-nio")]),
        .executableTarget(name: "BookswarmBench", dependencies: ["Sodium", "Swarm", "Books", "CSQLite"]),
        .target(name: "Books", dependencies: ["Sodium", "CSodium", "CSQLite"]),
        .executableTarget(name: "BooksCrashChild", dependencies: ["Books", "Sodium"]),

        .testTarget(name: "SodiumTests", dependencies: ["Sodium"]),
        .testTarget(name: "BooksTests", dependencies: ["Books", "Sodium", "CSQLite"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
