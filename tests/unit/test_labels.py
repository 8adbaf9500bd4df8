from hypothesis import given
from hypothesis import strategies as st

from proxy.core.labels import OTHER, ClientLabels


def test_known_clients_keep_their_label_past_the_bound() -> None:
    labels = ClientLabels(["mobile-ios", "partner-acme"], max_tracked=1)
    assert labels.label("a") == "a"
    assert labels.label("b") == OTHER
    assert labels.label("partner-acme") == "partner-acme"
    assert labels.label("mobile-ios") == "mobile-ios"
    assert labels.tracked() == 1


def test_first_n_keep_their_label_for_good_later_ones_are_other() -> None:
    labels = ClientLabels([], max_tracked=2)
    assert [labels.label(c) for c in ["a", "b", "a", "c", "d", "b"]] == [
        "a",
        "b",
        "a",
        OTHER,
        OTHER,
        "b",
    ]
    assert labels.tracked() == 2


def test_zero_tracked_means_only_known_clients() -> None:
    labels = ClientLabels(["ops"], max_tracked=0)
    assert labels.label("ops") == "ops"
    assert labels.label("anyone") == OTHER
    assert labels.tracked() == 0


ids = st.text(alphabet="abcdefgh", min_size=1, max_size=2)


@given(
    known=st.lists(ids, max_size=4),
    max_tracked=st.integers(min_value=0, max_value=5),
    seen=st.lists(ids, max_size=60),
)
def test_labels_are_bounded_and_stable(known: list[str], max_tracked: int, seen: list[str]) -> None:
    labels = ClientLabels(known, max_tracked)
    first_others: list[str] = []  # the reference model: first max_tracked distinct others
    given_labels: dict[str, str] = {}
    for client in seen:
        label = labels.label(client)
        if client in known:
            expected = client
        else:
            if client not in first_others and len(first_others) < max_tracked:
                first_others.append(client)
            expected = client if client in first_others else OTHER
        assert label == expected
        assert given_labels.setdefault(client, label) == label  # a client never changes label
    assert labels.tracked() == len(first_others) <= max_tracked
    assert set(given_labels.values()) <= set(known) | set(first_others) | {OTHER}
