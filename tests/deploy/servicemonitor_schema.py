"""A structural JSON schema for ``monitoring.coreos.com/v1`` ServiceMonitor.

No package on the registries this project uses ships the Prometheus Operator's CRD schema in
a form jsonschema reads, so this one is written by hand from the CRD (prometheus-operator
v0.80): every field name the CRD allows at the levels deploy/kubernetes uses, unknown ones
refused, and the types of the fields we set. Deeper levels (relabelings, TLS) are left open.
"""

from __future__ import annotations

from typing import Any

# The CRD's pattern for a Prometheus duration (30s, 1m30s).
UNITS = "".join(f"(([0-9]+){unit})?" for unit in ("y", "w", "d", "h", "m", "s", "ms"))
DURATION = {"type": "string", "pattern": f"^(0|{UNITS})$"}
SECRET_KEY = {
    "type": "object",
    "required": ["key"],
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string", "minLength": 1},
        "name": {"type": "string"},
        "optional": {"type": "boolean"},
    },
}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
}
ENDPOINT_FIELDS = [
    "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2", "filterRunning",
    "followRedirects", "honorLabels", "honorTimestamps", "metricRelabelings", "noProxy",
    "oauth2", "params", "proxyConnectHeader", "proxyFromEnvironment", "proxyUrl",
    "relabelings", "targetPort", "tlsConfig", "trackTimestampsStaleness",
]  # fmt: skip
SPEC_FIELDS = [
    "attachMetadata", "bodySizeLimit", "fallbackScrapeProtocol", "jobLabel",
    "keepDroppedTargets", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
    "namespaceSelector", "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor",
    "podTargetLabels", "sampleLimit", "scrapeClass", "scrapeClassicHistograms",
    "scrapeProtocols", "selectorMechanism", "targetLabels", "targetLimit",
]  # fmt: skip
ENDPOINT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{name: {} for name in ENDPOINT_FIELDS},
        "port": {"type": "string", "minLength": 1},
        "path": {"type": "string", "pattern": "^/"},
        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
        "interval": DURATION,
        "scrapeTimeout": DURATION,
        "authorization": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"type": {"type": "string"}, "credentials": SECRET_KEY},
        },
    },
}
SERVICE_MONITOR: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector"],
            "additionalProperties": False,
            "properties": {
                **{name: {} for name in SPEC_FIELDS},
                "selector": LABEL_SELECTOR,
                "endpoints": {"type": "array", "minItems": 1, "items": ENDPOINT},
            },
        },
    },
}
