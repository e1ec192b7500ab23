// The driver every fuzz target shares (../shared/MACHINE.md, "libFuzzer").
//
// Built with `-sanitize=fuzzer,address -DFUZZING` (Tools/fuzz NAME SECONDS), `FuzzTarget.main`
// hands control to libFuzzer's driver: SwiftPM links executables with `--defsym main=…_main`,
// which hides libFuzzer's own `main`. A plain build replays the files named on the command
// line instead, so a crash input can be debugged normally. With FUZZ_WRITE_SEEDS=DIR a target
// writes its seed corpus (genuine encodings) to DIR and exits.
import Foundation

/// One fuzz target: a reader (or several, behind a selector byte) of bytes from another
/// machine, poised with fixed keys so that every run, and every crash input, is reproducible.
public protocol FuzzTarget {
    /// The product's name without `fuzz-`, for messages.
    static var name: String { get }
    /// Feeds one input to the readers and traps (`precondition`) when an invariant breaks.
    static func fuzzOne(_ input: [UInt8])
    /// Genuine encodings, each already prefixed with whatever selects its reader.
    static var seeds: [(name: String, bytes: [UInt8])] { get }
}

/// The target that `LLVMFuzzerTestOneInput` feeds (libFuzzer's callback cannot capture it).
nonisolated(unsafe) private var current: (any FuzzTarget.Type)?

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ userCallback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// libFuzzer's own main (linked in, though unused) refers to this symbol.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    current?.fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#endif

extension FuzzTarget {
    /// The executable's whole life: writes the seeds, fuzzes, or replays files.
    public static func main() -> Never {
        current = Self.self
        if let directory = ProcessInfo.processInfo.environment["FUZZ_WRITE_SEEDS"] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for seed in seeds {
                    let url = URL(fileURLWithPath: directory).appendingPathComponent("seed-\(seed.name)")
                    try Data(seed.bytes).write(to: url)
                }
            } catch {
                FileHandle.standardError.write(Data("fuzz-\(name): cannot write seeds to \(directory): \(error)\n".utf8))
                exit(1)
            }
            exit(0)
        }
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            current?.fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
        #else
        let files = CommandLine.arguments.dropFirst()
        if files.isEmpty {
            print("usage: fuzz-\(name) FILE...   (replays inputs; build with -DFUZZING for libFuzzer, see Tools/fuzz)")
            exit(2)
        }
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("fuzz-\(name): cannot read \(path)\n".utf8))
                exit(1)
            }
            let bytes = [UInt8](data)
            fuzzOne(bytes)
            print("ok \(path) (\(bytes.count) bytes)")
        }
        exit(0)
        #endif
    }
}
