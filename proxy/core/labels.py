"""Bounded metric label cardinality for clients.

Prometheus keeps one time series per label value, and client ids come from request headers, so
the ``client`` label is bounded: clients named in config (``clients.known``) always keep their
own label, the first ``max_tracked`` other clients seen keep theirs for the life of the process,
and every later one is counted under ``"other"``. Memory is bounded the same way: clients that
fall into ``"other"`` are not remembered.

The ledger is not bounded by this: it records the full client id.
"""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"


class ClientLabels:
    """Client id -> metric label. O(1); used from the event loop only (not thread-safe)."""

    __slots__ = ("_labels", "_tracked", "_max_tracked")

    def __init__(self, known: Iterable[str], max_tracked: int) -> None:
        self._labels: dict[str, str] = {client: client for client in known}
        self._tracked = 0
        self._max_tracked = max(0, max_tracked)

    def label(self, client_id: str) -> str:
        """The label to use for ``client_id``: its own, or ``"other"`` once the bound is reached."""
        label = self._labels.get(client_id)
        if label is not None:
            return label
        if self._tracked < self._max_tracked:
            self._tracked += 1
            self._labels[client_id] = client_id
            return client_id
        return OTHER

    def labelled(self) -> list[str]:
        """Every client with its own label, known ones first, the others in order of arrival."""
        return list(self._labels)

    def tracked(self) -> int:
        """How many clients beyond the known ones keep their own label (at most max_tracked)."""
        return self._tracked
