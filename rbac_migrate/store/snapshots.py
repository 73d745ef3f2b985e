"""Snapshot storage: each entry's versions with the snapshots they are valid for.

A version is valid for every snapshot ``s`` with ``since <= s < until`` (``until`` NULL while
current), so a snapshot in which an entry did not change costs nothing for that entry: the store
grows with change, not with the size of the directory. Entries are numbered by entity, one
number per identity (entryUUID / objectGUID, else the normalised DN), and a group's members are a
packed array of those numbers.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import Text, and_, cast, delete, func, or_, select
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..model import GROUP_KINDS, Entry
from .packing import unpack
from .schema import entry_versions, snapshots

V = entry_versions.c


def valid_at(snapshot_id: int, latest: bool = False):
    """The condition selecting the versions a snapshot holds."""
    if latest:
        return V.until.is_(None)
    return and_(V.since <= snapshot_id, or_(V.until.is_(None), V.until > snapshot_id))


def latest_id(conn: Connection) -> int | None:
    return conn.execute(select(func.max(snapshots.c.id))).scalar()


# -- writing ------------------------------------------------------------------------------------


def _raw(conn: Connection, query) -> list[tuple]:
    """Rows straight from the driver: building 100,000 rows through SQLAlchemy costs several times more."""
    # Only integers and fixed kind names are bound, so inlining them spares each driver's parameter style.
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


def load_entries(
    conn: Connection, snapshot_id: int, latest: bool, kinds: tuple[str, ...] | None
) -> tuple[list[Entry], dict[int, tuple[int, ...]]]:
    """A snapshot's entries in entity order, and each group's members; peers share one attribute mapping."""
    query = select(V.entity, V.kind, V.dn, V.name, V.uuid, V.enabled, cast(V.attrs, Text), V.members).where(
        valid_at(snapshot_id, latest)
    )
    if kinds is not None:
        query = query.where(V.kind.in_(sorted(set(kinds) | set(GROUP_KINDS))))
    decoded: dict[str | None, dict] = {None: {}}
    entries, members = [], {}
    for idx, kind, dn, name, uuid, enabled, attrs, packed in _raw(conn, query.order_by(V.entity)):
        found = decoded.get(attrs)
        if found is None:
            found = decoded[attrs] = json.loads(attrs) or {}
        entries.append(Entry(idx, kind, dn, name, uuid, bool(enabled), found))
        if kind in GROUP_KINDS:
            members[idx] = unpack(packed)
    return entries, members


def find_entries(conn: Connection, snapshot_id: int, latest: bool, name_or_dn: str, kinds: tuple[str, ...]):
    """Entries of the given kinds whose name or DN matches (case-insensitively)."""
    column, key = (
        (V.dn_norm, dnutil.normalize(name_or_dn)) if "=" in name_or_dn else (V.name_norm, name_or_dn.strip().lower())
    )
    query = select(entry_versions).where(column == key, V.kind.in_(kinds), valid_at(snapshot_id, latest))
    return [_entry(row) for row in conn.execute(query.order_by(V.entity)).all()]


def _entry(row) -> Entry:
    attrs = row.attrs
    if isinstance(attrs, str):  # some drivers hand JSON back as text
        attrs = json.loads(attrs)
    return Entry(row.entity, row.kind, row.dn, row.name, row.uuid, bool(row.enabled), attrs or {})


def sync_state(conn: Connection, snapshot_id: int) -> dict | None:
    text = conn.execute(select(snapshots.c.sync).where(snapshots.c.id == snapshot_id)).scalar()
    return json.loads(text) if text else None


# -- pruning ------------------------------------------------------------------------------------


def prune(conn: Connection, keep: int | None, older_than: datetime | None) -> list[int]:
    """Remove snapshots beyond the newest ``keep`` or taken before ``older_than``; never the latest.

    Versions no remaining snapshot holds go with them. Returns the ids removed.
    """
    listing = conn.execute(select(snapshots.c.id, snapshots.c.taken_at).order_by(snapshots.c.id)).all()
    if not listing:
        return []
    doomed = set()
    if keep is not None:
        doomed |= {row.id for row in listing[: max(len(listing) - keep, 0)]}
    if older_than is not None:
        doomed |= {row.id for row in listing if _aware(row.taken_at) < older_than}
    doomed.discard(listing[-1].id)
    if not doomed:
        return []
    conn.execute(delete(snapshots).where(snapshots.c.id.in_(sorted(doomed))))
    kept = snapshots.alias("kept")
    still_held = select(kept.c.id).where(kept.c.id >= V.since, or_(V.until.is_(None), kept.c.id < V.until)).exists()
    conn.execute(delete(entry_versions).where(~still_held))
    return sorted(doomed)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
