"""Release traffic: who the client is, which release serves it, the rollout, and the split's
state."""
