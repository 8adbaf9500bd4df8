"""The assembly: the running proxy, its pipeline, metrics and process lifecycle."""
