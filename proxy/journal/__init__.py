"""The write journal: what the candidate accepted, kept so that a rollback loses no data."""
