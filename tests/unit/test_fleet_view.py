"""The fleet view: who was seen in the last minute, whether they agree, how it reads."""

from __future__ import annotations

from proxy.fleet.view import Beat, fleet_view, format_fleet

NOW = 1_800_000_000.0


def beat(name: str, age: float, version: int, leader: bool = False) -> bytes:
    return Beat(replica=name, at=NOW - age, version=version, stable="blue",
                weights={"blue": 90.0, "green": 10.0}, rollout_state="ramping", in_flight=2,
                leader=leader, connected=True).encode()  # fmt: skip


def test_only_replicas_seen_in_the_last_minute_are_listed() -> None:
    beats = {"b": beat("b", 1, 4, leader=True), "a": beat("a", 0.2, 4), "old": beat("old", 61, 1),
             "junk": b"{not json"}  # fmt: skip
    view = fleet_view(beats, NOW, "a")
    assert [row["replica"] for row in view["replicas"]] == ["a", "b"]
    assert view["agree"] is True and view["versions"] == [4]
    assert [row["this"] for row in view["replicas"]] == [True, False]


def test_replicas_on_different_versions_disagree_and_say_so() -> None:
    view = fleet_view({"a": beat("a", 0, 4), "b": beat("b", 0, 3)}, NOW, "a")
    assert view["agree"] is False and view["versions"] == [3, 4]
    text = format_fleet({**view, "key": "k", "redis": "redis://r", "connected": False,
                         "leader": None})  # fmt: skip
    assert "DISCONNECTED" in text and "REPLICAS DISAGREE" in text and "leader (none)" in text
    assert text.splitlines()[1].split()[:2] == ["a", "v4"]
