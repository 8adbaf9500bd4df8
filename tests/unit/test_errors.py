"""One error tree: every exception in ``proxy.errors`` is a ``SwitchbackError`` with the status
and code the module's docstring draws; bad input is told apart from an illegal move."""

from __future__ import annotations

import inspect
import math
import re
from typing import Any

import pytest

from proxy import errors
from proxy.config.load import initial_traffic, parse_config
from proxy.errors import InvalidInput, SwitchbackError
from proxy.traffic.control import check_weights

CLASSES = {
    name: cls
    for name, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
}


def drawn() -> dict[str, tuple[int | None, str | None]]:
    """The docstring's tree: class name -> (status, code), None where it says "per refusal"."""
    tree = {}
    for line in (errors.__doc__ or "").splitlines():
        found = re.match(r"^[\s│├└─]*(\w+)\s+(?:(\d{3}) (\w+)|\(per refusal\))", line)
        if found and found.group(1) in CLASSES:
            status = found.group(2)
            tree[found.group(1)] = (int(status) if status else None, found.group(3))
    return tree


def test_every_class_is_in_the_tree_with_its_status_and_code() -> None:
    tree = drawn()
    assert set(tree) == set(CLASSES)
    for name, (status, code) in tree.items():
        cls = CLASSES[name]
        assert issubclass(cls, SwitchbackError), name
        if status is not None:
            assert (cls.status, cls.code) == (status, code), name


def test_a_refusal_carries_its_own_status_and_code() -> None:
    refusal = errors.Refused(431, "request_header_fields_too_large", "too many", "header_count")
    assert (refusal.status, refusal.code, str(refusal)) == (
        431,
        "request_header_fields_too_large",
        "too many",
    )


def test_only_unauthorized_asks_for_a_token() -> None:
    assert errors.Unauthorized("missing admin token").headers == {"WWW-Authenticate": "Bearer"}
    assert errors.AccessDenied("read token").headers == {}
    assert errors.RolloutError("no").headers == {}


TRAFFIC = initial_traffic(
    parse_config(
        'releases: {blue: {url: "http://127.0.0.1:9001"}, green: {url: "http://127.0.0.1:9002"}}\n'
        "traffic: {stable: blue, weights: {blue: 100, green: 0}}\n",
        "test.yaml",
        {},
    )
)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"green": 140}, "weights.green: 140 is not a percentage (0-100)"),
        ({"green": -1}, "weights.green: -1 is not a percentage (0-100)"),
        ({"green": math.nan}, "weights.green: nan is not a number"),
        ({"green": math.inf}, "weights.green: inf is not a percentage (0-100)"),
        ({"green": True}, "weights.green: True is not a number"),
        ({"green": 12.345}, "weights.green: 12.345 has more than two decimals"),
        ({"blue": 30, "green": 30}, "weights: blue 30%, green 30% do not sum to 100"),
        ({"red": 10}, "weights.red: unknown release (known: blue, green)"),
        ({}, 'weights: expected an object such as {"blue": 75, "green": 25}'),
    ],
)
def test_weights_that_can_never_be_right_are_bad_input(
    weights: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        check_weights(weights, TRAFFIC)
    assert str(info.value) == message
    assert (info.value.status, info.value.code) == (400, "invalid_input")


def test_one_weight_given_leaves_the_rest_to_the_other_release() -> None:
    assert check_weights({"green": 25.5}, TRAFFIC) == {"green": 25.5, "blue": 74.5}
