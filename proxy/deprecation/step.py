"""The deprecation step on the request path: which rules an exchange touches, the headers that
tell the client, and the counts once it is done (``proxy.deprecation.telemetry`` owns the
rules, the labels and the ledger it counts into).

Cost discipline: a request that no rule can concern pays for two table look-ups. A request
body is copied (never delayed) only when a request-field rule applies to its route; a
response is held for inspection only when a response-field rule applies and it is JSON, and a
held body is decoded once for all the rules that apply (``RuleSet.match_body``).
"""

from __future__ import annotations

import time

from proxy.core.bodyinspect import decoded_copy, is_json_content_type
from proxy.core.deprecation_headers import deprecation_headers, headers_for
from proxy.core.rules import Rule, RuleSet, unique
from proxy.deprecation.telemetry import EtagKey, Telemetry
from proxy.pipeline import Exchange, Slot, Step


class Found:
    """What the deprecation step learns about one exchange (kept in ``FOUND``)."""

    __slots__ = ("used", "exposed", "request_rules", "response_rules", "etag_key")

    def __init__(self) -> None:
        self.used: list[Rule] = []  # elements the client sent
        self.exposed: list[Rule] = []  # elements the client received
        self.request_rules: tuple[Rule, ...] = ()  # request-field rules to look for
        self.response_rules: tuple[Rule, ...] = ()  # response-field rules to look for
        self.etag_key: EtagKey | None = None  # where to remember what the body held


FOUND = Slot[Found]("deprecations")


def _found(ex: Exchange) -> Found:
    slots = ex.slots
    found = slots.get(FOUND) if slots else None
    if found is None:
        found = Found()
        ex.put(FOUND, found)
    return found


class DeprecationStep(Step):
    name = "deprecations"

    def __init__(self, telemetry: Telemetry) -> None:
        self.t = telemetry
        self.rules = telemetry.rules
        self.cap = telemetry.config.telemetry.max_body_bytes
        self.warning = telemetry.config.telemetry.warning_header

    def request(self, ex: Exchange) -> None:
        rules = self.rules
        if not rules.request_side:
            return
        used = rules.match_request(ex.method, ex.path, ex.query)
        if used:
            _found(ex).used.extend(used)
        body_rules = rules.request_field_rules(ex.method, ex.path)
        if not body_rules:
            return
        if is_json_content_type(ex.header(b"content-type")):
            _found(ex).request_rules = body_rules
            ex.want_request_body = True
        elif _has_body(ex):  # a form or an upload where a request-field rule applies
            self.t.skipped("not_json")

    def request_body(self, ex: Exchange, body: bytes) -> None:
        found = _found(ex)
        hits = self._inspect(found.request_rules, body, ex.header(b"content-encoding"))
        if hits:
            found.used.extend(hits)

    def _inspect(
        self, rules: tuple[Rule, ...], body: bytes, encoding: bytes | None
    ) -> tuple[Rule, ...] | None:
        """The rules found in a JSON body (decompressed copy); None when it could not be
        inspected (the reason is counted)."""
        if not rules or not body:
            return None
        decoded = decoded_copy(body, encoding, self.cap)
        if isinstance(decoded, str):
            self.t.skipped(decoded)
            return None
        hits = RuleSet.match_body(rules, decoded)
        if hits is None:
            self.t.skipped("malformed")
        return hits

    def response_head(self, ex: Exchange) -> None:
        rules = self.rules.response_fields_anywhere
        if rules is None:  # some rule names a route: the path decides
            rules = self.rules.response_field_rules(ex.method, ex.path)
        if not rules or ex.method == "HEAD" or ex.status in (204, 304):
            return
        fields = ex.response_fields()
        if not is_json_content_type(fields.get(b"content-type")):
            if not _empty(fields.get(b"content-length")):  # a body it cannot read
                self.t.skipped("not_json")
            return
        found = _found(ex)
        # A strong ETag names one representation, byte for byte (RFC 9110 section 8.8.1), so
        # what was found in it once holds for every response that carries it again, from the
        # same release: two releases are two origins, which may reuse an ETag for other bytes.
        etag = fields.get(b"etag") if self.t.etag_limit else None
        if etag is not None and etag[:2] != b"W/":
            encoding = fields.get(b"content-encoding")
            key: EtagKey = (ex.release, ex.method, ex.target, etag, encoding, rules)
            known = self.t.by_etag.get(key)
            if known is not None:  # this exact representation was inspected before
                found.exposed.extend(known)
                return
            found.etag_key = key
        found.response_rules = rules
        ex.want_response_body = True

    def response_body(self, ex: Exchange, body: bytes) -> None:
        found = _found(ex)
        encoding = ex.response_fields().get(b"content-encoding")
        hits = self._inspect(found.response_rules, body, encoding)
        if hits:
            found.exposed.extend(hits)
        if found.etag_key is not None and hits is not None:
            self.t.remember(found.etag_key, hits)

    def respond(self, ex: Exchange) -> None:
        slots = ex.slots  # read here and in ``done`` without ``ex.get``'s frame: every request
        found = slots.get(FOUND) if slots else None
        if found is None or not (found.used or found.exposed):
            return
        involved = found.used + found.exposed
        fields = ex.response_fields()
        if (
            b"deprecation" not in fields and b"sunset" not in fields and b"link" not in fields
        ):  # the usual case: the app announced nothing itself
            ex.add_headers.extend(headers_for(tuple(involved), self.warning))
        else:
            ex.add_headers.extend(deprecation_headers(involved, ex.response_headers, self.warning))

    def done(self, ex: Exchange) -> None:
        slots = ex.slots
        found = slots.get(FOUND) if slots else None
        if found is None:
            return
        if ex.response_skipped is not None and found.response_rules:
            self.t.skipped(ex.response_skipped)
        if ex.request_skipped is not None and found.request_rules:
            self.t.skipped(ex.request_skipped)
        used, exposed = found.used, found.exposed
        if not used and not exposed:
            return
        now = time.time()
        if used:
            self.t.count_all(used if len(used) == 1 else unique(used), "use", ex.client_id, now)
        if exposed:
            rules = exposed if len(exposed) == 1 else unique(exposed)
            self.t.count_all(rules, "exposure", ex.client_id, now)


def _has_body(ex: Exchange) -> bool:
    """Whether a request's head announces a body (chunked, or a Content-Length above 0)."""
    if ex.header(b"transfer-encoding") is not None:
        return True
    length = ex.header(b"content-length")
    return length is not None and not _empty(length)


def _empty(content_length: bytes | None) -> bool:
    """Whether a Content-Length announces no body (a redirect, an empty 200)."""
    if content_length is None:
        return False
    text = content_length.strip()
    return text.isdigit() and int(text) == 0
