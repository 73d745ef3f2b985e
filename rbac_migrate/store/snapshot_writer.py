"""Writing a snapshot as rows: only the versions that changed, decided against the latest in SQL.

A reader builds the new snapshot's rows against :class:`Latest`, a light view of the latest
snapshot (identities, kinds and DNs; attributes and members only where asked for), inside the
transaction that writes them. A full read hands over every row; an incremental read hands over
the rows of the entries that changed and the entities that are gone, so its cost follows the
change, not the size of the directory.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Index, Text, and_, cast, func, select, update
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..errors import StoreError
from ..model import GRANT, ROLE, USER, Snapshot, identity_key
from .schema import entry_versions, snapshots
from .snapshots import Written, _lock, _raw, bulk_insert, pack, unpack

V = entry_versions.c
# A row as a reader builds it; the store adds the snapshot id as ``since``.
ROW_COLUMNS = (
    "entity",
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
ENTITY, IDENTITY, KIND, DN, DN_NORM, NAME, NAME_NORM, UUID, ENABLED, ATTRS, MEMBERS = range(len(ROW_COLUMNS))
CHUNK = 500  # entities per IN (...) list


@dataclass
class Head:
    """What the snapshots row says about a snapshot."""

    taken_at: datetime
    source: str
    flavour: str
    bases: dict[str, str]
    sync: dict | None


@dataclass
class Update:
    """Rows for the new snapshot, and the entities it no longer holds.

    With ``complete`` the rows are the whole snapshot: any current entity without a row is gone.
    """

    head: Head
    rows: list[tuple] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)
    complete: bool = False


@dataclass(slots=True)
class Current:
    """One entity of the latest snapshot, without its attributes and members."""

    entity: int
    identity: str
    kind: str
    dn: str
    norm: str
    enabled: bool
    uuid: str | None


class Latest:
    """The latest snapshot seen from inside the transaction that writes the next one."""

    def __init__(self, conn: Connection, light: bool = False) -> None:
        self.conn = conn
        self.snapshot_id = conn.execute(select(func.max(snapshots.c.id))).scalar()
        highest = conn.execute(select(func.max(V.entity))).scalar()
        self.next_id = 0 if highest is None else highest + 1
        self.by_identity: dict[str, int] = {}
        self.entries: dict[int, Current] = {}
        if self.snapshot_id is not None and not light:
            query = select(V.entity, V.identity, V.kind, V.dn, V.dn_norm, V.enabled, V.uuid).where(V.until.is_(None))
            for row in _raw(conn, query):
                self.entries[row[0]] = Current(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
                self.by_identity[row[1]] = row[0]

    @property
    def empty(self) -> bool:
        return self.snapshot_id is None

    def entity(self, identity: str) -> int:
        """The entity number of an identity; a new one for an identity not seen before."""
        found = self.by_identity.get(identity)
        if found is None:
            found = self.by_identity[identity] = self.next_id
            self.next_id += 1
        return found

    def rows(self, entities: Iterable[int]) -> dict[int, tuple]:
        """Current rows (reader's layout) of the given entities."""
        # Attributes as their JSON text, as written and compared (PostgreSQL would hand back a dict).
        columns = [cast(V.attrs, Text) if name == "attrs" else getattr(V, name) for name in ROW_COLUMNS]
        return {row[0]: _driver_row(row) for row in self._current(columns, entities)}

    def members(self) -> dict[int, array]:
        """Every current group's members, as packed arrays."""
        query = select(V.entity, V.members).where(V.until.is_(None), V.members.is_not(None))
        found = {}
        for entity, blob in _raw(self.conn, query):
            found[entity] = array("i", unpack(blob))
        return found

    def _current(self, columns: list, entities: Iterable[int]) -> list[tuple]:
        wanted = sorted(set(entities))
        if len(wanted) > len(self.entries) // 2:  # most of the snapshot: one scan beats many look-ups
            chosen = set(wanted)
            return [row for row in _raw(self.conn, select(*columns).where(V.until.is_(None))) if row[0] in chosen]
        out: list[tuple] = []
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            out += _raw(self.conn, select(*columns).where(V.until.is_(None), V.entity.in_(chunk)))
        return out


def _driver_row(row: tuple) -> tuple:
    """A row as read back, in the form it is written: booleans and bytes."""
    row = list(row)
    row[ENABLED] = bool(row[ENABLED])
    if row[MEMBERS] is not None:
        row[MEMBERS] = bytes(row[MEMBERS])
    return tuple(row)


COMPARED = (KIND, DN, NAME, UUID, ENABLED, ATTRS, MEMBERS)


def _differs(old: tuple | None, new: tuple) -> bool:
    return old is None or any(old[i] != new[i] for i in COMPARED)


def write(conn: Connection, build: Callable[[Latest], Update], skip_unchanged: bool = False) -> Written:
    """Lock, let ``build`` make the rows against the latest snapshot, and write what differs."""
    _lock(conn)
    latest = Latest(conn)
    found = build(latest)
    rows, closed = found.rows, set(found.closed)
    seen = {row[ENTITY] for row in rows}
    if found.complete:
        closed |= latest.entries.keys() - seen
    closed &= latest.entries.keys()
    if not latest.empty:
        current = latest.rows(seen & latest.entries.keys())
        rows = [row for row in rows if _differs(current.get(row[ENTITY]), row)]
    changed = [row[ENTITY] for row in rows if row[ENTITY] in latest.entries]
    if skip_unchanged and not rows and not closed:
        return Written(None, 0, 0, 0)
    snapshot_id = _insert_head(conn, found.head)
    _close(conn, [*changed, *closed], snapshot_id)
    _insert(conn, snapshot_id, rows, empty=latest.empty)
    _count(conn, snapshot_id)
    return Written(snapshot_id, len(rows) - len(changed), len(changed), len(closed))


def _insert_head(conn: Connection, head: Head) -> int:
    values = {"taken_at": head.taken_at, "source": head.source, "flavour": head.flavour, "bases": dict(head.bases)}
    values["sync"] = json.dumps(head.sync) if head.sync is not None else None
    counts = {"users": 0, "grants": 0, "roles": 0, "memberships": 0}  # set by _count once the rows are in
    return conn.execute(snapshots.insert().values(**values, **counts)).inserted_primary_key[0]


def _close(conn: Connection, entities: list[int], snapshot_id: int) -> None:
    ordered = sorted(entities)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        conn.execute(update(entry_versions).where(V.entity.in_(chunk), V.until.is_(None)).values(until=snapshot_id))


def _insert(conn: Connection, snapshot_id: int, rows: list[tuple], empty: bool) -> None:
    """Insert the new versions; into an empty table, build the indexes once afterwards (twice as fast)."""
    indexes: list[Index] = sorted(entry_versions.indexes, key=lambda index: index.name) if empty else []
    for index in indexes:
        index.drop(conn)
    columns = ("since", *ROW_COLUMNS)
    bulk_insert(conn, entry_versions, columns, [(snapshot_id, *row) for row in rows])
    for index in indexes:
        index.create(conn)
    if empty:  # statistics once a large snapshot lands; later ones have the same shape
        conn.exec_driver_sql("ANALYZE entry_versions")


def _count(conn: Connection, snapshot_id: int) -> None:
    """The snapshot's counts, from the versions it holds."""
    query = select(V.kind, func.count(), func.sum(func.length(V.members))).where(V.until.is_(None)).group_by(V.kind)
    counts = {kind: (number, (size or 0) // 4) for kind, number, size in conn.execute(query).all()}
    conn.execute(
        update(snapshots)
        .where(and_(snapshots.c.id == snapshot_id))
        .values(
            users=counts.get(USER, (0, 0))[0],
            grants=counts.get(GRANT, (0, 0))[0],
            roles=counts.get(ROLE, (0, 0))[0],
            memberships=sum(size for _number, size in counts.values()),
        )
    )


def make_row(entity: int, kind: str, dn: str, name: str, uuid, enabled: bool, attrs: str | None, members) -> tuple:
    """A row in the reader's layout; ``attrs`` as JSON text, ``members`` packed (None for a non-group)."""
    identity = identity_key(uuid, dn)
    norm = identity[3:] if identity.startswith("dn:") else dnutil.normalize(dn)
    return (entity, identity, kind, dn, norm, name, name.lower(), uuid, enabled, attrs, members)


def attrs_text(attrs, cache: dict) -> str | None:
    """Attributes as the JSON text the store compares; peers share values, so each set is encoded once."""
    if not attrs:
        return None
    key = tuple(attrs.items())
    found = cache.get(key)
    if found is None:
        found = cache[key] = json.dumps(dict(attrs), separators=(",", ":"))
    return found


def save(conn: Connection, snap: Snapshot, sync: dict | None, skip_unchanged: bool = False) -> Written:
    """Write a whole snapshot held in memory; its entries are renumbered by entity on the way."""
    entity_of: dict[int, int] = {}

    def build(latest: Latest) -> Update:
        entity_of.update({e.idx: latest.entity(identity_key(e.uuid, e.dn)) for e in snap.entries})
        if len(set(entity_of.values())) != len(entity_of):
            raise StoreError("a snapshot holds two entries with the same identity (entryUUID / objectGUID or DN)")
        cache: dict = {}
        rows = []
        for e in snap.entries:
            members = snap.members.get(e.idx)
            packed = pack([entity_of[m] for m in members]) if members is not None else None
            text = attrs_text(e.attrs, cache)
            rows.append(make_row(entity_of[e.idx], e.kind, e.dn, e.name, e.uuid, e.enabled, text, packed))
        head = Head(snap.taken_at, snap.source, snap.flavour, dict(snap.bases), sync)
        return Update(head, rows, complete=True)

    written = write(conn, build, skip_unchanged)
    if written.snapshot_id is not None:
        _renumber(snap, entity_of)
        snap.id = written.snapshot_id
    return written


def _renumber(snap: Snapshot, entity_of: dict[int, int]) -> None:
    if all(idx == entity for idx, entity in entity_of.items()):
        return
    snap.entries = [replace(e, idx=entity_of[e.idx]) for e in snap.entries]
    snap.members = {entity_of[g]: tuple(entity_of[m] for m in members) for g, members in snap.members.items()}
