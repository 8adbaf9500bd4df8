"""A fleet's shared traffic state, and the rule that reconciles a replica with it. Pure.

Every replica of a fleet holds a copy of one ``SharedState``: the stable release, the weights,
the rollout and the out-of-service mark, with a ``version`` that every write raises by one.
Writes are compare-and-set on that version (``proxy.fleet.store``), so of two writers that
started from the same version only one succeeds; the other reads again and calls
``reconcile``, as does every replica when it is told of a change, polls, or reconnects.

``reconcile(local, dirty, shared, now)``: ``local`` is the replica's state in force, its
``version`` the shared version it was last in step with; ``dirty`` says it changed since
(an operator's command on this replica, a local rollback, a rollout step this replica's
leader took); ``shared`` is what Redis holds (None: nothing, e.g. a Redis that restarted
empty). The rule, first match wins:

1. Nothing shared: write the local state (the first replica seeds the fleet; after Redis lost
   its data, the replicas' state comes back). A replica in step seeds its version as it was
   (at least 1), a dirty one the next: so after a restart of Redis a change made while it was
   away is newer than the state every other replica still holds, whoever writes first.
2. In step (not dirty): a newer shared version is adopted; the same one is kept, or adopted
   when it says something else (replicas that started on different local states); an older
   one (Redis restored from an old copy) is overwritten with the local state: newest wins.
3. Dirty, and the shared version has not moved past the one the change started from: write it.
4. Dirty, the shared version moved on meanwhile (another replica wrote first, or wrote while
   this one was cut off from Redis): the local change is stale and is not written, except a
   rollback, which is never undone by a stale write: when the shared state still sends
   traffic to the release this replica rolled back, and that release is still the shared
   candidate, the rollback is applied on top of the shared state and written. When the
   shared state already has that release out of traffic, or has since promoted it to stable
   (a newer decision of the fleet), the shared state is adopted.

Other writes carry ``version = max(local, shared) + 1`` and expect the shared version read.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from proxy.core.rollout import ROLLBACK, Rollout, apply

Outcome = Literal["kept", "adopted", "written", "seeded", "rollback_rewritten", "stale_refused"]


class SharedState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    stable: str
    candidate: str
    weights: dict[str, float]
    rollout: Rollout
    out_of_service: str | None = None
    written_by: str = ""  # the replica that wrote this version
    written_at: float = 0.0  # wall-clock seconds

    def same_traffic(self, other: SharedState) -> bool:
        """Whether both say the same thing, whatever their versions and writers."""
        return (
            self.stable == other.stable
            and self.candidate == other.candidate
            and self.weights == other.weights
            and self.rollout == other.rollout
            and self.out_of_service == other.out_of_service
        )


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """What to do: ``write`` (``state``, expecting ``expect``), ``adopt`` ``state``, or keep."""

    do: Literal["write", "adopt", "keep"]
    outcome: Outcome
    state: SharedState | None = None
    expect: int = 0  # the shared version a write expects (0: no state yet)


def rolled_back_release(s: SharedState) -> str | None:
    """The release a rollback took out of ``s`` (out of service, weight 0), or None."""
    out = s.out_of_service
    if out is not None and out == s.candidate and s.weights.get(out, 0.0) <= 0.0:
        return out
    return None


def reconcile(
    local: SharedState, dirty: bool, shared: SharedState | None, now: float, writer: str
) -> Action:
    """The rule of the module docstring."""
    if shared is None:
        base = local.version if dirty else max(0, local.version - 1)
        return _write(local, 0, base, now, writer, "seeded")
    if not dirty:
        if shared.version > local.version:
            return Action(do="adopt", outcome="adopted", state=shared)
        if shared.version == local.version:
            if shared.same_traffic(local):
                return Action(do="keep", outcome="kept")
            return Action(do="adopt", outcome="adopted", state=shared)
        return _write(local, shared.version, local.version, now, writer, "written")
    if shared.version <= local.version:
        return _write(local, shared.version, local.version, now, writer, "written")
    out = rolled_back_release(local)
    if out is None:
        return Action(do="adopt", outcome="stale_refused", state=shared)
    if shared.weights.get(out, 0.0) <= 0.0 or shared.candidate != out:
        return Action(do="adopt", outcome="adopted", state=shared)
    return _write(rollback_onto(shared, local, now), shared.version, shared.version, now, writer,
                  "rollback_rewritten")  # fmt: skip


def rollback_onto(shared: SharedState, local: SharedState, now: float) -> SharedState:
    """``shared`` with its candidate rolled back, for the local rollback's reason."""
    tr = apply(shared.rollout, ROLLBACK, now, reason=local.rollout.reason or "manual")
    weights = {name: 0.0 if name == shared.candidate else 100.0 for name in shared.weights}
    return msgspec.structs.replace(
        shared, weights=weights, rollout=tr.rollout, out_of_service=shared.candidate
    )


def _write(
    state: SharedState, expect: int, base: int, now: float, writer: str, outcome: Outcome
) -> Action:
    version = max(base, expect) + 1
    new = msgspec.structs.replace(state, version=version, written_by=writer, written_at=now)
    return Action(do="write", outcome=outcome, state=new, expect=expect)


def encode(state: SharedState) -> bytes:
    return msgspec.json.encode(state)


def decode(data: bytes | str) -> SharedState:
    """A stored state; raises ``msgspec.DecodeError`` / ``ValidationError`` when unusable."""
    return msgspec.json.decode(data, type=SharedState)
