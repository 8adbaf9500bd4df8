"""Field selection on the request path: a client names the fields it reads (``X-Fields`` or a
query parameter, ``proxy.core.fieldselect``'s syntax), Switchback prunes JSON responses to
them (``fields.mode: prune``) or only takes note (``declare``), and counts declared reads.

    request        the list parsed (memoized); a malformed one is answered 400 (app not called)
    response_head  prune: a 2xx JSON response within the cap is held
    response_body  prune: decoded, pruned (``proxy.core.typedprune``), encoded again (the
                   client's encoding or identity); the deprecation step (``FOUND``) then looks
                   in the pruned body for the declared deprecated fields only (none declared:
                   no parse at all), and remembers nothing under the app's ETag, which named
                   the unpruned bytes
    respond        ``X-Fields-Pruned: yes`` or ``no; reason=...``; ``Vary`` names the header
    done           per exposed deprecated field: "read" when declared, else (ledger only)
                   "unread"; and the outcome in ``switchback_fields_responses_total``

Reasons a response is not pruned (the header's ``reason``, the metric's ``outcome``):
``declare`` (declare mode), ``status`` (not 2xx), ``no-body`` (HEAD, 204, 304, empty),
``not-json``, ``too-large`` (above ``fields.max_body_bytes``, or what Switchback holds),
``encoding`` (a Content-Encoding it cannot decode), ``malformed`` (JSON that does not parse),
``too-deep`` (arrays nested too deep to walk).

Exposure in prune mode is exact: a field pruned away never reached the client, and a declared
field counts only when the pruned body (what the client receives) holds it. When a response
passes through unpruned, the deprecation step counts the exposures of the whole body as usual,
and a declaring client that did not declare a field gets "unread" for it beside the exposure.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter

from proxy.core.bodyinspect import decoded_copy, encode_for, is_json_content_type
from proxy.core.fieldselect import (
    FieldsError,
    Tree,
    declares,
    parse_fields,
    query_value,
)
from proxy.core.rules import unique
from proxy.core.typedprune import Malformed, Pruner, pruner_for
from proxy.deprecation.step import FOUND
from proxy.deprecation.telemetry import Telemetry
from proxy.pipeline import Exchange, Reply, Rewrite, Slot, Step
from proxy.schema import Config

PRUNED = "pruned"
OUTCOMES = (PRUNED, "declare", "invalid", "status", "no-body", "not-json", "too-large",
            "encoding", "malformed", "too-deep")  # fmt: skip
_SKIPS = {"too_large": "too-large", "malformed": "malformed", "encoding": "encoding"}


class FieldsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.responses = Counter(
            "switchback_fields_responses",
            "Responses to requests with a field list, by outcome: pruned, declare (counted "
            "only), invalid (answered 400), or why the body was not pruned.",
            ["outcome"],
            registry=registry,
        )
        self._by = {outcome: self.responses.labels(outcome) for outcome in OUTCOMES}

    def count(self, outcome: str) -> None:
        self._by[outcome].inc()


class Selection:
    """A request's declared fields (kept in ``SELECTION``)."""

    __slots__ = ("tree", "pruner", "from_header", "outcome")

    def __init__(self, tree: Tree, pruner: Pruner | None, from_header: bool) -> None:
        self.tree = tree
        self.pruner = pruner  # prune mode only
        self.from_header = from_header
        self.outcome: str | None = None  # PRUNED, or why not (set once known)


SELECTION = Slot[Selection]("fields")


class DeclareFields(Step):
    """``fields.mode: declare``: the list is parsed and counted, no body is held."""

    name = "fields"

    def __init__(self, config: Config, telemetry: Telemetry, metrics: FieldsMetrics) -> None:
        f = config.fields
        self.header_name = f.header
        self.header = f.header.lower().encode("latin-1")
        self.param = f.query_param
        self.status_header = f.status_header.encode("latin-1")
        self.cap = f.max_body_bytes or config.telemetry.max_body_bytes
        self.t = telemetry
        self.metrics = metrics

    def request(self, ex: Exchange) -> Reply | None:
        raw = ex.header(self.header)
        where = self.header_name
        try:
            if raw is not None:
                text: str | None = raw.decode("utf-8")
            elif self.param is not None:
                where = f"query parameter {self.param}"
                text = query_value(ex.query, self.param)
            else:
                return None
        except UnicodeDecodeError as err:
            return self._invalid(where, FieldsError(err.start, "UTF-8 text"))
        if text is None:
            return None
        try:
            selection = self._selection(text, raw is not None)
        except FieldsError as err:
            return self._invalid(where, err)
        ex.put(SELECTION, selection)
        return None

    def _selection(self, text: str, from_header: bool) -> Selection:
        return Selection(parse_fields(text), None, from_header)

    def _invalid(self, where: str, err: FieldsError) -> Reply:
        self.metrics.count("invalid")
        detail = f"{where}: not a field list {err} (e.g. user(id,name),items/id)"
        payload = {
            "error": "invalid_fields",
            "detail": detail,
            "position": err.position,
            "expected": err.expected,
        }
        return Reply.json(400, payload, (b"Cache-Control", b"no-store"))

    def respond(self, ex: Exchange) -> None:
        sel = ex.get(SELECTION)
        if sel is None:
            return
        outcome = sel.outcome = self._outcome(ex, sel)
        value = b"yes" if outcome == PRUNED else b"no; reason=" + outcome.encode()
        ex.add_headers.append((self.status_header, value))
        if sel.from_header and outcome != "declare":
            ex.add_headers.append((b"Vary", self.header_name.encode("latin-1")))

    def _outcome(self, ex: Exchange, sel: Selection) -> str:
        return "declare"

    def done(self, ex: Exchange) -> None:
        sel = ex.get(SELECTION)
        if sel is None:
            return
        self.metrics.count(sel.outcome or self._outcome(ex, sel))
        found = ex.get(FOUND)
        if found is None or not found.exposed:
            return
        now = time.time()
        client = ex.client_id
        ledger = self.t.ledger
        for rule in unique(found.exposed):
            if rule.path is not None and declares(sel.tree, rule.path):
                self.t.count(rule, "read", client, now)
            elif ledger is not None:  # exposed, but the client says it does not read it
                ledger.record(rule.id, "unread", client, now)


class PruneFields(DeclareFields):
    """``fields.mode: prune``: JSON responses are pruned to the declared fields."""

    def _selection(self, text: str, from_header: bool) -> Selection:
        pruner = pruner_for(text)  # memoized with its generated decoder
        return Selection(pruner.tree, pruner, from_header)

    def response_head(self, ex: Exchange) -> None:
        sel = ex.get(SELECTION)
        if sel is None:
            return
        reason = self._refusal(ex)
        if reason is not None:
            sel.outcome = reason
        else:
            ex.want_response_body = True

    def _refusal(self, ex: Exchange) -> str | None:
        """Why the response head alone rules out pruning, or None."""
        status = ex.status
        if ex.method == "HEAD" or status in (204, 304):
            return "no-body"
        if not 200 <= status < 300:
            return "status"
        if not is_json_content_type(ex.response_header(b"content-type")):
            return "not-json"
        length = ex.response_header(b"content-length")
        if length is not None:
            text = length.strip()
            if text.isdigit() and int(text) > self.cap:
                return "too-large"
        return None

    def _outcome(self, ex: Exchange, sel: Selection) -> str:
        if sel.outcome is not None:
            return sel.outcome
        if ex.response_skipped == "too_large":  # the data plane stopped holding it
            return "too-large"
        return self._refusal(ex) or "status"  # a reply no release made

    def response_body(self, ex: Exchange, body: bytes) -> Rewrite | None:
        sel = ex.get(SELECTION)
        if sel is None or sel.outcome is not None or sel.pruner is None:
            return None
        if not body:
            sel.outcome = "no-body"
            return None
        encoding = ex.response_header(b"content-encoding")
        decoded = decoded_copy(body, encoding, self.cap)
        if isinstance(decoded, str):
            sel.outcome = _SKIPS.get(decoded, "encoding")
            return None
        try:
            pruned = sel.pruner.prune_bytes(decoded)
        except Malformed:
            sel.outcome = "malformed"
            return None
        except RecursionError:
            sel.outcome = "too-deep"
            return None
        sel.outcome = PRUNED
        self._look_for_declared(ex, sel.tree)
        return Rewrite(*encode_for(pruned, encoding, ex.header(b"accept-encoding")))

    def _look_for_declared(self, ex: Exchange, tree: Tree) -> None:
        """The deprecation step is to look in the pruned body (what the client receives) for
        the declared deprecated fields only: the others were pruned away."""
        found = ex.get(FOUND)
        if found is None:
            return
        rules = self.t.rules.response_field_rules(ex.method, ex.path)
        # Exposures the ETag cache gave were found in the whole body: they no longer hold.
        found.exposed = [r for r in found.exposed if r not in rules]
        found.response_rules = tuple(r for r in rules if r.path and declares(tree, r.path))
        found.etag_key = None  # the ETag named the app's bytes, not these


def fields_step(config: Config, telemetry: Telemetry, metrics: FieldsMetrics) -> Step | None:
    """The step for ``config.fields.mode``; None when off (the header is then ignored)."""
    mode = config.fields.mode
    if mode == "prune":
        return PruneFields(config, telemetry, metrics)
    if mode == "declare":
        return DeclareFields(config, telemetry, metrics)
    return None
