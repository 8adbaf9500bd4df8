"""The enforcement step: deprecated elements switched off after their sunset or in a brownout.

It runs after ``proxy.deprecation.step.DeprecationStep`` and reads what that step found
(``FOUND``): a deprecated endpoint used is answered 410, a deprecated query parameter or
request field 400 (the app is not called), and a deprecated response field is removed from the
response. Whether an element is refused to this client now is ``proxy.core.enforcement``'s
``verdict``; the clock is read once per request, and only for a request that touches an
enforced element.

The refused request still counts as a use of the element (the deprecation step counts it when
the exchange is done: a client that was refused still depends on the element), and its
response carries the Deprecation, Sunset and Link headers as any other. A removed response
field counts as an exposure the same way. Each refusal and removal is counted in
``switchback_deprecated_refused_total{element,client,reason}`` (clients bounded as for the
other deprecation metrics).

Cost discipline: the step is in the pipeline only when some entry sets ``enforce`` or
``brownouts``; its rules are a table of their own. A request touching no deprecated element
pays one slot look-up per hook (the deprecation step's ``FOUND``, ~0.1 us); a request body is
held (``hold_request_body``) only when an enforced request-field rule applies to the route
and refuses this client right now.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from proxy.core.bodyinspect import decoded_copy, encode_for, is_json_content_type
from proxy.core.enforcement import Policy, Reason, active_window, compile_policy, verdict
from proxy.core.fieldremoval import Malformed, encode, load, remove
from proxy.core.report import iso
from proxy.core.rules import Rule, RuleSet
from proxy.deprecation.step import FOUND
from proxy.deprecation.telemetry import Telemetry
from proxy.pipeline import Exchange, Reply, Rewrite, Slot, Step
from proxy.schema import Config

_STATUS = {"endpoint": 410, "param": 400, "request_field": 400}
_WHAT = {
    "endpoint": "endpoint",
    "param": "query parameter",
    "request_field": "request field",
    "field": "response field",
}


class Pending:
    """What the step decided for one exchange (kept in ``ENFORCED``)."""

    __slots__ = ("now", "request_rules", "response_rules")

    def __init__(self, now: float) -> None:
        self.now = now
        self.request_rules: dict[Rule, Reason] = {}  # enforced request fields, if sent
        self.response_rules: dict[Rule, Reason] = {}  # response fields to remove


ENFORCED = Slot[Pending]("enforcement")


def enforces(config: Config) -> bool:
    """Whether some deprecation sets ``enforce: after_sunset`` or ``brownouts``."""
    return any(d.enforce != "never" or d.brownouts for d in config.deprecations)


def policies(telemetry: Telemetry) -> dict[str, Policy]:
    """The policies of the entries that set ``enforce`` or ``brownouts``, by id."""
    out = {}
    for dep in telemetry.config.deprecations:
        policy = compile_policy(dep)
        if policy is not None:
            out[dep.id] = policy
    return out


class EnforceStep(Step):
    name = "enforcement"

    def __init__(self, telemetry: Telemetry, clock: Callable[[], float] = time.time) -> None:
        self.t = telemetry
        self.clock = clock
        self.policies = policies(telemetry)
        enforced = [r for r in telemetry.rules.rules if r.id in self.policies]
        self.fields = RuleSet([r for r in enforced if r.kind == "field"])
        self.has_fields = any(r.kind == "field" for r in enforced)
        self.cap = telemetry.config.telemetry.max_body_bytes

    def _pending(self, ex: Exchange) -> Pending:
        pending = ex.get(ENFORCED)
        if pending is None:
            pending = Pending(self.clock())
            ex.put(ENFORCED, pending)
        return pending

    def _refused(self, rules: tuple[Rule, ...] | list[Rule], ex: Exchange) -> dict[Rule, Reason]:
        out: dict[Rule, Reason] = {}
        for rule in rules:
            policy = self.policies.get(rule.id)
            if policy is not None:
                reason = verdict(policy, ex.client_id, self._pending(ex).now)
                if reason is not None:
                    out[rule] = reason
        return out

    def request(self, ex: Exchange) -> Reply | None:
        found = ex.get(FOUND)
        if found is None:  # no deprecated element in this request
            return None
        refused = self._refused(found.used, ex)
        if refused:  # the first element refused answers
            rule, reason = next(iter(refused.items()))
            return self._reply(ex, rule, reason)
        if found.request_rules:
            held = self._refused(found.request_rules, ex)
            if held:
                self._pending(ex).request_rules = held
                ex.want_request_body = ex.hold_request_body = True
        return None

    def request_body(self, ex: Exchange, body: bytes) -> Reply | None:
        pending, found = ex.get(ENFORCED), ex.get(FOUND)
        if pending is None or found is None or not pending.request_rules:
            return None
        for rule in found.used:  # what the deprecation step found in the body
            reason = pending.request_rules.get(rule)
            if reason is not None:
                return self._reply(ex, rule, reason)
        return None

    def _reply(self, ex: Exchange, rule: Rule, reason: Reason) -> Reply:
        self._count(rule, ex.client_id, reason)
        body = refusal_body(rule, reason, self.policies[rule.id], self._pending(ex).now)
        return Reply.json(_STATUS[rule.kind], body)

    def response_head(self, ex: Exchange) -> None:
        # The deprecation step keeps FOUND for every JSON response a field rule applies to
        # (and for a request that used an element): without it, no enforced rule applies.
        if not self.has_fields or ex.get(FOUND) is None:
            return
        if ex.method == "HEAD" or ex.status in (204, 304):
            return
        rules = self.fields.response_field_rules(ex.method, ex.path)
        if not rules or not is_json_content_type(ex.response_header(b"content-type")):
            return
        refused = self._refused(rules, ex)
        if refused:
            self._pending(ex).response_rules = refused
            ex.want_response_body = True

    def response_body(self, ex: Exchange, body: bytes) -> Rewrite | None:
        pending = ex.get(ENFORCED)
        if pending is None or not pending.response_rules or not body:
            return None
        encoding = ex.response_header(b"content-encoding")
        decoded = decoded_copy(body, encoding, self.cap)
        if isinstance(decoded, str):  # counted by the deprecation step, which saw it too
            return None
        try:  # the untouched values stay msgspec.Raw: each keeps its exact text
            value = load(decoded)
        except Malformed:  # not JSON: it goes out as it came
            return None
        removed = False
        for rule, reason in pending.response_rules.items():
            if rule.path is not None and remove(value, rule.path):
                removed = True
                self._count(rule, ex.client_id, reason)
        if not removed:
            return None
        new, coding = encode_for(encode(value), encoding, ex.header(b"accept-encoding"))
        return Rewrite(new, coding)

    def _count(self, rule: Rule, client_id: str, reason: Reason) -> None:
        label = self.t.labels.label(client_id)
        self.t.metrics.refused.inc((rule.id, label, reason))


def refusal_body(rule: Rule, reason: Reason, policy: Policy, now: float) -> dict[str, object]:
    """The JSON error a refused request gets: the proxy's error shape (``error``, ``detail``)
    with the element, why, and where it is documented."""
    what = _WHAT[rule.kind]
    if reason == "sunset":
        when = iso(rule.sunset_at) if rule.sunset_at is not None else "its sunset"
        detail = f"the deprecated {what} {rule.element} was switched off at its sunset ({when})"
    else:
        detail = f"the deprecated {what} {rule.element} is switched off during a brownout"
    if rule.replacement:
        detail += f"; use {rule.replacement}"
    body: dict[str, object] = {
        "error": "deprecated_" + reason,
        "detail": detail,
        "element": {"id": rule.id, "kind": rule.kind, "what": what, "name": rule.element},
        "link": rule.link or rule.sunset_link,
    }
    if rule.sunset_at is not None:
        body["sunset"] = iso(rule.sunset_at)
    active = active_window(policy, now) if reason == "brownout" else None
    if active is not None:
        start, end = active[1]
        body["brownout"] = {"start": iso(start), "end": iso(end)}
    return body
