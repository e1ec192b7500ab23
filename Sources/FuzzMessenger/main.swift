// libFuzzer target for the readers of other people's bytes in Messenger (see MessengerReaders).
// `Tools/fuzz messenger SECONDS`; a plain build replays the files named on the command line.
MessengerReaders.main()
