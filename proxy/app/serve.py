"""``switchback run``: the process around the runtime.

Signals: SIGTERM and SIGINT drain and exit 0; SIGHUP reloads the config (one received while
starting is honoured once running, rather than ending the process). The config file is also
watched (polled once a second, following symlinks, so a Kubernetes ConfigMap update, which swaps
a symlink, is seen) and reloaded when it changes. A reload that fails keeps the old config.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from proxy.errors import ConfigError, StateError
from proxy.schema import Config

if TYPE_CHECKING:  # imported by serve(): run_main catches SIGHUP before the heavy imports
    from proxy.app.runtime import Runtime

log = logging.getLogger("switchback")

WATCH_SECONDS = 1.0


Fingerprint = tuple[float, int, int]


def _fingerprint(path: str) -> Fingerprint | None:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ConfigMap target shows up here
    except OSError:
        return None
    return (st.st_mtime, st.st_ino, st.st_size)


async def watch_config(runtime: Runtime, read: Fingerprint | None = None) -> None:
    """Reload whenever the file's fingerprint changes. ``read`` is the fingerprint taken just
    before the config in force was read, so that a change made while starting is not missed;
    without it, changes count from the watcher's start."""
    path = runtime.config.source
    last = read if read is not None else _fingerprint(path)
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        now = _fingerprint(path)
        if now is None or now == last:
            continue
        last = now
        try:
            await runtime.reload()
        except ConfigError:
            pass  # logged and counted by reload(); the old config stays


async def serve(
    config: Config, read: Fingerprint | None = None, early_hups: Sequence[int] = ()
) -> int:
    """Run until SIGTERM or SIGINT. ``read``: the file's fingerprint before it was read;
    ``early_hups``: SIGHUPs received while starting (one reload follows once running)."""
    from proxy.app.runtime import Runtime
    from proxy.traffic.state import refusal

    loop = asyncio.get_running_loop()
    runtime = Runtime(config)
    runtime.logs.take_over()  # once open, every line has the configured format
    try:
        await runtime.start()
    except StateError as exc:  # raised before anything listens or runs
        print(f"switchback: {refusal(exc, config.source)}", file=sys.stderr)
        runtime.logs.close()
        return 1
    except OSError as exc:
        print(f"switchback: cannot start: {exc.strerror or exc}", file=sys.stderr)
        await runtime.stop()
        runtime.logs.close()
        return 1
    except ConfigError as exc:  # e.g. a state_dir where the API-key secret cannot be kept
        print(f"switchback: cannot start: {exc}", file=sys.stderr)
        await runtime.stop()
        runtime.logs.close()
        return 2
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def on_hup() -> None:
        async def reload() -> None:
            try:
                await runtime.reload()
            except ConfigError:
                pass  # logged and counted; the old config stays

        runtime.spawn(reload())

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if early_hups:  # the file may have changed after it was read: read it again
        on_hup()
    runtime.spawn(watch_config(runtime, read))
    await stop.wait()
    log.info("stopping: draining in-flight requests (up to %g s)", config.server.drain_timeout)
    await runtime.stop()
    log.info("stopped")
    runtime.logs.close()
    return 0


def run_main(path: str) -> int:
    """Load, validate and serve ``path``; a bad file is refused before anything starts."""
    # SIGHUP's default action ends the process. Until the event loop takes it over, a SIGHUP
    # (a reload asked for while starting) is noted and honoured once running. Installed before
    # the heavy imports, which take most of the start-up time.
    early_hups: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, frame: early_hups.append(signum))
    from proxy.config.load import load_config

    logging.basicConfig(
        level=os.environ.get("SWITCHBACK_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    read = _fingerprint(path)  # before reading: any change from here on is reloaded
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"switchback: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        return asyncio.run(serve(config, read, early_hups))
    return uvloop.run(serve(config, read, early_hups))
