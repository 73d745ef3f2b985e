"""Writing a snapshot as rows: only the versions that changed, decided against the latest in SQL.

A reader builds the new snapshot's rows against :class:`Latest`, a light view of the latest
snapshot (identities, kinds and DNs; attributes and members only where asked for), inside the
transaction that writes them. A full read hands over every row; an incremental read hands over
the rows of the entries that changed and the entities that are gone, so its cost follows the
change, not the size of the directory.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from .. import dn as dnutil
from ..errors import StoreError
from ..kinds import GRANT, ROLE, USER, identity_key
from .driver import Db
from .packing import Written, pack, unpacked

if TYPE_CHECKING:
    from ..model import Snapshot

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
    (Into an empty store, the rows already handed to the writer thread of ``Latest.write_early``
    are not among them.)
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


CURRENT_COLUMNS = "entity, identity, kind, dn, dn_norm, enabled, uuid"
FEW_HELD = 16  # entities the database looks for in the packed members themselves (see Latest.holders)
CURRENT = "FROM entry_versions WHERE until IS NULL"


class Latest:
    """The latest snapshot seen from inside the transaction that writes the next one.

    Only what a reader asks for is read: every identity for a full read (:meth:`load_all`), the
    few entries an incremental read meets for that one, so its cost follows the change.
    """

    def __init__(self, db: Db, ahead: NamesAhead | None = None) -> None:
        self.db = db
        self.ahead = ahead  # the current DNs, being read on a thread
        self.snapshot_id = db.scalar("SELECT max(id) FROM snapshots")
        highest = db.scalar("SELECT max(entity) FROM entry_versions")
        self.next_id = 0 if highest is None else highest + 1
        self.by_identity: dict[str, int] = {}
        self.entries: dict[int, Current] = {}  # the current entries looked at so far
        self.absent: set[str] = set()  # identities looked up and not found
        self.read: dict[int, tuple] = {}  # whole current rows read so far
        self.complete = False
        self.early: _Early | None = None

    @property
    def empty(self) -> bool:
        return self.snapshot_id is None

    @property
    def _by_kind(self) -> str:
        """Current versions, to be narrowed by kind. SQLite's statistics cannot tell how few
        versions are current out of many, so it is told which index narrows best."""
        return (
            CURRENT if self.db.postgres else "FROM entry_versions INDEXED BY ix_entry_versions_kind WHERE until IS NULL"
        )

    def _take(self, rows: list[tuple]) -> list[Current]:
        found = []
        for row in rows:
            cur = self.entries.get(row[0])
            if cur is None:
                cur = self.entries[row[0]] = Current(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
                self.by_identity[row[1]] = row[0]
            found.append(cur)
        return found

    def write_early(self, head: Head) -> _Early | None:
        """Into an empty store, a writer for the snapshot's first rows as they are read, whose
        indexes are then built on a thread; None where that cannot be done. Until ``write`` takes
        over, the reader must not ask this object anything that reads the store."""
        if not (self.empty and self.db.threads and self.early is None):
            return None
        self.early = _Early(self.db, head)
        return self.early

    def load_all(self) -> None:
        """Every current entry, for a full read."""
        if not self.empty and not self.complete:
            self._take(self.db.rows(f"SELECT {CURRENT_COLUMNS} {CURRENT}"))
        self.complete = True

    def lookup(self, identities: Iterable[str]) -> None:
        """Read the current entries of these identities, so :meth:`entity` knows them."""
        wanted = {i for i in identities if i not in self.by_identity and i not in self.absent}
        if wanted and not self.empty and not self.complete:
            found = self._take(
                self.db.rows_in(f"SELECT {CURRENT_COLUMNS} {CURRENT} AND identity IN ({{marks}})", wanted)
            )
            self.absent |= wanted - {c.identity for c in found}

    def current(self, entities: Iterable[int]) -> dict[int, Current]:
        """The current entries among these entities."""
        wanted = set(entities)
        unknown = wanted - self.entries.keys()
        if unknown and not self.complete:
            self._take(self.db.rows_in(f"SELECT {CURRENT_COLUMNS} {CURRENT} AND entity IN ({{marks}})", unknown))
        return {e: self.entries[e] for e in wanted if e in self.entries}

    def of_kinds(self, kinds: Iterable[str], norms: Iterable[str] | None = None) -> list[Current]:
        """Current entries of these kinds (only those with one of ``norms`` as DN, when given)."""
        if self.complete:
            chosen = None if norms is None else set(norms)
            return [c for c in self.entries.values() if c.kind in kinds and (chosen is None or c.norm in chosen)]
        if norms is None:
            marks = ", ".join("?" * len(tuple(kinds)))
            query = f"SELECT {CURRENT_COLUMNS} {self._by_kind} AND kind IN ({marks})"
            return self._take(self.db.rows(query, tuple(kinds)))
        found = self._take(self.db.rows_in(f"SELECT {CURRENT_COLUMNS} {CURRENT} AND dn_norm IN ({{marks}})", norms))
        return [c for c in found if c.kind in kinds]

    def entity(self, identity: str) -> int:
        """The entity number of an identity; a new one for an identity not seen before."""
        found = self.by_identity.get(identity)
        if found is None and not self.complete:
            self.lookup((identity,))
            found = self.by_identity.get(identity)
        if found is None:
            found = self.by_identity[identity] = self.next_id
            self.next_id += 1
        return found

    def rows(self, entities: Iterable[int]) -> dict[int, tuple]:
        """Current rows (reader's layout) of the given entities; each is read once."""
        # Attributes as their JSON text, as written and compared (PostgreSQL would hand back a dict).
        columns = ", ".join("CAST(attrs AS TEXT)" if name == "attrs" else name for name in ROW_COLUMNS)
        wanted = set(entities)
        missing = wanted - self.read.keys()
        if len(missing) > max(len(self.entries), 1) // 2 and self.complete:  # most of it: one scan
            found = [row for row in self.db.rows(f"SELECT {columns} {CURRENT}") if row[0] in missing]
        else:
            found = self.db.rows_in(f"SELECT {columns} {CURRENT} AND entity IN ({{marks}})", missing)
        self.read.update((row[0], _driver_row(row)) for row in found)
        return {e: self.read[e] for e in wanted if e in self.read}

    def holders(self, entities: Iterable[int]) -> dict[int, array]:
        """The current groups holding any of these entities, with their members.

        For a few entities the database looks for each one's four bytes in the packed members, so
        only the groups holding one are read (bytes found astride two numbers are told apart
        here); for more, every group is read.
        """
        wanted = set(entities)
        if not wanted:
            return {}
        query = f"SELECT entity, members {CURRENT} AND members IS NOT NULL"
        if len(wanted) <= FEW_HELD:
            search = "position(? in members) > 0" if self.db.postgres else "instr(members, ?) > 0"
            found = self.db.rows(f"{query} AND ({' OR '.join([search] * len(wanted))})", [pack([e]) for e in wanted])
        else:
            found = self.db.rows(query)
        held = {}
        for group, blob in found:
            members = unpacked(blob)
            if not wanted.isdisjoint(members):
                held[group] = members
        return held

    def names(self, skip: set[int]) -> Names:
        """{DN as UTF-8: entity} of every current entry but ``skip``: what member values resolve to."""
        found = self.ahead.names() if self.ahead is not None else current_names(self.db)
        if skip:
            for dn, entity in self.db.rows_in(f"SELECT dn, entity {CURRENT} AND entity IN ({{marks}})", skip):
                key = dn.encode()
                if found.get(key) == entity:
                    del found[key]
        return found


class Names(dict):
    """{member value: entity}, giving None for a value not known (yet) rather than raising."""

    def __missing__(self, _value: bytes) -> None:
        return None


def current_names(db: Db) -> Names:
    """{DN as UTF-8: entity} of every current entry.

    A hundred thousand rows cost more as Python row objects than the database spends finding
    them, so the database joins the DNs into one text and the entities into another (digits and
    commas; on PostgreSQL 4-byte numbers, which need no parsing), and Python splits both. Both
    aggregates step through the same rows in the same order. Should a DN hold the separator, the
    pieces outnumber the rows and the rows are read one by one.
    """
    if db.postgres:  # the entities as 4-byte big-endian numbers: no text to parse
        joined = f"SELECT count(*), string_agg(dn, E'\\n'), string_agg(int4send(entity), '') {CURRENT}"
    else:  # the index covers the query
        index = "FROM entry_versions INDEXED BY ix_entry_versions_current_names WHERE until IS NULL"
        joined = f"SELECT count(*), CAST(group_concat(dn, char(10)) AS BLOB), group_concat(entity) {index}"
    count, dns, entities = db.rows(joined)[0]
    if not count:
        return Names()
    pieces = (dns.encode() if isinstance(dns, str) else dns).split(b"\n")
    if len(pieces) != count:
        return Names((dn.encode(), entity) for dn, entity in db.rows(f"SELECT dn, entity {CURRENT}"))
    if db.postgres:
        numbers = array("i")
        numbers.frombytes(entities)
        if sys.byteorder == "little":
            numbers.byteswap()
        numbers = numbers.tolist()  # the mapping is made faster from a list than from an array
    else:
        numbers = json.loads(f"[{entities}]")
    return Names(zip(pieces, numbers, strict=True))


class NamesAhead:
    """The latest snapshot's DNs read on a thread, under the snapshot writer's lock, while the
    directory is still being read.

    An incremental snapshot that meets a changed group resolves its member values against every
    current DN. PostgreSQL finds them in its own process, and psycopg2 lets Python's lock go while
    it waits, so that wait, and the mapping made from the reply, overlap with the directory's
    replies instead of following them. The connection is the thread's until :meth:`names` (or
    :meth:`wait`) returns.
    """

    def __init__(self, db: Db) -> None:
        import threading

        self.db = db
        self.found: Names | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="names-ahead", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            _lock(self.db)
            self.found = current_names(self.db)
        except BaseException as exc:  # raised again by whoever asks for the names
            self.error = exc

    def wait(self) -> None:
        """Wait for the thread: the connection is the caller's again; raises what the thread met."""
        self.thread.join()
        if self.error is not None:
            raise self.error

    def names(self) -> Names:
        """The mapping the thread made; the caller's to change."""
        self.wait()
        return self.found


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


def _lock(db: Db) -> None:
    """One snapshot writer at a time: each compares against the versions the previous one left."""
    if db.postgres:
        db.run("LOCK TABLE entry_versions IN EXCLUSIVE MODE")
    else:  # SQLite: the first write takes the database lock, and later reads see the newest state
        db.run("UPDATE entry_versions SET until = until WHERE 0")


def write(
    db: Db, build: Callable[[Latest], Update], skip_unchanged: bool = False, ahead: NamesAhead | None = None
) -> Written:
    """Lock, let ``build`` make the rows against the latest snapshot, and write what differs.
    ``ahead``, started on ``db`` in this transaction, has taken the lock and is reading the DNs."""
    if ahead is not None:
        ahead.wait()
    _lock(db)
    latest = Latest(db, ahead)
    try:
        found = build(latest)
    except BaseException:
        if latest.early is not None:
            latest.early.join(quiet=True)  # the connection free again before the caller rolls back
        raise
    early = latest.early
    if early is not None:  # a first snapshot: ``found`` holds the rows not handed to the writer thread
        early.join()  # the connection is the reader's again; raises what the thread met
        _insert(db, early.snapshot_id, found.rows, empty=False)
        _analyze(db)
        _count(db, early.snapshot_id, None, found.rows, also=early.kinds)
        return Written(early.snapshot_id, early.count + len(found.rows), 0, 0)
    rows, closed = found.rows, set(found.closed)
    seen = {row[ENTITY] for row in rows}
    if found.complete:
        latest.load_all()
        closed |= latest.entries.keys() - seen
    closed &= latest.entries.keys()
    existing = latest.current(seen & latest.entries.keys()) if not latest.empty else {}
    current = latest.rows(existing.keys() | closed) if existing or closed else {}
    if existing:
        rows = [row for row in rows if _differs(current.get(row[ENTITY]), row)]
    changed = [row[ENTITY] for row in rows if row[ENTITY] in existing]
    if skip_unchanged and not rows and not closed:
        return Written(None, 0, 0, 0)
    snapshot_id = _insert_head(db, found.head)
    ended = sorted({*changed, *closed})
    db.run_in("UPDATE entry_versions SET until = ? WHERE until IS NULL AND entity IN ({marks})", ended, (snapshot_id,))
    _insert(db, snapshot_id, rows, empty=latest.empty)
    if latest.empty:
        _analyze(db)
    if found.complete:
        _count(db, snapshot_id, None, found.rows)
    else:  # the versions this snapshot ended, as they were
        _count(db, snapshot_id, latest.snapshot_id, rows, [current[e] for e in ended])
    return Written(snapshot_id, len(rows) - len(changed), len(changed), len(closed))


class _Early:
    """A first snapshot written as it is read: users inserted, then indexed, on a thread while the
    reader goes on reading.

    SQLite steps (many rows per statement) and index builds, and PostgreSQL's work in its own
    process, run without Python's lock, so they overlap with reading. The reader hands over chunks
    of rows with ``add`` and says ``done`` after the last one; the thread then builds the indexes.
    """

    def __init__(self, db: Db, head: Head) -> None:
        import queue
        import threading

        self.db = db
        self.snapshot_id = _insert_head(db, head)
        self.indexes = _drop_indexes(db)
        self.kinds: Counter = Counter()  # the rows handed over, by kind
        self.error: BaseException | None = None
        self.chunks: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self.thread.start()

    def add(self, rows: list[tuple]) -> None:
        """Rows to insert; the thread owns them from now on."""
        if rows:
            self.kinds.update(map(itemgetter(KIND), rows))
            self.chunks.put(rows)

    @property
    def count(self) -> int:
        """Rows handed over so far."""
        return self.kinds.total()

    def done(self) -> None:
        self.chunks.put(None)

    def _run(self) -> None:
        try:
            while (rows := self.chunks.get()) is not None:
                self.db.insert("entry_versions", ROW_COLUMNS, rows, constants={"since": self.snapshot_id})
            for _name, definition in self.indexes:
                self.db.run(definition)
        except BaseException as exc:  # handed to the reader's thread by join()
            self.error = exc
            while self.chunks.get() is not None:  # let the reader hand over the rest
                pass

    def join(self, quiet: bool = False) -> None:
        """Wait for the thread (telling it the rows are done, if the reader did not); raise what it
        met, unless ``quiet`` (the reader is already failing for its own reason)."""
        self.done()
        self.thread.join()
        if self.error is not None and not quiet:
            raise self.error


def _insert_head(db: Db, head: Head) -> int:
    sync = json.dumps(head.sync) if head.sync is not None else None
    names = "taken_at, source, flavour, bases, sync, users, grants, roles, memberships"
    bases = "CAST(? AS JSON)" if db.postgres else "?"
    return db.insert_returning_id(
        f"INSERT INTO snapshots ({names}) VALUES (?, ?, ?, {bases}, ?, 0, 0, 0, 0)",
        (db.stamp(head.taken_at), head.source, head.flavour, json.dumps(dict(head.bases)), sync),
    )


def _insert(db: Db, snapshot_id: int, rows: list[tuple], empty: bool) -> None:
    """Insert the new versions; into an empty table, build the indexes once afterwards (twice as fast)."""
    indexes = _drop_indexes(db) if empty else []
    db.insert("entry_versions", ROW_COLUMNS, rows, constants={"since": snapshot_id})
    for _name, definition in indexes:
        db.run(definition)


def _drop_indexes(db: Db) -> list[tuple[str, str]]:
    """Drop the secondary indexes of the versions; their definitions, to build them again."""
    indexes = db.index_definitions("entry_versions")
    for name, _definition in indexes:
        db.run(f"DROP INDEX {name}")
    return indexes


def _analyze(db: Db) -> None:
    """Statistics once a large first snapshot lands; later ones have the same shape."""
    # A small sample is enough for the planner: the versions of one directory look alike.
    if db.postgres:
        db.run("SET LOCAL default_statistics_target = 10")  # 3,000 rows sampled, not 30,000
    else:
        db.run("PRAGMA analysis_limit=1000")  # not a scan of every index
    db.run("ANALYZE entry_versions")


def _count(
    db: Db,
    snapshot_id: int,
    previous: int | None,
    rows: list[tuple],
    ended: Iterable[tuple] = (),
    also: Counter | None = None,
) -> None:
    """The snapshot's counts: of ``rows`` (and ``also``, entries by kind counted already, none of
    them groups) when they are the whole snapshot (``previous`` None); otherwise the previous
    snapshot's, less the versions it ``ended``, plus the ``rows`` it added."""
    totals: Counter = Counter(also or {})
    memberships = 0
    if previous is not None:
        users, grants, roles, memberships = db.rows(
            "SELECT users, grants, roles, memberships FROM snapshots WHERE id = ?", (previous,)
        )[0]
        totals.update({USER: users, GRANT: grants, ROLE: roles})
    for sign, some in ((-1, list(ended)), (1, rows)):
        for kind, number in Counter(map(itemgetter(KIND), some)).items():  # C loops: a first snapshot
            totals[kind] += sign * number  # has 100,000 rows
        memberships += sign * (sum(map(len, filter(None, map(itemgetter(MEMBERS), some)))) // 4)
    db.run(
        "UPDATE snapshots SET users = ?, grants = ?, roles = ?, memberships = ? WHERE id = ?",
        (totals[USER], totals[GRANT], totals[ROLE], memberships, snapshot_id),
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


def save(db: Db, snap: Snapshot, sync: dict | None, skip_unchanged: bool = False) -> Written:
    """Write a whole snapshot held in memory; its entries are renumbered by entity on the way."""
    entity_of: dict[int, int] = {}

    def build(latest: Latest) -> Update:
        latest.load_all()
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

    written = write(db, build, skip_unchanged)
    if written.snapshot_id is not None:
        _renumber(snap, entity_of)
        snap.id = written.snapshot_id
    return written


def _renumber(snap: Snapshot, entity_of: dict[int, int]) -> None:
    if all(idx == entity for idx, entity in entity_of.items()):
        return
    snap.entries = [replace(e, idx=entity_of[e.idx]) for e in snap.entries]
    snap.members = {entity_of[g]: tuple(entity_of[m] for m in members) for g, members in snap.members.items()}
