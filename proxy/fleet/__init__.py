"""A fleet's shared traffic state in Redis: compare-and-set, notices, a leader's lease."""
