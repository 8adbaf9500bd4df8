"""The fleet view: every replica's heartbeat, as ``GET /fleet`` and ``switchback status
--fleet`` show it. Pure: the heartbeats and ``now`` are passed in."""

from __future__ import annotations

from typing import Any

import msgspec

SEEN_SECONDS = 60.0  # a replica silent longer than this is no longer listed


class Beat(msgspec.Struct, frozen=True, kw_only=True):
    replica: str
    at: float  # wall-clock seconds
    version: int
    stable: str
    weights: dict[str, float]
    rollout_state: str
    in_flight: int
    leader: bool
    connected: bool
    dirty: bool = False  # a change made here is not yet in the shared state

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


def fleet_view(beats: dict[str, bytes], now: float, me: str) -> dict[str, Any]:
    """Replicas seen in the last ``SEEN_SECONDS``, sorted by id, and whether they agree."""
    rows = []
    for raw in beats.values():
        try:
            beat = msgspec.json.decode(raw, type=Beat)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        age = now - beat.at
        if age > SEEN_SECONDS:
            continue
        rows.append({**msgspec.structs.asdict(beat), "seen_seconds_ago": round(max(0.0, age), 3),
                     "this": beat.replica == me})  # fmt: skip
    rows.sort(key=lambda row: row["replica"])
    versions = sorted({row["version"] for row in rows})
    return {"replica": me, "replicas": rows, "versions": versions, "agree": len(versions) <= 1}


def format_fleet(data: dict[str, Any]) -> str:
    """``switchback status --fleet``: one line per replica."""
    link = "connected" if data.get("connected") else "DISCONNECTED (serving the last state seen)"
    lines = [
        f"fleet {data.get('key')} at {data.get('redis')}: {link}; leader "
        f"{data.get('leader') or '(none)'}; versions "
        f"{', '.join(str(v) for v in data.get('versions', [])) or '-'}"
        + ("" if data.get("agree", True) else "  (REPLICAS DISAGREE)")
    ]
    for row in data.get("replicas", []):
        weights = ", ".join(f"{k} {v:g}%" for k, v in row["weights"].items())
        flags = [f for f, on in (("leader", row["leader"]), ("this", row["this"]),
                                 ("disconnected", not row["connected"]),
                                 ("unsynced change", row["dirty"])) if on]  # fmt: skip
        lines.append(
            f"  {row['replica']:<28} v{row['version']:<5} {weights:<24} "
            f"{row['rollout_state']:<18} in flight {row['in_flight']:<4} "
            f"{row['seen_seconds_ago']:.1f} s ago" + (f"  [{', '.join(flags)}]" if flags else "")
        )
    return "\n".join(lines)
