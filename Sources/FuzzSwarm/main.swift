// libFuzzer target for every reader of network bytes in the Swarm module (see SwarmReaders).
// `Tools/fuzz swarm SECONDS`; a plain build replays the files named on the command line.
SwarmReaders.main()
