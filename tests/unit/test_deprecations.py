import datetime as dt
from typing import Any

import orjson
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from proxy.core.jsonpaths import find
from proxy.core.rules import RuleSet, parse_route, query_names, unique
from proxy.schema import DeprecationConfig

JUNE = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def dep(id: str, **kw: Any) -> DeprecationConfig:
    kw.setdefault("deprecated", JUNE)
    return DeprecationConfig(id=id, **kw)


def ids(rules: tuple[Any, ...] | None) -> list[str] | None:
    return None if rules is None else [r.id for r in rules]


@pytest.mark.parametrize(
    ("route", "method", "path", "matches"),
    [
        ("GET /users/{id}", "GET", "/users/42", True),
        ("GET /users/{id}", "POST", "/users/42", False),
        ("GET /users/{id}", "GET", "/users/", False),  # a variable is one non-empty segment
        ("GET /users/{id}", "GET", "/users/42/", False),  # trailing slash matters
        ("GET /users/{id}", "GET", "/users/4%2F2", True),  # an encoded "/" stays in its segment
        ("GET /users/{id}", "GET", "/users/4/2", False),
        ("GET /users/", "GET", "/users/", True),
        ("GET /users/", "GET", "/users", False),
        ("GET /", "GET", "/", True),
        ("GET /", "GET", "/x", False),
        ("/v0/users/{id}", "DELETE", "/v0/users/1", True),  # method-less: any method
        ("/v0/users/{id}", "GET", "/v0//users/1", False),  # "//" is not normalized
        ("/v0/users/{id}", "GET", "/v0/./users/1", False),  # nor dot segments
        ("/v0/users/{id}", "GET", "/v1/../v0/users/1", False),
        ("/v0/users/{id}", "GET", "/%76%30/u%73ers/1", True),  # segments compare decoded
        ("/v0/users/{id}", "GET", "/V0/users/1", False),  # paths are case-sensitive
        ("/a%2Fb/{x}", "GET", "/a%2fb/1", True),  # config literals are decoded too
        ("/a%2Fb/{x}", "GET", "/a/b/1", False),
        ("/100%/{x}", "GET", "/100%/1", True),  # a lone % is itself
        ("/100%/{x}", "GET", "/100%25/1", True),
        ("/caf\u00e9", "GET", "/caf%C3%A9", True),  # UTF-8, as on the wire
        ("/caf\u00e9", "GET", "/caf\xc3\xa9", True),  # raw bytes, read as latin-1
        ("/caf\u00e9", "GET", "/caf\xe9", False),
        ("GET", "GET", "/anything/at/all", True),  # method only: any path
        ("GET", "HEAD", "/", False),
    ],
)
def test_route_matching(route: str, method: str, path: str, matches: bool) -> None:
    assert parse_route(route).matches(method, path) is matches


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "GET /a /b",
        "GET users",
        "G(T /x",
        "get /x",  # methods are case-sensitive: a typo, most likely
        "users/{id}",
        "/users/{id",
        "/users/{}",
        "/users/id}",
        "/users/{id}.json",
        "/users?x=1",
        "/users#top",
    ],
)
def test_bad_routes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_route(text)


@pytest.mark.parametrize(
    ("query", "names"),
    [
        (None, set()),
        ("", set()),
        ("sort_by=x", {"sort_by"}),
        ("a=1&sort_by=x", {"a", "sort_by"}),
        ("sort_by=1&sort_by=2", {"sort_by"}),
        ("sort_by", {"sort_by"}),  # no value
        ("sort%5Fby=x", {"sort_by"}),
        ("sort%5fby=x", {"sort_by"}),
        ("sort+by=1&x=a%26b", {"sort by", "x"}),
        ("a%2Bb=1", {"a+b"}),
        ("caf%C3%A9=1", {"café"}),
        ("&&=1&a==", {"", "a"}),
    ],
)
def test_query_names(query: str | None, names: set[str]) -> None:
    assert query_names(query) == names


RULES = RuleSet.compile(
    [
        dep("user-role", field="user.role", on="GET /users/{id}", replacement="user.roles"),
        dep("item-role", field="items[].role"),
        dep("users-v0", endpoint="GET /v0/users/{id}"),
        dep("sort-by", param="sort_by", on="GET /users"),
        dep("page", param="page"),
        dep("legacy-flag", request_field="options.legacy"),
        dep("any-v0", endpoint="/v0/{rest}"),
        dep("me", endpoint="GET /v0/users/me"),
        dep("posts", request_field="legacy", on="POST"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/users/1", None, []),
        ("GET", "/v0/users/1", None, ["users-v0"]),
        ("POST", "/v0/users/1", None, []),
        ("GET", "/v0/users/me", None, ["users-v0", "me"]),  # overlapping routes: both, in order
        ("PUT", "/v0/things", None, ["any-v0"]),
        ("GET", "/v0//users/1", None, []),
        ("GET", "/v0/users/1/", None, []),
        ("GET", "/v0/users/%31", None, ["users-v0"]),
        ("GET", "/users", "sort_by=name", ["sort-by"]),
        ("GET", "/users", "a=1&sort_by=x", ["sort-by"]),
        ("GET", "/users", "sort_by=1&sort_by=2", ["sort-by"]),
        ("GET", "/users", "sort%5Fby=x", ["sort-by"]),
        ("GET", "/users", "sort_byx=1&xsort_by=2", []),
        ("GET", "/users", "q=sort_by", []),  # a value is not a name
        ("POST", "/users", "sort_by=x", []),  # the param's `on` does not match
        ("GET", "/users/", "sort_by=x", []),
        ("GET", "/users", "page=2&sort_by=x", ["sort-by", "page"]),
        ("DELETE", "/anything", "page=2", ["page"]),  # no `on`: everywhere
        ("GET", "/v0/users/1", "page=2", ["users-v0", "page"]),
    ],
)
def test_match_request(method: str, path: str, query: str | None, expected: list[str]) -> None:
    assert ids(RULES.match_request(method, path, query)) == expected


def test_nothing_applies() -> None:
    assert RULES.match_request("GET", "/healthz", None) == ()
    assert RULES.match_request("GET", "/healthz", "x=1") == ()
    assert (
        RuleSet.compile([dep("x", field="a", on="POST /x")]).response_field_rules("GET", "/x") == ()
    )
    assert RuleSet.compile([]).response_field_rules("GET", "/") == ()


@pytest.mark.parametrize(
    ("method", "path", "request_fields", "response_fields"),
    [
        ("GET", "/users/1", ["legacy-flag"], ["user-role", "item-role"]),
        ("GET", "/users", ["legacy-flag"], ["item-role"]),
        ("POST", "/users/1", ["legacy-flag", "posts"], ["item-role"]),
        ("PATCH", "/x", ["legacy-flag"], ["item-role"]),
    ],
)
def test_body_rules_by_route(
    method: str, path: str, request_fields: list[str], response_fields: list[str]
) -> None:
    assert ids(RULES.request_field_rules(method, path)) == request_fields
    assert ids(RULES.response_field_rules(method, path)) == response_fields


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/users/1"), ("POST", "/x"), ("DELETE", "/"), ("GET", "/a%2Fb")]
)
def test_response_field_rules_without_routes_hold_for_every_request(method: str, path: str) -> None:
    """``response_fields_anywhere`` answers without the path when no response-field rule names
    a route: the same rules ``response_field_rules`` finds for any request."""
    rules = RuleSet.compile(
        [dep("a", field="user.role"), dep("e", endpoint="GET /old"), dep("b", field="items[].id")]
    )
    assert rules.response_fields_anywhere is not None
    assert rules.response_fields_anywhere == rules.response_field_rules(method, path)
    assert ids(rules.response_fields_anywhere) == ["a", "b"]
    assert RuleSet.compile([]).response_fields_anywhere == ()
    # One rule with a route: the path must decide.
    assert RULES.response_fields_anywhere is None
    routed = RuleSet.compile([dep("a", field="user.role"), dep("b", field="x", on="POST /x")])
    assert routed.response_fields_anywhere is None


def test_rule_fields() -> None:
    (rule,) = RuleSet.compile(
        [
            dep(
                "user-role",
                field="user.role",
                on="GET /users/{id}",
                sunset=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                link="https://api.example.com/changes#user-role",
                replacement="user.roles",
            )
        ]
    ).rules
    assert (rule.kind, rule.element, rule.param) == ("field", "user.role", None)
    assert (rule.deprecated_at, rule.sunset_at) == (1780272000, 1798761600)
    assert rule.route is not None and rule.route.method == "GET"
    assert rule.path is not None and str(rule.path) == "user.role"
    (param,) = RuleSet.compile([dep("p", param="sort_by")]).rules
    assert (param.kind, param.element, param.param, param.route) == (
        "param",
        "sort_by",
        "sort_by",
        None,
    )
    (endpoint,) = RuleSet.compile([dep("e", endpoint="GET  /v0/users/{id}")]).rules
    assert endpoint.element == "GET  /v0/users/{id}"  # the config text: the report's label


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (dep("x"), "deprecations[0]: set exactly one of"),
        (dep("x", field="a", param="b"), "deprecations[0]: set exactly one of"),
        (dep("x", field="a..b"), "deprecations[0].field: 'a..b': empty segment at position 2"),
        (dep("x", request_field="a[", on="GET"), "deprecations[0].request_field: 'a['"),
        (dep("x", param="a", on="GET /{x"), "deprecations[0].on: 'GET /{x'"),
        (dep("x", endpoint="users"), "deprecations[0].endpoint: 'users'"),
        (dep("x", endpoint="GET"), "deprecations[0].endpoint: 'GET': an endpoint has a path"),
        (dep("x", endpoint="GET /a", on="GET"), "deprecations[0].on: an endpoint rule"),
    ],
)
def test_compile_errors_name_the_key(entry: DeprecationConfig, message: str) -> None:
    with pytest.raises(ValueError) as err:
        RuleSet.compile([entry])
    assert str(err.value).startswith(message)


BODY_RULES = RULES.response_field_rules("GET", "/users/1")  # user-role, item-role


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"user":{"role":"admin"}}', ["user-role"]),
        (b'{"user":{"role":null},"items":[{"role":1}]}', ["user-role", "item-role"]),
        (b'{"user":{"roles":["a"]}}', []),
        (b'{"user":"role"}', []),  # a string where the path needs an object: no match
        (b'{"user":{"r\\u006fle":1}}', ["user-role"]),  # an escaped key is the same key
        (b'{"user":{"role":1}', None),  # malformed, and it might have matched
        (b'{"nothing": "here"', None),  # malformed, though no rule's key occurs in it
        (b"", None),
        (b"\xff\xfe", None),
        (b'{"user":{"role":1}} \xff', None),  # invalid UTF-8
    ],
)
def test_match_body(body: bytes, expected: list[str] | None) -> None:
    assert ids(RuleSet.match_body(BODY_RULES, body)) == expected


def test_match_body_without_rules_does_not_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> object:
        raise AssertionError("parsed")

    monkeypatch.setattr("proxy.core.typedscan.TypedScanner.scan", fail)
    assert RuleSet.match_body((), b'{"user":{"role":1}}') == ()
    assert RuleSet.match_body((), b'{"user":') == ()


def test_match_body_answers_each_rule_from_one_decode() -> None:
    rules = RuleSet.compile(
        [dep("a", field="user.role"), dep("b", field="items[].role"), dep("c", field="links.*")]
    ).rules
    body = b'{"items":[{"id":1},{"role":null}],"links":{},"user":{"roles":[]}}'
    assert ids(RuleSet.match_body(rules, body)) == ["b"]
    assert ids(RuleSet.match_body(rules[::-1], b'{"links":{"self":1},"user":{"role":1}}')) == [
        "c",
        "a",
    ]


def test_match_body_slash_escape() -> None:
    rules = RuleSet.compile([dep("x", field="links.self/href")]).rules
    assert ids(RuleSet.match_body(rules, b'{"links":{"self\\/href":"u"}}')) == ["x"]
    assert ids(RuleSet.match_body(rules, b'{"links":{"self_href":"u"}}')) == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.sampled_from(["role", "user", "r\u006fle"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["user", "role", "items", "x"]), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(value=json_values)
def test_match_body_agrees_with_find(value: object) -> None:
    expected = [r.id for r in BODY_RULES if r.path is not None and find(value, r.path)]
    assert ids(RuleSet.match_body(BODY_RULES, orjson.dumps(value))) == expected


def quoted(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


tricky_keys = st.text(alphabet='a/é"\\\x01', max_size=2)  # escapes, slashes, non-ASCII
tricky_values = st.recursive(
    st.none() | st.integers(0, 9),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_keys, inner, max_size=3),
    max_leaves=20,
)
tricky_paths = st.lists(
    st.tuples(
        tricky_keys.map(quoted) | st.just("*"),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=3,
).map(lambda segs: ".".join(name + "[]" * n for name, n in segs))


@example(value={"": None, "\x01": None}, text="\x00")  # a NUL key once matched ""
@given(value=tricky_values, text=tricky_paths | st.text(max_size=8))
def test_match_body_agrees_with_find_for_any_path(value: object, text: str) -> None:
    try:
        rules = RuleSet.compile([dep("x", field=text)]).rules
    except ValueError:
        assume(False)
        return
    path = rules[0].path
    assert path is not None
    expected = ["x"] if find(value, path) else []
    assert ids(RuleSet.match_body(rules, orjson.dumps(value))) == expected


@given(value=tricky_values, data=st.data())
def test_the_prefilter_never_hides_a_field_that_is_there(
    value: object, data: st.DataObject
) -> None:
    text, node = "", value  # walk down the value, writing the path that leads there
    while (isinstance(node, dict | list) and node) and (not text or data.draw(st.booleans())):
        if isinstance(node, list):
            text += "[]"
            node = data.draw(st.sampled_from(node))
        else:
            key = data.draw(st.sampled_from(sorted(node)))
            text += ("." if text else "") + data.draw(st.sampled_from([quoted(key), "*"]))
            node = node[key]
    assume(text)
    rules = RuleSet.compile([dep("x", field=text)]).rules
    assert rules[0].path is not None and find(value, rules[0].path) > 0
    assert ids(RuleSet.match_body(rules, orjson.dumps(value))) == ["x"]


@given(st.binary(max_size=64))
def test_match_body_never_raises(raw: bytes) -> None:
    found = RuleSet.match_body(BODY_RULES, raw)
    assert found is None or set(found) <= set(BODY_RULES)


@given(st.text())
def test_parse_route_raises_only_value_error(text: str) -> None:
    try:
        route = parse_route(text)
    except ValueError:
        return
    assert route.method is not None or route.segments is not None


@given(method=st.sampled_from(["GET", "POST", "get"]), path=st.text(), query=st.text() | st.none())
def test_match_request_never_raises(method: str, path: str, query: str | None) -> None:
    assert isinstance(RULES.match_request(method, path, query), tuple)


def test_unique_keeps_each_rule_once_in_the_order_first_seen() -> None:
    """An element matched twice in one exchange (a field in two places) is counted once."""
    a, b, c = RuleSet.compile(
        [dep("a", field="x"), dep("b", param="p"), dep("c", field="items[].y")]
    ).rules
    assert unique([a, b, a, c, b]) == [a, b, c]
    assert unique([c, a, c]) == [c, a]
    assert unique(None) == [] and unique([]) == []
