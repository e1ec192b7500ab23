// libFuzzer target for the Noise message readers (see NoiseReaders).
//
// Built with `-sanitize=fuzzer,address -DFUZZING` (Tools/fuzz noise SECONDS), it hands
// control to libFuzzer's driver: SwiftPM links executables with `--defsym main=…_main`,
// which hides libFuzzer's own `main` (../shared/MACHINE.md). A plain build replays the
// files named on the command line instead, so crash inputs can be debugged normally.
// With FUZZ_WRITE_SEEDS=DIR it writes the seed corpus to DIR and exits.
import Foundation

if let directory = ProcessInfo.processInfo.environment["FUZZ_WRITE_SEEDS"] {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for seed in NoiseReaders.seeds {
        try Data(seed.bytes).write(to: URL(fileURLWithPath: directory).appendingPathComponent("seed-\(seed.name)"))
    }
    exit(0)
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ userCallback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

// libFuzzer's own main (linked in, though unused) refers to this symbol.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    NoiseReaders.fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    NoiseReaders.fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
})
#else
let files = CommandLine.arguments.dropFirst()
if files.isEmpty {
    print("usage: fuzz-noise FILE...   (replays inputs; build with -DFUZZING for libFuzzer, see Tools/fuzz)")
    exit(2)
}
for path in files {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    bytes.withUnsafeBytes { NoiseReaders.fuzzOne($0) }
    print("ok \(path) (\(bytes.count) bytes)")
}
#endif
