// libFuzzer target for the Noise message readers (see NoiseReaders).
// `Tools/fuzz noise SECONDS`; a plain build replays the files named on the command line.
NoiseReaders.main()
