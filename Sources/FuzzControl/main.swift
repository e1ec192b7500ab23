// libFuzzer target for the daemon's control socket (see ControlReaders).
// `Tools/fuzz control SECONDS`; a plain build replays the files named on the command line.
ControlReaders.main()
