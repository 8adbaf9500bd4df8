"""Micro-benchmark of parsing a release's response head, which runs on every response.

    .venv/bin/python loadtest/heads.py [--number 100000]

Prints the best of seven runs, in microseconds per response, for a 1 KB response with nginx's
eight header fields (the bench's upstream) fed to httptools three ways:

- ``callbacks``: as ``proxy.http.release`` parses it, with an ``on_header`` callback per
  field that appends ``(name, value)`` to a list;
- ``one call``: without ``on_header``, the fields split out of the raw head in one pass once
  llhttp reports the head complete (``bytes.split`` and ``partition``, values stripped of
  spaces and tabs as llhttp strips them);
- ``no fields``: without ``on_header`` and without reading the fields at all, the floor.

``callbacks`` minus ``no fields`` is what the per-field callbacks cost; ``one call`` minus
``no fields`` what a one-pass parse in Python costs instead. It does not count what the
one-call parse would also need to be right: the head's bytes kept across reads when it arrives
in pieces, responses that follow an interim one in the same read, and the trailer section of a
chunked body, which llhttp reports through ``on_header`` alone.
"""

from __future__ import annotations

import argparse
import timeit
from functools import partial

import httptools

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Thu, 03 Dec 2026 08:00:00 GMT\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 1024\r\n"
    b"Last-Modified: Thu, 03 Dec 2026 07:00:00 GMT\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Release: blue\r\n"
    b"Accept-Ranges: bytes\r\n"
    b"\r\n"
)
RESPONSE = HEAD + b"x" * 1024


class Callbacks:
    """The release side's callbacks, reduced to what they keep."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.body: list[bytes] = []
        self.done = False

    def on_message_begin(self) -> None:
        self.headers = []
        self.reason = b""
        self.body = []
        self.done = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        pass

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class OneCall(Callbacks):
    """The same without ``on_header``: the fields come from the raw head in one pass."""

    on_header = None  # type: ignore[assignment]  # httptools skips a callback set to None

    def on_headers_complete(self) -> None:
        data = RESPONSE  # what the read held: the release side would keep it from data_received
        lines = data[data.index(b"\r\n") + 2 : data.index(b"\r\n\r\n")].split(b"\r\n")
        self.headers = [
            (name, value.strip(b" \t"))
            for name, _, value in (line.partition(b":") for line in lines)
        ]


class NoFields(Callbacks):
    """The floor: llhttp parses the head, and nobody reads the fields."""

    on_header = None  # type: ignore[assignment]


def cases() -> dict[str, tuple[Callbacks, httptools.HttpResponseParser]]:
    protocols = {"callbacks": Callbacks(), "one call": OneCall(), "no fields": NoFields()}
    return {name: (p, httptools.HttpResponseParser(p)) for name, p in protocols.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--number", type=int, default=100_000)
    args = p.parse_args()
    found = {}
    for name, (protocol, parser) in cases().items():
        parser.feed_data(RESPONSE)
        found[name] = list(protocol.headers)
        feed = partial(parser.feed_data, RESPONSE)
        best = min(timeit.repeat(feed, number=args.number, repeat=7)) / args.number
        print(f"{name:>10}: {best * 1e6:.2f} µs per response")
    assert found["callbacks"] == found["one call"], found  # the same fields either way


if __name__ == "__main__":
    main()
