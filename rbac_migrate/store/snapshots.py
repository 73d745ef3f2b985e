"""Snapshot storage: each entry's versions with the snapshots they are valid for.

A version is valid for every snapshot ``s`` with ``since <= s < until`` (``until`` NULL while
current), so a snapshot in which an entry did not change costs nothing for that entry: the store
grows with change, not with the size of the directory. Entries are numbered by entity, one
number per identity (entryUUID / objectGUID, else the normalised DN), and a group's members are a
packed array of those numbers.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from sqlalchemy import Text, and_, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..errors import StoreError
from ..model import GROUP_KINDS, Entry, Snapshot, identity_key
from .schema import entry_versions, snapshots

V = entry_versions.c
INSERT_COLUMNS = (
    "entity",
    "since",
    "identity",
    "kind",
    "dn",
    "dn_norm",
    "name",
    "name_norm",
    "uuid",
    "enabled",
    "attrs",
    "members",
)
# What is compared to decide whether an entry changed; attributes as their JSON text.
COMPARED = (V.kind, V.dn, V.name, V.uuid, V.enabled, cast(V.attrs, Text), V.members)


def pack(indexes: Iterable[int]) -> bytes:
    packed = array("i", indexes)
    if sys.byteorder == "big":
        packed.byteswap()  # stored little-endian so a store can move between machines
    return packed.tobytes()


def unpack(blob: bytes | None) -> tuple[int, ...]:
    packed = array("i")
    packed.frombytes(blob or b"")
    if sys.byteorder == "big":
        packed.byteswap()
    return tuple(packed)


def valid_at(snapshot_id: int, latest: bool = False):
    """The condition selecting the versions a snapshot holds."""
    if latest:
        return V.until.is_(None)
    return and_(V.since <= snapshot_id, or_(V.until.is_(None), V.until > snapshot_id))


def latest_id(conn: Connection) -> int | None:
    return conn.execute(select(func.max(snapshots.c.id))).scalar()


# -- identities ---------------------------------------------------------------------------------


@dataclass
class EntityIds:
    """Entity numbers by identity: the current ones, and where new numbers start."""

    known: dict[str, int]
    next_id: int

    def __call__(self, identity: str) -> int:
        found = self.known.get(identity)
        if found is None:
            found = self.known[identity] = self.next_id
            self.next_id += 1
        return found


def entity_ids(conn: Connection) -> EntityIds:
    known = dict(conn.execute(select(V.identity, V.entity).where(V.until.is_(None))).all())
    highest = conn.execute(select(func.max(V.entity))).scalar()
    return EntityIds(known, 0 if highest is None else highest + 1)


# -- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What saving a snapshot changed in the store."""

    snapshot_id: int | None
    added: int
    changed: int
    removed: int

    @property
    def nothing(self) -> bool:
        return not (self.added or self.changed or self.removed)


def save(conn: Connection, snap: Snapshot, sync: dict | None, skip_unchanged: bool = False) -> Written:
    """Write the versions that differ from the current ones, in the caller's transaction.

    With ``skip_unchanged`` a snapshot identical to the latest is not written (snapshot_id None).
    """
    _lock(conn)
    ids = entity_ids(conn)
    snap = _numbered(snap, ids)
    current = {row[0]: tuple(row[1:]) for row in _raw(conn, select(V.entity, *COMPARED).where(V.until.is_(None)))}
    rows, changed, seen = [], [], set()
    attrs_json: dict[tuple, str] = {}  # peers share attribute values: encode each set once
    for entry in snap.entries:
        compared = _compared(entry, snap.members.get(entry.idx), attrs_json)
        seen.add(entry.idx)
        old = current.get(entry.idx)
        if old is not None and _same(old, compared):
            continue
        if old is not None:
            changed.append(entry.idx)
        rows.append((entry, compared))
    removed = [entity for entity in current if entity not in seen]
    if skip_unchanged and not rows and not removed:
        return Written(None, 0, 0, 0)
    snapshot_id = _insert_head(conn, snap, sync)
    _close(conn, [*changed, *removed], snapshot_id)
    bulk_insert(conn, entry_versions, INSERT_COLUMNS, [_row(snapshot_id, e, c) for e, c in rows])
    if snapshot_id <= 2:  # statistics once a large snapshot lands; later ones have the same shape
        conn.exec_driver_sql("ANALYZE entry_versions")
    snap.id = snapshot_id
    return Written(snapshot_id, len(rows) - len(changed), len(changed), len(removed))


def _lock(conn: Connection) -> None:
    """One snapshot writer at a time: each compares against the versions the previous one left."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE entry_versions IN EXCLUSIVE MODE")
    else:  # SQLite: the first write takes the database lock, and later reads see the newest state
        conn.exec_driver_sql("UPDATE entry_versions SET until = until WHERE 0")


def _numbered(snap: Snapshot, ids: EntityIds) -> Snapshot:
    """Entries numbered by entity; renumbered (members too) when they were built with other numbers."""
    entity_of = {e.idx: ids(identity_key(e.uuid, e.dn)) for e in snap.entries}
    if len(set(entity_of.values())) != len(entity_of):
        raise StoreError("a snapshot holds two entries with the same identity (entryUUID / objectGUID or DN)")
    if all(idx == entity for idx, entity in entity_of.items()):
        return snap
    snap.entries = [replace(e, idx=entity_of[e.idx]) for e in snap.entries]
    snap.members = {entity_of[g]: tuple(entity_of[m] for m in members) for g, members in snap.members.items()}
    return snap


def _compared(entry: Entry, members: tuple[int, ...] | None, attrs_json: dict) -> tuple:
    attrs = None
    if entry.attrs:
        key = tuple(entry.attrs.items())
        attrs = attrs_json.get(key)
        if attrs is None:
            attrs = attrs_json[key] = json.dumps(dict(entry.attrs), separators=(",", ":"))
    packed = pack(members) if members is not None else None
    return (entry.kind, entry.dn, entry.name, entry.uuid, entry.enabled, attrs, packed)


def _same(old: tuple, new: tuple) -> bool:
    kind, dn, name, uuid, enabled, attrs, members = old
    return (kind, dn, name, uuid, bool(enabled), attrs, None if members is None else bytes(members)) == new


def _row(snapshot_id: int, entry: Entry, compared: tuple) -> tuple:
    kind, dn, name, uuid, enabled, attrs, members = compared
    identity = identity_key(uuid, dn)
    norm = identity[3:] if identity.startswith("dn:") else dnutil.normalize(dn)
    return (entry.idx, snapshot_id, identity, kind, dn, norm, name, name.lower(), uuid, enabled, attrs, members)


def _insert_head(conn: Connection, snap: Snapshot, sync: dict | None) -> int:
    info = snap.info()
    return conn.execute(
        snapshots.insert().values(
            taken_at=snap.taken_at,
            source=snap.source,
            flavour=snap.flavour,
            bases=dict(snap.bases),
            users=info.users,
            grants=info.grants,
            roles=info.roles,
            memberships=info.memberships,
            sync=json.dumps(sync) if sync is not None else None,
        )
    ).inserted_primary_key[0]


def _close(conn: Connection, entities: list[int], snapshot_id: int) -> None:
    if entities:
        conn.execute(
            update(entry_versions).where(V.entity == bindparam("e"), V.until.is_(None)).values(until=snapshot_id),
            [{"e": e} for e in entities],
        )


def bulk_insert(conn: Connection, table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert many rows at driver speed: COPY on PostgreSQL, executemany on SQLite.

    Values must already be in the driver's form (JSON as text, bytes for binary).
    """
    if not rows:
        return
    raw = conn.connection.driver_connection
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        import psycopg

        try:
            with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise StoreError(f"writing {table.name}: {_first_line(exc)}") from None
    else:
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- reading ------------------------------------------------------------------------------------


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
