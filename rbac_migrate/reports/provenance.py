"""Which snapshot of which directory a report was computed from, in the form every output shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from ..model import SnapshotInfo


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive times; the store writes them in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="seconds")


def snapshot_fields(info: SnapshotInfo, flavour: str, bases: Mapping[str, str], **extra) -> dict:
    """Which snapshot of which directory a report was computed from."""
    return {
        "id": info.id,
        "taken_at": iso(info.taken_at),
        "source": info.source,
        "flavour": flavour,
        "bases": dict(bases),
        "users": info.users,
        "grants": info.grants,
        "roles": info.roles,
        "memberships": info.memberships,
        **extra,
    }
