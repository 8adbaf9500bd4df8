"""Switchback: a blue/green traffic proxy with deprecation telemetry for HTTP JSON APIs."""

__version__ = "0.1.0"
