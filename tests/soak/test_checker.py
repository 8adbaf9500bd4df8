"""The soak's own rules, held against answers made by hand: a checker that let a wrong answer
through would make the soak pass on the very defects it is there to find."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from tests.soak.plans import FAULT_KINDS, meta, plan_for, response_body
from tests.soak.verdict import Sent, judge, judge_broken
from tests.soak.wire import Broken, Inbox, Response, read_response

GET = Sent("r01-000001", "GET", b"", "get", 0.0)
POST = Sent("r01-000002", "POST", b"payload", "post", 0.0)


def good(sent: Sent, as_json: bool, pad: int = 300, release: str = "blue") -> Response:
    digest = hashlib.sha256(sent.body).hexdigest()
    info = meta(release, sent.request_id, sent.method, len(sent.body), digest, pad)
    body, ctype = response_body(as_json, info)
    headers = [
        ("X-Request-Id", sent.request_id),
        ("Content-Type", ctype.decode()),
        ("X-Served-By", release),
    ]
    return Response(200, headers, body)


@pytest.mark.parametrize("as_json", [False, True])
def test_the_right_answer_passes(as_json: bool) -> None:
    assert judge(POST, good(POST, as_json)).kind == "ok"


@pytest.mark.parametrize("as_json", [False, True])
def test_another_requests_answer_is_foreign(as_json: bool) -> None:
    other = good(GET, as_json)
    assert judge(POST, other).kind == "foreign_response"
    other.headers[0] = ("X-Request-Id", POST.request_id)  # the head lies, the body tells
    assert judge(POST, other).kind == "foreign_response"


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("keep", [0.95, 0.5, 0.05])
def test_a_cut_body_in_a_complete_frame_is_caught(as_json: bool, keep: float) -> None:
    resp = good(GET, as_json)
    resp.body = resp.body[: int(len(resp.body) * keep)]
    assert judge(GET, resp).kind == "incomplete_as_complete"


def test_an_echo_of_another_body_is_a_mismatch() -> None:
    resp = good(Sent(POST.request_id, "POST", b"other", "post", 0.0), False)
    assert judge(POST, resp).kind == "request_mismatch"


def test_a_served_by_header_naming_another_release_is_caught() -> None:
    resp = good(GET, False, release="green")
    resp.headers[2] = ("X-Served-By", "blue")
    assert judge(GET, resp).failure


def test_switchbacks_error_is_clean_and_a_releases_is_not() -> None:
    doc = {"error": "upstream_broken", "release": "green", "detail": "closed"}
    headers = [("Content-Type", "application/json"), ("X-Switchback-Release", "green")]
    verdict = judge(GET, Response(502, headers, orjson.dumps(doc)))
    assert (verdict.kind, verdict.failure, verdict.release) == (
        "502 upstream_broken",
        False,
        "green",
    )
    assert judge(GET, Response(502, [("Content-Type", "text/plain")], b"bad gateway")).failure
    assert judge(GET, Response(404, [], b"")).kind == "unexpected_status"


def test_broken_answers() -> None:
    assert judge_broken(GET, Broken("closed", 0, b"", None, "eof")).kind == (
        "closed_without_response"
    )
    assert judge_broken(GET, Broken("closed", 10, b"HTTP/1.1 2", None, "eof")).kind == "cut"
    head = good(GET, False)
    assert judge_broken(GET, Broken("closed", 200, b"", head, "eof")).kind == "cut"
    assert judge_broken(POST, Broken("closed", 200, b"", head, "eof")).kind == "foreign_response"
    assert judge_broken(GET, Broken("hang", 0, b"", None, "quiet")).kind == "hang"
    stray = good(POST, False).body[:100]  # another answer's body, where a head was due
    assert judge_broken(GET, Broken("hang", 100, stray, None, "quiet")).kind == "foreign_response"
    assert judge_broken(GET, Broken("framing", 3, b"SSH", None, "not http")).failure


async def read(data: bytes, idle: float = 1.0) -> Response:
    inbox = Inbox()
    inbox.data_received(data)
    inbox.eof_received()
    return await read_response(inbox, idle)


async def broken(data: bytes) -> Broken:
    with pytest.raises(Broken) as caught:
        await read(data)
    return caught.value


async def test_the_reader_takes_each_framing() -> None:
    assert (await read(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")).body == b"abc"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
    assert (await read(chunked)).body == b"abc"
    assert (await read(b"HTTP/1.1 200 OK\r\n\r\nabc")).body == b"abc"


async def test_the_reader_refuses_what_is_not_one_response() -> None:
    both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (await broken(both)).kind == "framing"
    assert (await broken(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")).kind == "framing"
    bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert (await broken(bad_chunk)).kind == "framing"
    cut = await broken(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert (cut.kind, cut.head is not None) == ("closed", True)
    assert (await broken(b"")).got == 0


async def test_the_reader_gives_up_on_silence() -> None:
    inbox = Inbox()
    inbox.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(Broken) as caught:
        await read_response(inbox, 0.05)
    assert caught.value.kind == "hang"


async def test_bytes_before_a_reset_are_kept() -> None:
    inbox = Inbox()
    sent = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    inbox.data_received(sent)
    inbox.connection_lost(ConnectionResetError())
    with pytest.raises(Broken) as caught:
        await read_response(inbox, 1.0)
    assert (caught.value.kind, caught.value.got) == ("closed", len(sent))
    assert caught.value.head is not None


def test_plans_depend_on_the_request_alone() -> None:
    rates = dict.fromkeys(FAULT_KINDS, 0.1)
    ids = [f"r00-{n:06d}" for n in range(2000)]
    assert [plan_for(1, "blue", i, rates) for i in ids] == [
        plan_for(1, "blue", i, rates) for i in ids
    ]
    assert {plan_for(1, "blue", i, {}).kind for i in ids} == {"ok"}
    assert {plan_for(1, "blue", i, {"garbage": 1.0}).kind for i in ids} == {"garbage"}
    assert {plan_for(1, "blue", i, rates).kind for i in ids} == {"ok", *FAULT_KINDS}
