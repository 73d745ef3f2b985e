"""The audit log for an auditor: records about one person, found by identity, and one-line summaries."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import dn as dnutil
from ..audit import AuditRecord
from ..model import USER, identity_key
from .provenance import as_utc

if TYPE_CHECKING:
    from ..store import Store

SUMMARY_WIDTH = 100


class Person:
    """Who ``--user`` names: an identity, and which DNs were theirs when.

    A DN belongs to whoever held it in the snapshot nearest before a record (else the first
    after): records about an earlier account re-created under the same DN are someone else's.
    """

    def __init__(self, store: Store, user: str):
        self.text = user.strip().lower()
        self.key: str | None = None
        self.owners: dict[str, tuple[list[datetime], list[str]]] = {}
        seen: dict[str, list[tuple[datetime, str]]] = {}
        for info in store.snapshots():
            for entry in store.find_entries(info.id, user, (USER,)):
                key = identity_key(entry.uuid, entry.dn)
                self.key = key  # the newest snapshot names who the user is now
                seen.setdefault(dnutil.normalize(entry.dn), []).append((as_utc(info.taken_at), key))
        for dn, timeline in seen.items():
            self.owners[dn] = ([t for t, _ in timeline], [k for _, k in timeline])

    def concerns(self, record: AuditRecord) -> bool:
        operator = record.operator.lower()
        if self.text in (operator, operator.rsplit("@", 1)[0]):
            return True
        if self.key is None:  # never in a snapshot: match the name as given
            target = record.target.strip().lower()
            return self.text == target or ("=" in target and dnutil.first_value(target) == self.text)
        return any(self._names_me(text, record.at) for text in _strings([record.target, record.details]))

    def _names_me(self, text: str, at: datetime) -> bool:
        if text == self.key or f"dn:{dnutil.normalize(text)}" == self.key and "=" in text:
            return True
        if "=" not in text:
            return False
        timeline = self.owners.get(dnutil.normalize(text))
        if timeline is None:
            return False
        times, keys = timeline
        position = bisect.bisect_right(times, as_utc(at)) - 1
        return keys[max(position, 0)] == self.key


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def summary(details: dict[str, Any]) -> str:
    """Before and after in one short line; the JSON output keeps every detail."""
    parts = []
    changes = details.get("changes")
    if isinstance(changes, list):
        added = sum(1 for c in changes if isinstance(c, dict) and c.get("after") == "present")
        parts.append(f"{added} member values added, {len(changes) - added} removed")
    if "before" in details or "after" in details:
        parts.append(f"before {_short(details.get('before'))} → after {_short(details.get('after'))}")
    for name, value in details.items():
        if name not in ("changes", "before", "after") and isinstance(value, (str, int, float)) and value != "":
            parts.append(f"{name}={value}")
        elif isinstance(value, list) and name not in ("changes",):
            parts.append(f"{name}: {len(value)}")
    text = "; ".join(parts)
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


def _short(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        members = value.get("member")
        if isinstance(members, list) and len(value) == 1:
            return f"{len(members)} member values"
        return ", ".join(f"{k}={_short(v) if isinstance(v, (dict, list)) else v}" for k, v in value.items())
    if isinstance(value, list):
        return f"{len(value)} values"
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
