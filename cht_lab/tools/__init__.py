"""Tools around the library: the replay server, the demo and the sample generator."""
