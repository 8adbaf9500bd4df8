"""The running proxy: assembles the pipeline, owns the pools, listeners and background tasks.

``Runtime`` is the listener's ``Context`` and the admin API's ``AdminRuntime``. Start-up order:
config (already validated) -> state restored (an unusable saved state stops here, with
``StateError``, before anything listens) -> pools -> pipeline -> traffic listener -> admin
listener -> background tasks -> ready. ``stop`` reverses it, draining in-flight requests.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from proxy.admin.api import make_admin_app
from proxy.app import journal_side
from proxy.app.metrics import Metrics
from proxy.app.settings import listener_settings, raise_fd_limit
from proxy.config.checks import split_host_port
from proxy.config.load import load_config
from proxy.config.secrets import api_key_secret
from proxy.core.enforcement_report import enforcement_json
from proxy.core.history import REFUSED, RELOAD_FAILED, ROLLBACK, Events, History
from proxy.core.routing import TrafficState, failover_target
from proxy.core.shadowreport import field_usage, require_clean
from proxy.core.window import Windows
from proxy.deprecation.enforce import EnforceStep, enforces
from proxy.deprecation.fields import fields_step
from proxy.deprecation.step import FOUND, DeprecationStep
from proxy.deprecation.telemetry import Telemetry
from proxy.errors import ConfigError, RolloutError
from proxy.fleet.assemble import make_coordinator, standalone_view
from proxy.http.listener import Listener
from proxy.http.pool import Pools, UpstreamPool
from proxy.http.tunnel import TunnelRegistry
from proxy.http.whole import WholeSender
from proxy.logs.output import LogOutput
from proxy.pipeline import Pipeline, Step
from proxy.schema import Config
from proxy.shadow.sender import Shadower
from proxy.shadow.step import ShadowStep
from proxy.traffic.clients import ClientIdentifier
from proxy.traffic.control import TrafficControl
from proxy.traffic.steps import ChooseRelease, IdentifyClient, RecordExchange

if TYPE_CHECKING:
    from proxy.fleet.coordinator import Coordinator

log = logging.getLogger("switchback")


class Runtime:
    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.metrics = metrics if metrics is not None else Metrics()
        self.registry = self.metrics.registry
        self.started_at = time.time()
        self.ready = False
        self.tunnels = TunnelRegistry()
        self.tasks: set[asyncio.Task[None]] = set()
        self.windows = Windows()
        self.control = TrafficControl(
            config, self.metrics.traffic, self.windows, self.loop.time, self._rolled_back
        )
        self.journal = journal_side.make(self.metrics.journal, config)
        self.logs = LogOutput(self.metrics.logs)  # opened by start()
        self.telemetry = Telemetry(config, self.metrics.deprecation)
        self.settings = listener_settings(config)
        self.upstream = Pools({}, self.spawn)
        sender = WholeSender(lambda: self.upstream, lambda: self.settings.trust_forwarded)
        self.shadower = Shadower(config, sender, self.metrics.shadow, self.loop, time.time)
        self.pipeline = Pipeline(())
        self.listener = Listener(self)
        self.admin_runner: web.AppRunner | None = None
        self.admin_port = 0
        self._reload_lock = asyncio.Lock()
        self.api_key_secret: bytes | None = None  # resolved by start() and each reload
        self._secret_file: str | None = None
        self.history = History()  # the status page's chart: window snapshots over time
        self.events = Events()  # and its recent rollbacks, refused reloads and refusals
        self.fleet_link: Coordinator | None = None  # with coordination: the shared state

    # -- the listener's Context --
    @property
    def traffic(self) -> TrafficState:
        return self.control.traffic

    @property
    def pools(self) -> dict[str, UpstreamPool]:
        return self.upstream.pools

    def failover(self, release: str) -> str | None:
        target = failover_target(self.control.traffic, release)
        return target if target in self.upstream.pools else None

    def upstream_error(self, release: str, kind: str) -> None:
        self.metrics.data_plane.upstream_errors.labels(release, kind).inc()

    def rejected(self, reason: str) -> None:
        self.metrics.data_plane.rejected.inc((reason,))
        self.logs.refused(reason)
        self.events.add(REFUSED, reason, time.time(), merge=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- assembly --
    def build_pipeline(self) -> Pipeline:
        """The request path, in order. A feature is one step here."""
        deprecations = bool(self.config.deprecations)
        steps: list[Step | None] = [
            IdentifyClient(ClientIdentifier(self.config.clients, self.api_key_secret)),
            ChooseRelease(self.control),
            ShadowStep(self.shadower, lambda: self.control.traffic.stable)
            if self.config.shadow
            else None,
            fields_step(self.config, self.telemetry, self.metrics.fields),  # before: it prunes
            DeprecationStep(self.telemetry) if deprecations else None,
            EnforceStep(self.telemetry) if enforces(self.config) else None,
            journal_side.step(self.config, self.journal, lambda: self.control.traffic),
            RecordExchange(self.metrics.traffic, self.windows, self.loop),
            self.logs.access_step(self.loop, FOUND),
        ]
        return Pipeline([step for step in steps if step is not None])

    def _make_pool(self, name: str) -> UpstreamPool:
        url = urlsplit(self.config.releases[name].url)
        up = self.config.upstream
        return UpstreamPool(
            name,
            url.hostname or "127.0.0.1",
            url.port or 80,
            up.connect_timeout,
            up.pool_size,
            self.config.limits.max_response_head_bytes,
            self.config.limits.max_in_flight,
        )

    def _resolve_api_key_secret(self, cfg: Config) -> bytes | None:
        """The API-key secret for ``cfg`` (ConfigError when its file is unusable); says once
        when it is a generated one, which replicas do not share."""
        found = api_key_secret(cfg)
        kept_in = found[1] if found is not None else None
        if kept_in is not None and kept_in != self._secret_file:
            log.warning(
                "clients.api_key_header is set without clients.api_key_secret or "
                "SWITCHBACK_API_KEY_SECRET: API keys are hashed with the secret generated in %s. "
                "Replicas of a fleet must share one configured secret, or each gives the same "
                "key a different client id",
                kept_in,
            )
        self._secret_file = kept_in
        return found[0] if found is not None else None

    async def start(self) -> None:
        cfg = self.config
        self.logs.open(cfg.logging)
        self.api_key_secret = self._resolve_api_key_secret(cfg)
        self.control.restore()
        self.upstream = Pools({name: self._make_pool(name) for name in cfg.releases}, self.spawn)
        dp = self.metrics.data_plane
        for name in self.pools:
            dp.add_release(name)
            dp.in_flight.labels(name).set_function(self._in_flight_of(name))
            dp.tunnels.labels(name).set_function(self._tunnels_of(name))
        await self.telemetry.start(self.spawn)
        self.metrics.journal.add_releases(cfg.releases)
        self.journal.open()
        self.spawn(self.journal.run())
        self.pipeline = self.build_pipeline()
        raise_fd_limit(2 * cfg.limits.max_connections + 256)
        dp.loop_lag.set_function(lambda: self.listener.loop_lag)
        dp.shedding.set_function(lambda: 1.0 if self.listener.shedding else 0.0)
        host, port = split_host_port(cfg.listen, any_port=True)
        await self.listener.start(host, port)
        self.fleet_link = make_coordinator(self, cfg, self.port)
        if self.fleet_link is not None:
            await self.fleet_link.start(self.spawn)
        self.admin_runner = web.AppRunner(make_admin_app(self), access_log=None)
        await self.admin_runner.setup()
        ahost, aport = split_host_port(cfg.admin.listen, any_port=True)
        site = web.TCPSite(self.admin_runner, ahost, aport, reuse_address=True)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp keeps the bound socket here
        sockets = getattr(server, "sockets", None) or []
        self.admin_port = int(sockets[0].getsockname()[1]) if sockets else aport
        self.spawn(self._ticker())
        # Objects alive after start-up live for the whole run: keep the cyclic collector
        # from scanning them on every collection (p99 at one connection: ~9 ms -> ~1.4 ms).
        gc.collect()
        gc.freeze()
        self.ready = True
        log.info("switchback listening on %s:%d (admin %s:%d), %s", host, self.port, ahost,
                 self.admin_port, _fmt(self.control.traffic))  # fmt: skip

    @property
    def port(self) -> int:
        return self.listener.port

    def _in_flight_of(self, name: str) -> Callable[[], float]:
        return lambda: float(self.pools[name].in_flight) if name in self.pools else 0.0

    def _tunnels_of(self, name: str) -> Callable[[], float]:
        return lambda: float(self.tunnels.count(name))

    async def stop(self) -> None:
        self.ready = False
        cut = await self.listener.drain(self.config.server.drain_timeout)
        if cut:
            log.warning("drain timeout: closed %d connection(s) with requests in flight", cut)
        for pool in self.pools.values():
            pool.close()
        if self.fleet_link is not None:
            await self.fleet_link.stop()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.telemetry.close()
        await self.journal.close()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
        self.logs.stop()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            # The rollout's judgement, then the save a full disk refused (once it takes it).
            jobs = (self.control.tick, self.control.retry_persist, self.logs.tick)
            for job in (*jobs, self._sample_history):
                try:
                    job()
                except Exception:  # a bug in one must not stop the loop
                    log.exception("%s failed", job.__name__)

    def _sample_history(self) -> None:
        now = time.time()
        if self.history.due(now):
            traffic, rollout = self.control.traffic, self.control.rollout
            self.history.add(
                now,
                {
                    "stable": traffic.stable,
                    "candidate": traffic.candidate,
                    "state": rollout.state,
                    "releases": self._release_stats(),
                },
            )

    def _rolled_back(self, release: str) -> None:
        reason = self.control.rollout.reason or "manual"
        self.events.add(ROLLBACK, f"{release} taken out of service: {reason}", time.time())
        self.journal.end_episode(time.time())
        self._close_tunnels_later(release)

    def _close_tunnels_later(self, release: str) -> None:
        grace = self.config.rollout.websocket_grace
        self.loop.call_later(grace, self.tunnels.close_release, release)

    # -- reload --
    async def reload(self) -> dict[str, Any]:
        """Validate the config file again and switch to it, or keep the old one and raise."""
        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(load_config, self.config.source)
                self._apply(new)
            except ConfigError as exc:
                self.metrics.reloads.reload_failures.inc()
                self.events.add(RELOAD_FAILED, str(exc), time.time())
                fields = {"accepted": False, "error": str(exc)}
                log.error("config reload refused, keeping the old config: %s", exc,
                          extra={"event": "reload", "fields": fields})  # fmt: skip
                raise
            self.metrics.reloads.reloads.inc()
            fields = {"accepted": True, "file": new.source}
            log.info("config reloaded from %s", new.source,
                     extra={"event": "reload", "fields": fields})  # fmt: skip
            return {"reloaded": new.source, **self.control.summary()}

    def _apply(self, new: Config) -> None:
        old = self.config
        problems = []
        fixed = (
            ("listen", new.listen, old.listen),
            ("admin.listen", new.admin.listen, old.admin.listen),
            ("state_dir", new.state_dir, old.state_dir),
            ("telemetry.ledger", new.telemetry.ledger, old.telemetry.ledger),
            ("telemetry.replica", new.telemetry.replica, old.telemetry.replica),
        )
        for key, now, before in fixed:
            if now != before:
                problems.append(f"{new.source}: {key}: changing it needs a restart")
        if set(new.releases) != set(old.releases):
            problems.append(f"{new.source}: releases: renaming releases needs a restart")
        for name in set(new.releases) & set(old.releases):
            if new.releases[name].url != old.releases[name].url:
                weight = self.control.traffic.weights.get(name, 0.0)
                busy = self.pools[name].in_flight
                if weight > 0 or busy:
                    problems.append(
                        f"{new.source}: releases.{name}.url: {new.releases[name].url} refused: "
                        f"{name} carries {weight:g}% of traffic and {busy} request(s) in "
                        "flight; a release's URL may change only at 0% with nothing in flight"
                    )
        if problems:
            raise ConfigError("\n".join(problems))
        secret = self._resolve_api_key_secret(new)
        pending_log = self.logs.prepare(new.logging)  # a logging.file that cannot open: refused
        try:
            self.control.reconfigure(new)
        except RolloutError as exc:
            self.logs.discard(pending_log)
            raise ConfigError(str(exc)) from None
        self.config = new
        self.logs.apply(new.logging, pending_log)
        for name in new.releases:
            pool = self.pools[name]
            if new.releases[name].url != old.releases[name].url:
                # Only allowed with nothing in flight (checked above): a fresh pool.
                self.pools[name] = self._make_pool(name)
                pool.close()
            else:
                # Same release, new settings: the pool and its in-flight requests stay.
                pool.connect_timeout = new.upstream.connect_timeout
                pool.max_idle = new.upstream.pool_size
                pool.max_head_bytes = new.limits.max_response_head_bytes
                pool.max_in_flight = new.limits.max_in_flight
        self.settings = listener_settings(new)
        self.telemetry.reconfigure(new)
        self.shadower.reconfigure(new)
        self.journal.config = new.journal
        self.api_key_secret = secret
        self.pipeline = self.build_pipeline()

    # -- the admin API's AdminRuntime --
    def _release_stats(self) -> dict[str, dict[str, Any]]:
        """Each release's weight and traffic over the rollout's window (step_seconds)."""
        now = self.loop.time()
        window = self.control.rollout.step_seconds
        releases = {}
        for name, rel in self.config.releases.items():
            stats = self.windows.snapshot(name, now, window)
            releases[name] = {
                "url": rel.url,
                "weight": self.control.traffic.weights.get(name, 0.0),
                "in_flight": self.pools[name].in_flight if name in self.pools else 0,
                "websockets": self.tunnels.count(name),
                "requests": stats.requests,
                "rate_per_s": round(stats.rate_per_s, 3),
                "error_rate": round(stats.error_rate, 5),
                "p99_ms": None if stats.p99_ms is None else round(stats.p99_ms, 3),
            }
        return releases

    def status(self) -> dict[str, Any]:
        return {
            **self.control.summary(),
            "releases": self._release_stats(),
            "pins": dict(self.control.traffic.pins),  # client id -> release
            "window_seconds": self.control.rollout.step_seconds,
            "client_id_header": self.config.clients.id_header,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "config_file": self.config.source,
            "ledger": self.telemetry.ledger.health() if self.telemetry.ledger else None,
            "enforcement": enforcement_json(self.config.deprecations, time.time()),
            "journal": self.journal.health(),
            "coordination": self.fleet_link.summary() if self.fleet_link else None,
        }

    def status_history(self) -> dict[str, Any]:
        return self.history.to_json()

    def recent_events(self) -> dict[str, Any]:
        return self.events.to_json()

    async def fleet(self) -> dict[str, Any]:
        link = self.fleet_link
        return standalone_view(self.control.summary()) if link is None else await link.view()

    def set_weights(self, weights: dict[str, float]) -> dict[str, Any]:
        return self.control.set_weights(weights)

    def rollback(self, reason: str) -> dict[str, Any]:
        """The rollback, and what the candidate wrote since it began to carry traffic."""
        traffic = self.control.traffic
        episode = self.journal.episode(traffic.candidate)
        answer = self.control.rollback(reason or "manual")
        return {**answer, "journal": {**episode, "replay_to": traffic.stable}}

    def promote(self) -> dict[str, Any]:
        answer = self.control.promote()
        self.journal.end_episode(time.time())
        return answer

    def start_rollout(self, overrides: dict[str, Any]) -> dict[str, Any]:
        if self.config.rollout.require_clean_shadow:
            require_clean(self.shadow_report(None))  # ShadowNotClean names what it saw
        return self.control.start_rollout(overrides)

    def shadow_report(self, limit: int | None) -> dict[str, Any]:
        usage = field_usage(self.telemetry.report(None)) if self.config.deprecations else {}
        return self.shadower.report(usage, limit)

    def pause_rollout(self) -> dict[str, Any]:
        return self.control.pause()

    def resume_rollout(self) -> dict[str, Any]:
        return self.control.resume()

    async def deprecation_report(self, days: int | None) -> dict[str, Any]:
        return await self.telemetry.report_async(days)

    async def journal_list(
        self, since: float | None, release: str | None, limit: int | None
    ) -> dict[str, Any]:
        return await journal_side.listing(self.journal, since, release, limit)

    async def journal_replay(
        self, to: str, since: float | None, dry_run: bool, again: bool, headers: list[str]
    ) -> dict[str, Any]:
        options = journal_side.Replay(to, since, dry_run, again, headers)
        return await journal_side.replay_to(self.journal, self.upstream, self.config, options)


def _fmt(traffic: TrafficState) -> str:
    weights = ", ".join(f"{k} {v:g}%" for k, v in traffic.weights.items())
    return f"stable {traffic.stable}, {weights}"
