"""The JSON bodies the upstream serves: a user object and a list of small items.

    {"user": {"id": 1, ..., "role": "admin", ...}, "items": [{"id": 1, "name": ..., ...}, ...]}

``1KB`` carries 8 items (1,024 bytes), ``100KB`` 1,000 items (about 88 KB), as a long list
page of a JSON API would. The user carries ``role`` (a rule on ``user.role`` hits); the items
do not (a rule on ``items[].role`` misses, although the key ``"role"`` occurs in the body, so
no key-name prefilter can skip the parse); every item carries ``id`` (a rule on ``items[].id``
hits in every element). Green's user also carries the new ``roles``, as in the sample API.
"""

from __future__ import annotations

import json
from pathlib import Path

# The path names the size, so a reader of a wrk line sees what was fetched.
SIZES = {"1KB": ("/users/1", 8), "100KB": ("/users/100", 1000)}  # size: (path, items)
RELEASES = ("blue", "green")


def make_body(items: int, release: str) -> bytes:
    user: dict[str, object] = {
        "id": 1,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "role": "admin",
        "created": "2024-03-01T09:30:00Z",
        "last_login": "2026-11-20T17:04:11Z",
        "address": {
            "street": "12 St James's Square",
            "city": "London",
            "postcode": "SW1Y 4JH",
            "country": "GB",
        },
        "settings": {"theme": "dark", "locale": "en-GB", "newsletter": False},
    }
    if release == "green":
        user["roles"] = ["admin"]
    rows = [
        {
            "id": i,
            "name": f"item-{i:04d}",
            "sku": f"SKU{i:05d}",
            "price": 9.5,
            "qty": i % 7,
            "updated": "2024-03-01",
        }
        for i in range(1, items + 1)
    ]
    return json.dumps({"user": user, "items": rows}, separators=(",", ":")).encode()


def write_site(root: Path) -> dict[tuple[str, str], bytes]:
    """``root/<release>/users/<n>``, the files the upstream serves; returns them by
    (release, size) so a check can compare an answer byte for byte."""
    bodies = {}
    for release in RELEASES:
        for size, (path, items) in SIZES.items():
            body = make_body(items, release)
            file = root / release / path.lstrip("/")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(body)
            bodies[release, size] = body
    return bodies
