"""Deprecation telemetry on the request path: detect, tell the client, count, remember."""
