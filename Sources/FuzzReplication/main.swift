// libFuzzer target for the readers of network bytes in Replication and Books (see
// ReplicationReaders). `Tools/fuzz replication SECONDS`; a plain build replays files.
ReplicationReaders.main()
