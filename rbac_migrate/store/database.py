"""The store every command opens, through SQLAlchemy; schema migrations run when it is opened."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..audit import AuditRecord
from ..errors import NotFoundError, StoreError
from ..kinds import pick_snapshot
from ..model import Batch, Entry, Snapshot, SnapshotInfo
from . import audit as audit_store
from . import journal, lean, migrations
from . import snapshots as snapshot_store
from .driver import closed, driver_of, first_line, latest_sync_state, opened, sqlite_pragmas
from .packing import Written
from .schema import snapshots

if TYPE_CHECKING:
    from ..model import MigrationBatch
    from .findings import FindingsStore
    from .roles import RoleStore

__all__ = ["Store", "open_store"]


class Store:
    """A connection to the state store; schema migrations run when it is opened."""

    def __init__(self, engine: Engine, audit_key: bytes | None = None, display_url: str | None = None):
        self.engine = engine
        self.audit_key = audit_key  # signs every audit record appended through this store
        self.last_written: Written | None = None
        # The URL as the user gave it, password hidden (the engine's may name the driver it chose).
        self.display_url = display_url or engine.url.render_as_string(hide_password=True)
        # The engine's pooled connections close with the store: nothing else would close them
        # before a command line leaves without Python's teardown (see close_open_stores).
        weakref.finalize(self, engine.dispose)
        opened(self)

    def close(self) -> None:
        """Close the connections the engine keeps; the store opens new ones if used again."""
        self.engine.dispose()
        closed(self)

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

    def audit_in(self, conn: Connection, *records: AuditRecord) -> list[AuditRecord]:
        """Append records inside the caller's transaction: they commit with it, or not at all."""
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

    def save_snapshot(self, snap: Snapshot, sync: dict | None = None, skip_unchanged: bool = False) -> int | None:
        """Write a snapshot in one transaction: it exists complete, or not at all.

        Only entries that differ from the latest snapshot are written. With ``skip_unchanged`` a
        snapshot identical to the latest is not written and None is returned.
        """
        from . import snapshot_writer

        with self.begin() as conn:
            written = snapshot_writer.save(driver_of(conn), snap, sync, skip_unchanged)
        self.last_written = written
        return written.snapshot_id

    def begin_refresh(self) -> dict | None | bool:
        """The latest snapshot's sync state, what the next incremental read resumes from (None where
        it recorded none, False where there is no snapshot yet). A snapshot written through
        SQLAlchemy reads the rest of the store when it writes (``DriverStore.begin_refresh`` starts
        early)."""
        with self.connect() as conn:
            return latest_sync_state(driver_of(conn))

    def write_snapshot(self, build, skip_unchanged: bool = False, preview: bool = False):
        """Write the rows ``build`` makes against the latest snapshot, in one transaction.

        ``build`` receives a :class:`snapshot_writer.Latest` and returns a
        :class:`snapshot_writer.Update`. With ``preview`` the snapshot is loaded and the
        transaction rolled back: (Written, Snapshot); otherwise (Written, None).
        """
        from . import snapshot_writer

        conn = self.connect()
        try:
            trans = conn.begin()
            try:
                written = snapshot_writer.write(driver_of(conn), build, skip_unchanged)
                loaded = None
                if preview and written.snapshot_id is not None:
                    loaded = self._load(conn, written.snapshot_id, None)
            except BaseException:
                trans.rollback()
                raise
            trans.rollback() if preview else trans.commit()
        except (SQLAlchemyError, conn.dialect.dbapi.Error) as exc:
            raise StoreError(f"store {self.display_url}: {_reason(exc)}") from None
        finally:
            conn.close()
        if not preview:
            self.last_written = written
        return written, loaded

    def prune_snapshots(
        self, keep: int | None = None, older_than: datetime | None = None, points: Mapping[int, Mapping] | None = None
    ) -> list[int]:
        """Remove old snapshots (never the latest) and the versions only they held; return their ids.
        ``points``: what reports keep of each snapshot removed, by id (see ``kept_points``)."""
        with self.begin() as conn:
            return snapshot_store.prune(conn, keep, older_than, points)

    def kept_points(self) -> list[tuple[SnapshotInfo, dict, dict]]:
        """What reports kept of pruned snapshots, oldest first: (listing line, progress, findings)."""
        with self.connect() as conn:
            return snapshot_store.kept_points(conn)

    def snapshots(self) -> list[SnapshotInfo]:
        with self.connect() as conn:
            rows = conn.execute(select(snapshots).order_by(snapshots.c.id)).all()
        return [_info(row) for row in rows]

    def snapshot_info(self, ref: int | str | None = None) -> SnapshotInfo:
        """The snapshot named by id, 'latest' / None, or a negative offset (-1 = previous)."""
        return pick_snapshot(self.snapshots(), ref)

    def load_snapshot(self, ref: int | str | None = None, kinds: tuple[str, ...] | None = None) -> Snapshot:
        """Load a whole snapshot, or only entries of the given kinds plus every group."""
        info = self.snapshot_info(ref)
        with self.connect() as conn:
            return self._load(conn, info.id, kinds)

    def _load(self, conn: Connection, snapshot_id: int, kinds: tuple[str, ...] | None) -> Snapshot:
        return lean.load(driver_of(conn), snapshot_id, kinds)

    def find_entries(self, snapshot_id: int, name_or_dn: str, kinds: tuple[str, ...]) -> list[Entry]:
        """Entries of the given kinds whose name or DN matches (case-insensitively)."""
        with self.connect() as conn:
            return lean.find_entries(driver_of(conn), snapshot_id, name_or_dn, tuple(kinds))

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
        with self.connect() as conn:
            return lean.not_users_and_disabled(driver_of(conn), snapshot_id)

    def find_peers(self, snapshot_id: int, attrs: Mapping[str, str]) -> list[int]:
        """Indexes of the enabled users of a snapshot whose peer attributes are exactly ``attrs``."""
        with self.connect() as conn:
            return lean.find_peers(driver_of(conn), snapshot_id, attrs)


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
        if isinstance(exc, (SQLAlchemyError, self.conn.dialect.dbapi.Error)):  # the driver's own, from raw SQL
            raise StoreError(f"store {self.store.display_url}: {_reason(exc)}") from None
        return False


def _reason(exc: Exception) -> str:
    return first_line(getattr(exc, "orig", None) or exc)


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
    sqlite_pragmas(dbapi_connection)


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
        raise StoreError(f"store URL '{url}' is not valid: expected sqlite:///FILE or postgresql://…") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.drivername in ("postgresql", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg2")  # as the driver-only path opens it
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
        raise StoreError(f"cannot open store {shown}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine, display_url=shown)
    if upgrade:
        store.upgrade()
    return store
