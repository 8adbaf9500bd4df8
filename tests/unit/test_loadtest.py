"""The benchmark's own arithmetic and premises (loadtest/), without running wrk or servers.

What `make bench` reports is only as good as what it reads: /proc's CPU times, the servers'
counts, and bodies and configs that really make each rule variant hit or miss as described.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest

from proxy.config.load import parse_config
from proxy.core.jsonpaths import find, parse_path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtest"))

import answered  # noqa: E402
import bodies  # noqa: E402
import configs  # noqa: E402
import headline  # noqa: E402
import meter  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
from procstat import MachineTimes  # noqa: E402


def test_cpu_seconds_of_this_process_agree_with_os_times() -> None:
    sum(i * i for i in range(300_000))  # some CPU time of our own
    before = os.times()
    times = procstat.cpu_times(os.getpid())
    after = os.times()
    assert times is not None
    seconds = sum(times)
    # /proc counts every thread and os.times() only this process's, both in clock ticks.
    tick = procstat.TICK
    assert before.user + before.system - tick <= seconds <= after.user + after.system + tick


def test_pid_stat_command_names_with_spaces_and_parentheses() -> None:
    fields = ["S"] + [str(n) for n in range(4, 14)] + ["250", "50"] + ["0"] * 37
    text = "4242 (a (weird) name) " + " ".join(fields)
    assert sum(procstat.parse_pid_times(text)) == pytest.approx(300 * procstat.TICK)
    user, system = procstat.parse_pid_times(text)
    assert (user, system) == (pytest.approx(250 * procstat.TICK), pytest.approx(50 * procstat.TICK))


def test_user_and_system_time_of_this_process_agree_with_os_times() -> None:
    sum(i * i for i in range(300_000))
    before = os.times()
    times = procstat.cpu_times(os.getpid())
    after = os.times()
    assert times is not None
    tick = procstat.TICK
    assert before.user - tick <= times[0] <= after.user + tick
    assert before.system - tick <= times[1] <= after.system + tick


def test_machine_stat_kinds() -> None:
    text = "cpu  100 5 20 700 10 1 9 3 0 0\ncpu0 50 2 10 350 5 0 4 1 0 0\n"
    times = procstat.parse_machine_stat(text)
    tick = procstat.TICK
    assert times.busy == pytest.approx(125 * tick)
    assert times.interrupts == pytest.approx(10 * tick)
    assert times.steal == pytest.approx(3 * tick)
    assert times.idle == pytest.approx(710 * tick)


def test_gone_process_has_no_cpu_time() -> None:
    assert procstat.cpu_times(2**22 + 1) is None  # above the kernel's pid_max limit


def test_stub_status_requests() -> None:
    page = (
        "Active connections: 33 \nserver accepts handled requests\n 41 41 123456 \n"
        "Reading: 0 Writing: 1 Waiting: 32 \n"
    )
    assert answered.parse_stub_status(page) == 123456
    assert answered.parse_stub_busy(page) == 0  # the one writing is the status request
    assert answered.parse_stub_busy(page.replace("Reading: 0", "Reading: 2")) == 2
    assert answered.between("nginx", 1000, 1501) == 500  # the second status request
    with pytest.raises(ValueError, match="not a stub_status page"):
        answered.parse_stub_status("<html>404</html>")


def test_switchback_requests_summed_over_series() -> None:
    text = (
        "# TYPE switchback_requests_total counter\n"
        'switchback_requests_total{code="200",release="blue"} 9000.0\n'
        'switchback_requests_total{code="200",release="green"} 1000.0\n'
        'switchback_requests_created{code="200",release="blue"} 1.7e9\n'
        'switchback_request_duration_seconds_count{release="blue"} 9000.0\n'
    )
    assert answered.parse_switchback_metrics(text) == 10000
    assert answered.between("switchback", 10000, 10500) == 500


def _reading(
    at: float, front: float, upstream: float, wrk: float, busy: float, system: float = 0.0
) -> meter.Reading:
    machine = MachineTimes(busy, 0.0, 0.0, 0.0)
    return meter.Reading(at, front, upstream, wrk, machine, front_system=system)


def test_spent_per_request_and_other_work() -> None:
    before = _reading(10.0, 5.0, 2.0, 1.0, 100.0, system=2.0)
    after = _reading(12.0, 6.0, 2.5, 1.8, 103.0, system=2.4)  # 1 s front (0.4 system)
    cost = meter.spent(before, after, requests=20_000, front_is_upstream=False)
    assert cost["cpu_us"] == pytest.approx(50.0)
    assert cost["system_us"] == pytest.approx(20.0)
    assert cost["user_us"] == pytest.approx(30.0)
    assert cost["front_cores"] == pytest.approx(0.5)
    assert cost["other_cores"] == pytest.approx((3.0 - 2.3) / 2)
    # direct: the front is the upstream, counted once
    alone = meter.spent(before, after, requests=20_000, front_is_upstream=True)
    assert alone["other_cores"] == pytest.approx((3.0 - 1.8) / 2)


def _row(rnd: int, cpu: float, **more: float) -> dict[str, object]:
    return {
        "round": rnd, "target": "switchback", "size": "1KB", "connections": 32, "rps": 1000.0,
        "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us": cpu, "front_cores": 1.0, "non_2xx": 0,
        "socket_errors": 0, "count_ok": True, **more,
    }  # fmt: skip


def test_results_table_splits_cpu_into_user_and_system() -> None:
    runs = [
        _row(1, 50.0, user_us=30.0, system_us=20.0),
        _row(2, 60.0, user_us=34.0, system_us=26.0),
        _row(3, 55.0, user_us=31.0, system_us=24.0),
    ]
    lines = report.results_table(report.aggregate(runs), ["switchback"], ["1KB"], [32])
    assert "user / system" in lines[0]
    assert "| 55.0 µs ±9% | 31.0 µs / 24.0 µs |" in lines[2]
    # A run saved before the split was recorded shows a dash, not a made-up figure.
    old = report.results_table(report.aggregate([_row(1, 50.0)]), ["switchback"], ["1KB"], [32])
    assert "| 50.0 µs | – / – |" in old[2]


@pytest.mark.parametrize(
    ("requests", "front_answered", "ok"),
    [(1000, 1000, True), (1000, 1032, True), (1000, 1033, False), (1000, 999, False)],
)
def test_front_count_agrees_within_one_request_per_connection(
    requests: int, front_answered: int, ok: bool
) -> None:
    row = {"requests": requests, "answered": front_answered, "connections": 32}
    assert meter.count_ok(row) is ok


def test_ratio_is_per_round_median() -> None:
    runs = [
        {"round": r, "target": t, "size": "1KB", "connections": 32, "cpu_us": cpu}
        for r, t, cpu in [
            (1, "nginx", 20.0), (1, "switchback", 40.0),  # 0.5
            (2, "nginx", 30.0), (2, "switchback", 50.0),  # 0.6
            (3, "nginx", 20.0), (3, "switchback", 25.0),  # 0.8
            (4, "nginx", 20.0),  # no pair: left out
        ]
    ]  # fmt: skip
    found = headline.ratio(runs, "nginx", "switchback", "1KB", 32)
    assert found == headline.Ratio(0.6, 0.5, 0.8)
    assert headline.ratio(runs, "nginx", "switchback", "100KB", 32) is None


@pytest.mark.parametrize("size", list(bodies.SIZES))
@pytest.mark.parametrize("release", bodies.RELEASES)
def test_bodies_make_each_rule_hit_or_miss_as_described(size: str, release: str) -> None:
    items = bodies.SIZES[size][1]
    body = bodies.make_body(items, release)
    doc = orjson.loads(body)
    assert find(doc, parse_path("user.role")) == 1
    assert find(doc, parse_path("items[].role")) == 0
    assert b'"role"' in body  # so no key-name prefilter can skip the parse
    assert find(doc, parse_path("items[].id")) == items


@pytest.mark.parametrize("variant", list(configs.VARIANTS))
def test_switchback_config_of_every_variant_loads(variant: str, tmp_path: Path) -> None:
    ports = {"blue": 9001, "green": 9002}
    text = configs.switchback_conf(tmp_path, variant, 8080, 9901, ports)
    cfg = parse_config(text, f"{variant}.yaml", {})
    assert [d.field for d in cfg.deprecations] == list(configs.VARIANTS[variant])
    assert cfg.telemetry.etag_cache > 0  # rules-etag relies on the shipped default
    assert {name: r.url for name, r in cfg.releases.items()} == {
        "blue": "http://127.0.0.1:9001",
        "green": "http://127.0.0.1:9002",
    }


@pytest.mark.parametrize("size", list(bodies.SIZES))
def test_the_fields_variant_prunes_every_body_to_its_list(size: str, tmp_path: Path) -> None:
    import targets  # noqa: E402 - after the sys.path insertion above

    text = configs.switchback_conf(tmp_path, "fields", 8080, 9901, {"blue": 1, "green": 2})
    assert parse_config(text, "fields.yaml", {}).fields.mode == "prune"
    plain = targets.Target("switchback+rules", "http://x", "switchback", 1, "", "rules")
    fields = targets.Target("switchback+fields", "http://x", "switchback", 1, "", "fields")
    assert (plain.wrk_args, fields.wrk_args) == ((), ("X-Fields", configs.FIELDS))
    items = bodies.SIZES[size][1]
    for release in bodies.RELEASES:
        file = bodies.make_body(items, release)
        assert plain.expected(file) == file
        doc = orjson.loads(fields.expected(file))
        assert set(doc) == {"user", "items"} and set(doc["user"]) == {"id", "name", "role"}
        assert [set(item) for item in doc["items"]] == [{"id"}] * items
        assert find(doc, parse_path("user.role")) == 1  # the deprecated field still counted


@pytest.mark.parametrize("variant", list(configs.VARIANTS))
def test_only_the_logged_variant_writes_an_access_log(variant: str, tmp_path: Path) -> None:
    text = configs.switchback_conf(tmp_path, variant, 8080, 9901, {"blue": 1, "green": 2})
    logs = parse_config(text, f"{variant}.yaml", {}).logging
    if variant in configs.LOGGED_VARIANTS:
        assert (logs.access, logs.format) == (True, "json")
        assert logs.file == str(tmp_path / f"access-{variant}.log")
    else:
        assert not logs.access  # the figures stay comparable with runs before the access log


def test_the_access_log_goal_compares_plain_with_plain_logged() -> None:
    (goal,) = [g for g in headline.GOALS if g.den == headline.LOGGED]
    assert (goal.num, goal.size, goal.at_least) == (headline.PLAIN, "1KB", 0.9)
    assert targets_name("plain-logged") == headline.LOGGED


def targets_name(variant: str) -> str:
    import targets  # noqa: E402 - after the sys.path insertion above

    return str(targets.switchback_name(variant))
