"""Status page sessions: random ids, never the token; expiry, logout, token rotation, bound."""

from __future__ import annotations

from proxy.admin.sessions import Sessions

TOKENS = ["admin-token", "read-token"]


def test_a_session_is_a_random_id_valid_with_its_token_until_it_expires() -> None:
    sessions = Sessions(ttl=100.0)
    sid = sessions.create("read-token", now=0.0)
    other = sessions.create("read-token", now=0.0)
    assert sid != other and "read-token" not in sid and len(sid) >= 40
    assert sessions.valid(sid, TOKENS, now=99.0)
    assert not sessions.valid(sid, TOKENS, now=100.0)
    assert not sessions.valid(sid, TOKENS, now=1.0)  # an expired session is gone for good
    assert not sessions.valid("made-up", TOKENS, now=1.0)
    assert not sessions.valid(None, TOKENS, now=1.0) and not sessions.valid("", TOKENS, 1.0)


def test_logout_ends_it_and_a_changed_token_ends_it() -> None:
    sessions = Sessions()
    sid = sessions.create("read-token", now=0.0)
    assert not sessions.valid(sid, ["admin-token", "a-new-read-token"], now=1.0)
    assert sessions.valid(sid, TOKENS, now=1.0)  # the old token is back: so is the session
    sessions.end(sid)
    assert not sessions.valid(sid, TOKENS, now=1.0)
    sessions.end(sid)  # twice is fine
    sessions.end(None)


def test_two_processes_do_not_accept_each_others_sessions() -> None:
    one, two = Sessions(), Sessions()
    assert one.fingerprint("read-token") != two.fingerprint("read-token")
    sid = one.create("read-token", now=0.0)
    assert not two.valid(sid, TOKENS, now=0.0)


def test_the_store_is_bounded_and_drops_expired_sessions_first() -> None:
    sessions = Sessions(ttl=10.0, max_sessions=3)
    first = sessions.create("read-token", now=0.0)
    later = [sessions.create("read-token", now=5.0) for _ in range(2)]
    newest = sessions.create("read-token", now=12.0)  # the first has expired: it goes
    assert len(sessions) == 3 and not sessions.valid(first, TOKENS, now=12.0)
    crowded = sessions.create("read-token", now=13.0)  # full: the oldest live one goes
    assert len(sessions) == 3
    assert not sessions.valid(later[0], TOKENS, now=13.0)
    assert all(sessions.valid(s, TOKENS, now=13.0) for s in (later[1], newest, crowded))
