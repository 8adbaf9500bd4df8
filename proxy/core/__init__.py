"""Pure decisions: no I/O, no clock, no event loop (routing, the rollout's state machine,
JSON paths, deprecation rules, the report)."""
