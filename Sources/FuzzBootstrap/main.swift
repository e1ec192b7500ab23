// libFuzzer target for the readers of network bytes in Bootstrap (see BootstrapReaders).
// `Tools/fuzz bootstrap SECONDS`; a plain build replays the files named on the command line.
BootstrapReaders.main()
