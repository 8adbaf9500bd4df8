"""The fleet ledger's spool: batches kept in order, merged within its bound with totals and
first/last seen exact, a batch it cannot make room for refused (kept by the caller), 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.deprecation.ledger_memory import Batch, Key, Tally
from proxy.deprecation.ledger_spool import Spool, SpoolFull


def batch(
    rows: dict[Key, tuple[int, float, float]], lossy: frozenset[tuple[str, int]] = frozenset()
) -> Batch:
    usage = {k: Tally(*v) for k, v in rows.items()}
    return Batch(usage, {"e": 1.0}, {("e", 1)}, set(lossy), 0)


def totals(spool: Spool) -> dict[tuple[str, str, str], tuple[int, float, float]]:
    rows, _ = spool.unsent()
    out: dict[tuple[str, str, str], tuple[int, float, float]] = {}
    for element, kind, client, _day, count, first, last in rows:
        n, f, la = out.get((element, kind, client), (0, first, last))
        out[element, kind, client] = (n + count, min(f, first), max(la, last))
    return out


def test_batches_come_out_oldest_first_and_the_file_is_private(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 1000)
    assert spool.append(batch({("e", "use", "a", 1): (2, 10.0, 20.0)}), 5.0) == 0
    spool.append(batch({("e", "use", "b", 1): (1, 11.0, 11.0)}), 5.0)
    first = spool.oldest()
    assert first is not None and first.usage == [("e", "use", "a", 1, 2, 10.0, 20.0)]
    spool.delete(first.seq)
    second = spool.oldest()
    assert second is not None and second.seq > first.seq and spool.rows == 1
    assert stat.S_IMODE(os.stat(spool.path).st_mode) == 0o600
    spool.close()
    again = Spool(str(tmp_path), 1000)  # across a restart: what waits, and the same id
    assert again.rows == 1 and again.spool_id == spool.spool_id
    again.close()


def test_over_the_bound_batches_fold_then_old_days_move_forward(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 2)
    a1 = {("e", "use", "a", 1): (2, 86_400.0 + 5, 86_400.0 + 9)}
    a2 = {("e", "use", "a", 2): (3, 2 * 86_400.0 + 1, 2 * 86_400.0 + 2)}
    b2 = {("e", "use", "b", 2): (1, 2 * 86_400.0, 2 * 86_400.0)}
    assert [spool.append(batch(a1), 0), spool.append(batch(a2), 0)] == [0, 0]
    assert spool.append(batch(b2), 0) == 1  # three keys: a's day 1 moves onto its day 2
    later = {("e", "use", "a", 2): (4, 2 * 86_400.0 + 7, 2 * 86_400.0 + 8)}
    assert spool.append(batch(later), 0) == 1  # the batches fold: (a, day 2) twice
    assert spool.rows == 2
    assert totals(spool) == {
        ("e", "use", "a"): (9, 86_400.0 + 5, 2 * 86_400.0 + 8),
        ("e", "use", "b"): (1, 2 * 86_400.0, 2 * 86_400.0),
    }
    rows, _ = spool.unsent()
    assert {r[3] for r in rows} == {2}  # the day still holds each row's last seen
    spool.close()


def test_a_batch_merging_cannot_make_room_for_is_refused_and_nothing_changes(
    tmp_path: Path,
) -> None:
    spool = Spool(str(tmp_path), 2)
    spool.append(
        batch({("e", "use", "a", 1): (1, 1.0, 1.0), ("e", "use", "b", 1): (1, 1.0, 1.0)}), 0
    )
    with pytest.raises(SpoolFull):
        spool.append(batch({("e", "use", "c", 1): (1, 2.0, 2.0)}), 0.0)
    assert spool.rows == 2 and set(totals(spool)) == {("e", "use", "a"), ("e", "use", "b")}
    spool.close()


def test_lost_touches_name_their_element_as_undelivered(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 100)
    spool.append(batch({}, lossy=frozenset({("sunset", 3)})), 0.0)
    assert spool.unsent()[1] == ["sunset"]
    spool.close()


rows = st.dictionaries(
    st.tuples(
        st.just("e"),
        st.sampled_from(["use", "exposure"]),
        st.sampled_from("abc"),
        st.integers(0, 5),
    ),  # fmt: skip
    st.tuples(st.integers(1, 9), st.floats(0, 1000), st.floats(0, 1000)),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(rows, max_size=6))
def test_merging_keeps_every_total_and_first_and_last_seen(
    tmp_path_factory: pytest.TempPathFactory, batches: list[dict[Key, tuple[int, float, float]]]
) -> None:
    spool = Spool(str(tmp_path_factory.mktemp("spool")), 6)  # 2 kinds x 3 clients fit
    expected: dict[tuple[str, str, str], tuple[int, float, float]] = {}
    for b in batches:
        fixed = {k: (n, min(f, la), max(f, la)) for k, (n, f, la) in b.items()}
        spool.append(batch(fixed), 0.0)
        for (element, kind, client, _), (n, f, la) in fixed.items():
            m, mf, ml = expected.get((element, kind, client), (0, f, la))
            expected[element, kind, client] = (m + n, min(mf, f), max(ml, la))
    assert totals(spool) == expected
    assert spool.rows <= 6
    spool.close()
