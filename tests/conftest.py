"""Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``: "default" (``make test``) or "fuzz"
(``make fuzz``: at least 10,000 examples of every property that does not set its own count).
``tests/unit/test_config_fuzz.py`` runs a short pass of its own under "default"."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("fuzz", max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
