"""The ``switchback`` command line: ``proxy.cli.commands`` parses it, each command talks to the
admin API or runs Switchback."""

from proxy.cli.commands import main

__all__ = ["main"]
