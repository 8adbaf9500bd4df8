"""``switchback demo``: two sample releases and a guided rollout."""
