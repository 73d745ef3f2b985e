"""Reading snapshots in plain SQL through the database driver.

The SQLAlchemy store and the lean one (``driver.DriverStore``, which read-only commands such as
``access show`` use once the store is up to date) both read through these functions, on the
driver connection each holds: one reading of the versions, at driver speed, whichever store asks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import dn as dnutil
from ..errors import NotFoundError
from ..kinds import GROUP_KINDS, SnapshotInfo
from ..model import Entry, Snapshot
from .driver import Db, aware
from .packing import unpack

ENTRY_COLUMNS = "entity, kind, dn, name, uuid, enabled, CAST(attrs AS TEXT)"


def pick(listing: Sequence[SnapshotInfo], ref: int | str | None) -> SnapshotInfo:
    """The snapshot named by id, 'latest' / None, or a negative offset (-1 = previous)."""
    if not listing:
        raise NotFoundError("no snapshot yet: run 'rbac-migrate snapshot take'")
    if ref in (None, "latest"):
        return listing[-1]
    try:
        number = int(ref)
    except (TypeError, ValueError):
        raise NotFoundError(f"snapshot '{ref}' is not a number or 'latest'") from None
    if number < 0 and -number <= len(listing):
        return listing[number - 1]
    for info in listing:
        if info.id == number:
            return info
    raise NotFoundError(f"no snapshot {ref}: 'rbac-migrate snapshot list' shows them")


def _valid_at(db: Db, snapshot_id: int) -> tuple[str, tuple]:
    """The condition selecting the versions a snapshot holds, with its parameters: the current
    versions for the latest snapshot, which an index narrows to."""
    if snapshot_id == db.scalar("SELECT max(id) FROM snapshots"):
        return "until IS NULL", ()
    return "since <= ? AND (until IS NULL OR until > ?)", (snapshot_id, snapshot_id)


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


def load(db: Db, snapshot_id: int, kinds: tuple[str, ...] | None = None) -> Snapshot:
    """A snapshot: every entry, or only entries of ``kinds`` plus every group; each group's members.

    Entries come in entity order; peers sharing attributes share one mapping.
    """
    taken_at, source, flavour, bases = db.rows(
        "SELECT taken_at, source, flavour, bases FROM snapshots WHERE id = ?", (snapshot_id,)
    )[0]
    valid, params = _valid_at(db, snapshot_id)
    sql = f"SELECT {ENTRY_COLUMNS}, members FROM entry_versions WHERE {valid}"
    if kinds is not None:
        chosen = sorted(set(kinds) | set(GROUP_KINDS))
        sql, params = f"{sql} AND kind IN {_in(chosen)}", (*params, *chosen)
    decoded: dict[str | None, dict] = {None: {}}
    entries, members = [], {}
    for idx, kind, dn, name, uuid, enabled, attrs, packed in db.rows(f"{sql} ORDER BY entity", params):
        found = decoded.get(attrs)
        if found is None:
            found = decoded[attrs] = json.loads(attrs) or {}
        entries.append(Entry(idx, kind, dn, name, uuid, bool(enabled), found))
        if kind in GROUP_KINDS:
            members[idx] = unpack(packed)
    return Snapshot(
        taken_at=aware(taken_at),
        source=source,
        flavour=flavour,
        bases=json.loads(bases) if isinstance(bases, str) else bases,
        entries=entries,
        members=members,
        id=snapshot_id,
    )


def find_entries(db: Db, snapshot_id: int, name_or_dn: str, kinds: Sequence[str]) -> list[Entry]:
    """Entries of the given kinds whose name or DN matches (case-insensitively)."""
    column, key = ("dn_norm", dnutil.normalize(name_or_dn)) if "=" in name_or_dn else ("name_norm", name_or_dn)
    key = key if column == "dn_norm" else key.strip().lower()
    valid, params = _valid_at(db, snapshot_id)
    kinds = tuple(kinds)
    sql = f"SELECT {ENTRY_COLUMNS} FROM entry_versions WHERE {column} = ? AND kind IN {_in(kinds)} AND {valid}"
    rows = db.rows(f"{sql} ORDER BY entity", (key, *kinds, *params))
    return [
        Entry(idx, kind, dn, name, uuid, bool(enabled), json.loads(attrs) if attrs else {})
        for idx, kind, dn, name, uuid, enabled, attrs in rows
    ]
