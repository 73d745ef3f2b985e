"""Missing servers or tools: skipped on a developer's machine, a failure in CI."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI=true: there a missing dependency is a broken build, not a choice."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
