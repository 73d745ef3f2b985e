"""The state store: the only module that talks SQL. SQLite by default, PostgreSQL for teams."""

from __future__ import annotations

import json
import os
import sys
from array import array
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Text, cast, create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .. import dn as dnutil
from ..audit import AuditRecord
from ..errors import NotFoundError, StoreError
from ..model import GROUP_KINDS, Batch, Entry, Snapshot, SnapshotInfo
from . import audit as audit_store
from . import journal, migrations
from .schema import snapshot_entries, snapshots

if TYPE_CHECKING:
    from ..model import MigrationBatch
    from .findings import FindingsStore
    from .roles import RoleStore

__all__ = ["Store", "open_store"]


def _pack(indexes: Iterable[int]) -> bytes:
    packed = array("i", indexes)
    if sys.byteorder == "big":
        packed.byteswap()  # stored little-endian so a store can move between machines
    return packed.tobytes()


def _unpack(blob: bytes | None) -> tuple[int, ...]:
    packed = array("i")
    packed.frombytes(blob or b"")
    if sys.byteorder == "big":
        packed.byteswap()
    return tuple(packed)


class Store:
    """A connection to the state store; schema migrations run when it is opened."""

    def __init__(self, engine: Engine, audit_key: bytes | None = None):
        self.engine = engine
        self.audit_key = audit_key  # signs every audit record appended through this store

    @property
    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def connect(self) -> Connection:
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.display_url}: {_reason(exc)}") from None
        conn.info[audit_store.KEY_INFO] = self.audit_key
        return conn

    def begin(self):
        """A transaction context; store errors become one-line StoreErrors."""
        return _Transaction(self)

    # -- schema -------------------------------------------------------------------------

    def upgrade(self) -> list[str]:
        """Apply pending schema migrations; return the revisions applied."""
        with self.begin() as conn:
            return migrations.upgrade(conn)

    def revision(self) -> str | None:
        with self.connect() as conn:
            return migrations.current(conn)

    # -- change journal -----------------------------------------------------------------

    def batch(self, batch_id: int) -> Batch:
        with self.connect() as conn:
            found = journal.load_batch(conn, int(batch_id))
        if found is None:
            raise NotFoundError(f"no batch {batch_id}: 'rbac-migrate batches list' shows them")
        return found

    def batches(self) -> list[Batch]:
        with self.connect() as conn:
            return journal.list_batches(conn)

    def record_plan(self, digest: str, kind: str, path: str | None, operator: str) -> None:
        """Remember a plan file this store wrote, by the digest of its bytes."""
        with self.begin() as conn:
            if journal.find_plan(conn, digest) is None:
                journal.record_plan(conn, digest, kind, path, operator)

    def plan_record(self, digest: str) -> tuple[str, int | None] | None:
        """(kind, batch that applied it) for a plan file this store wrote, else None."""
        with self.connect() as conn:
            row = journal.find_plan(conn, digest)
        return (row.kind, row.batch_id) if row is not None else None

    def unfinished_batches(self) -> list[Batch]:
        """Batches left applying or rolling back by a process that is gone."""
        return [
            b for b in self.batches() if b.status in ("running", "rolling_back") and not journal.holder_alive(b.holder)
        ]

    # -- audit log ----------------------------------------------------------------------

    def audit(self, *records: AuditRecord) -> list[AuditRecord]:
        """Append records to the hash-chained audit log, in their own transaction."""
        with self.begin() as conn:
            return audit_store.append(conn, list(records))

    def audit_records(self, since: datetime | None = None) -> list[AuditRecord]:
        with self.connect() as conn:
            return audit_store.read(conn, since)

    def audit_head(self) -> tuple[int, str] | None:
        with self.connect() as conn:
            return audit_store.head(conn)

    def audit_state(self) -> tuple[list[AuditRecord], tuple[int, str] | None, list[int]]:
        """Records, the head note and the batch ids, read in one transaction for `audit verify`."""
        with self.begin() as conn:
            return audit_store.read(conn), audit_store.head(conn), audit_store.batch_ids(conn)

    # -- reports ------------------------------------------------------------------------

    def migration_batches(self) -> list[MigrationBatch]:
        """Migrate batches from the journal, oldest first, with their users' states."""
        from . import reports  # the reports package loads only for the reports

        with self.connect() as conn:
            return reports.migration_batches(conn)

    # -- snapshots ----------------------------------------------------------------------

    def save_snapshot(self, snap: Snapshot) -> int:
        """Write a snapshot in one transaction: it exists complete, or not at all."""
        info = snap.info()
        with self.begin() as conn:
            snapshot_id = conn.execute(
                snapshots.insert().values(
                    taken_at=snap.taken_at,
                    source=snap.source,
                    flavour=snap.flavour,
                    bases=dict(snap.bases),
                    users=info.users,
                    grants=info.grants,
                    roles=info.roles,
                    memberships=info.memberships,
                )
            ).inserted_primary_key[0]
            attrs_json: dict[tuple, str] = {}  # peers share attribute values: encode each set once
            rows = [_entry_row(snapshot_id, e, snap.members.get(e.idx), attrs_json) for e in snap.entries]
            bulk_insert(conn, snapshot_entries, ENTRY_COLUMNS, rows)
            # Statistics keep look-ups by name on their index once a large snapshot lands. Later
            # snapshots have the same shape, and re-analysing a growing table would cost more each time.
            if snapshot_id <= 2:
                conn.exec_driver_sql("ANALYZE snapshot_entries")
        snap.id = snapshot_id
        return snapshot_id

    def snapshots(self) -> list[SnapshotInfo]:
        with self.connect() as conn:
            rows = conn.execute(select(snapshots).order_by(snapshots.c.id)).all()
        return [_info(row) for row in rows]

    def snapshot_info(self, ref: int | str | None = None) -> SnapshotInfo:
        """The snapshot named by id, 'latest' / None, or a negative offset (-1 = previous)."""
        listing = self.snapshots()
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

    def load_snapshot(self, ref: int | str | None = None, kinds: tuple[str, ...] | None = None) -> Snapshot:
        """Load a whole snapshot, or only entries of the given kinds plus every group."""
        info = self.snapshot_info(ref)
        with self.connect() as conn:
            head = conn.execute(select(snapshots).where(snapshots.c.id == info.id)).one()
            entries, members = _load_entries(conn, info.id, kinds)
        return Snapshot(
            taken_at=head.taken_at,
            source=head.source,
            flavour=head.flavour,
            bases=head.bases,
            entries=entries,
            members=members,
            id=info.id,
        )

    def find_entries(self, snapshot_id: int, name_or_dn: str, kinds: tuple[str, ...]) -> list[Entry]:
        """Entries of the given kinds whose name or DN matches (case-insensitively)."""
        column, key = (
            (snapshot_entries.c.dn_norm, dnutil.normalize(name_or_dn))
            if "=" in name_or_dn
            else (snapshot_entries.c.name_norm, name_or_dn.strip().lower())
        )
        query = select(snapshot_entries).where(
            snapshot_entries.c.snapshot_id == snapshot_id,
            column == key,
            snapshot_entries.c.kind.in_(kinds),
        )
        with self.connect() as conn:
            return [_entry(row) for row in conn.execute(query).all()]

    # -- roles --------------------------------------------------------------------------

    @property
    def findings(self) -> FindingsStore:
        """Accepted exceptions and the findings register."""
        from .findings import FindingsStore

        return FindingsStore(self)

    @property
    def roles(self) -> RoleStore:
        """The role catalogue: definitions, their history, and rollback points of role commands."""
        from .roles import RoleStore

        return RoleStore(self)

    def not_users_and_disabled(self, snapshot_id: int) -> tuple[frozenset[int], frozenset[int]]:
        """Indexes of a snapshot's external and dangling entries, and of its disabled users."""
        from .roles import not_users_and_disabled

        with self.connect() as conn:
            return not_users_and_disabled(conn, snapshot_id)

    def find_peers(self, snapshot_id: int, attrs: Mapping[str, str]) -> list[int]:
        """Indexes of the enabled users of a snapshot whose peer attributes are exactly ``attrs``."""
        from .roles import find_peers

        with self.connect() as conn:
            return find_peers(conn, snapshot_id, attrs)


class _Transaction:
    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> Connection:
        self.conn = self.store.connect()
        self.trans = self.conn.begin()
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.trans.commit()
            else:
                self.trans.rollback()
        except SQLAlchemyError as error:
            raise StoreError(f"store {self.store.display_url}: {_reason(error)}") from None
        finally:
            self.conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise StoreError(f"store {self.store.display_url}: {_reason(exc)}") from None
        return False


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


ENTRY_COLUMNS = (
    "snapshot_id",
    "idx",
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


def _entry_row(snapshot_id: int, entry: Entry, members: tuple[int, ...] | None, attrs_json: dict) -> tuple:
    attrs = None
    if entry.attrs:
        key = tuple(entry.attrs.items())
        attrs = attrs_json.get(key)
        if attrs is None:
            attrs = attrs_json[key] = json.dumps(dict(entry.attrs), separators=(",", ":"))
    return (
        snapshot_id,
        entry.idx,
        entry.kind,
        entry.dn,
        dnutil.normalize(entry.dn),
        entry.name,
        entry.name.lower(),
        entry.uuid,
        entry.enabled,
        attrs,
        _pack(members) if members is not None else None,
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
            raise StoreError(f"writing {table.name}: {_reason(exc)}") from None
    else:
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)


# Straight from the driver, attributes as text: building 100,000 entries through SQLAlchemy rows
# and decoding each user's JSON costs several times as long as reading the rows.
ENTRY_READ_COLUMNS = (
    snapshot_entries.c.idx,
    snapshot_entries.c.kind,
    snapshot_entries.c.dn,
    snapshot_entries.c.name,
    snapshot_entries.c.uuid,
    snapshot_entries.c.enabled,
    cast(snapshot_entries.c.attrs, Text),
    snapshot_entries.c.members,
)


def _load_entries(
    conn: Connection, snapshot_id: int, kinds: tuple[str, ...] | None
) -> tuple[list[Entry], dict[int, tuple[int, ...]]]:
    """A snapshot's entries in idx order, and each group's members; peers share one attribute mapping."""
    query = select(*ENTRY_READ_COLUMNS).where(snapshot_entries.c.snapshot_id == int(snapshot_id))
    if kinds is not None:
        query = query.where(snapshot_entries.c.kind.in_(sorted(set(kinds) | set(GROUP_KINDS))))
    # Only an integer and fixed kind names are bound, so inlining them spares each driver's parameter style.
    sql = str(
        query.order_by(snapshot_entries.c.idx).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    )
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    decoded: dict[str | None, dict] = {None: {}}
    entries, members = [], {}
    for idx, kind, dn, name, uuid, enabled, attrs, packed in rows:
        found = decoded.get(attrs)
        if found is None:
            found = decoded[attrs] = json.loads(attrs) or {}
        entries.append(Entry(idx, kind, dn, name, uuid, bool(enabled), found))
        if kind in GROUP_KINDS:
            members[idx] = _unpack(packed)
    return entries, members


def _entry(row) -> Entry:
    attrs = row.attrs
    if isinstance(attrs, str):  # some drivers hand JSON back as text
        attrs = json.loads(attrs)
    return Entry(
        idx=row.idx,
        kind=row.kind,
        dn=row.dn,
        name=row.name,
        uuid=row.uuid,
        enabled=bool(row.enabled),
        attrs=attrs or {},
    )


def _info(row) -> SnapshotInfo:
    return SnapshotInfo(
        id=row.id,
        taken_at=row.taken_at,
        source=row.source,
        users=row.users,
        grants=row.grants,
        roles=row.roles,
        memberships=row.memberships,
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while a batch writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _create_owner_only(path: Path) -> None:
    """Create a new SQLite file readable by its owner only; SQLite gives its WAL files the same mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        pass


def open_store(url: str, upgrade: bool = True) -> Store:
    """Open (and by default migrate) the store at a SQLAlchemy URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"store URL '{url}' is not valid: expected sqlite:///FILE or postgresql+psycopg://…") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _create_owner_only(Path(parsed.database).expanduser())
        except OSError as exc:
            raise StoreError(f"cannot open store {url}: {exc.strerror}: {folder}") from None
    try:
        engine = create_engine(parsed, future=True)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise StoreError(f"cannot open store {parsed.render_as_string(hide_password=True)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    if upgrade:
        store.upgrade()
    return store
