"""The store's database driver used directly: SQL at driver speed, and no SQLAlchemy to import.

Snapshots move hundreds of thousands of rows, and a refresh must start in well under a second,
so the snapshot writer speaks plain SQL through the DB-API connection: sqlite3 for SQLite,
psycopg2 for PostgreSQL. It is handed either a connection SQLAlchemy opened (inside that
connection's transaction) or one ``open_driver`` opened from the store URL alone.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import StoreError

CHUNK = 500  # values per IN (...) list
COPY_BUFFER = 1 << 20  # bytes handed to PostgreSQL's COPY at a time
MAX_VARIABLES = 900  # parameters per SQLite statement: below the 999 of SQLite before 3.32
# The PostgreSQL URLs the store takes, all opened with psycopg2: it imports in a fifth of the time
# psycopg 3 takes, which is most of what a refresh before each plan costs. "+psycopg" is the
# spelling earlier versions documented.
POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://")
HEAD = "0010_history_points"  # the schema revision this code writes; store.migrations checks it against Alembic


class Db:
    """A DB-API connection with its dialect ("sqlite" or "postgresql"). SQL is written with ``?``."""

    def __init__(self, raw, dialect: str, error: type[Exception] = Exception):
        self.raw = raw
        self.dialect = dialect
        self.postgres = dialect == "postgresql"
        self.error = error  # the driver's base error class
        self.threads = False  # may a second thread use the connection while the first waits?

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    @contextmanager
    def _executed(self, sql: str, params: Sequence) -> Iterator:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            yield cursor
        finally:
            cursor.close()

    def insert_returning_id(self, sql: str, params: Sequence = ()) -> int:
        """Run one INSERT into a table with an ``id`` key; the id it was given."""
        if self.postgres:
            return self.scalar(f"{sql} RETURNING id", params)
        with self._executed(sql, params) as cursor:
            return cursor.lastrowid

    def stamp(self, moment):
        """An aware datetime as a parameter, stored as SQLAlchemy's UTC column type stores it
        (naive UTC text to the microsecond on SQLite), so both kinds of store read it back alike."""
        from datetime import timezone

        moment = moment.astimezone(timezone.utc)
        return moment if self.postgres else moment.replace(tzinfo=None).isoformat(" ", "microseconds")

    def rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._executed(sql, params) as cursor:
            return cursor.fetchall()

    def mapping(self, sql: str, params: Sequence = ()) -> dict:
        """{first column: second column} of the rows, fetched at once."""
        with self._executed(sql, params) as cursor:
            return dict(cursor.fetchall())

    def scalar(self, sql: str, params: Sequence = ()):
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def run(self, sql: str, params: Sequence = ()) -> None:
        with self._executed(sql, params):
            pass

    def rows_in(self, sql: str, values: Iterable, params: Sequence = ()) -> list[tuple]:
        """``sql`` with ``{marks}`` standing for an IN list, run over ``values`` a chunk at a time."""
        return [row for query, chunk in _chunked(sql, values) for row in self.rows(query, [*params, *chunk])]

    def run_in(self, sql: str, values: Iterable, params: Sequence = ()) -> None:
        for query, chunk in _chunked(sql, values):
            self.run(query, [*params, *chunk])

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple], constants: dict | None = None) -> None:
        """Insert many rows: COPY on PostgreSQL, executemany on SQLite. Values in the driver's form;
        ``constants`` (integers) are the same in every row, so no row is built again to hold them."""
        if not rows:
            return
        constants = constants or {}
        if self.postgres:
            from io import BytesIO

            from .pgcopy import copy_text

            names = ", ".join([*constants, *columns])
            with self.raw.cursor() as cursor:
                text = BytesIO(copy_text(rows, tuple(constants.values())))
                cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN", text, size=COPY_BUFFER)
            return
        names = ", ".join([*constants, *columns])
        one = "(" + ", ".join([*(str(int(value)) for value in constants.values()), *("?" * len(columns))]) + ")"
        # Many rows per statement: fewer steps, and Python's lock is let go for each whole group of rows.
        per = max(1, MAX_VARIABLES // len(columns))
        whole = len(rows) - len(rows) % per
        if whole:
            statement = f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * per)}"
            groups = (list(chain.from_iterable(rows[i : i + per])) for i in range(0, whole, per))
            self.raw.executemany(statement, groups)
        if whole < len(rows):
            rest = rows[whole:]
            self.raw.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(rest))}", list(chain.from_iterable(rest))
            )

    def index_definitions(self, table: str) -> list[tuple[str, str]]:
        """(name, CREATE INDEX statement) of a table's secondary indexes, as the database holds them."""
        if self.postgres:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ?"
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
        return sorted(row for row in self.rows(query, (table,)) if row[0].startswith("ix_"))


def _chunked(sql: str, values: Iterable) -> Iterator[tuple[str, list]]:
    """(``sql`` with its ``{marks}`` filled, the values) for each chunk of the distinct ``values``."""
    ordered = sorted(set(values))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        yield sql.format(marks=", ".join("?" * len(chunk))), chunk


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL; None for memory databases and other URLs."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///") :]
    if not path or path == ":memory:" or path.startswith("~"):  # where SQLAlchemy's reading may differ
        return None
    return Path(path)


def sqlite_pragmas(raw) -> None:
    """WAL lets readers work while a batch writes; foreign keys are off by default in SQLite."""
    cursor = raw.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def driver_of(conn) -> Db:
    """The DB-API connection under a SQLAlchemy one, inside its transaction."""
    return Db(conn.connection.driver_connection, conn.dialect.name, conn.dialect.dbapi.Error)


def open_driver(url: str) -> Db | None:
    """The store at ``url`` through its driver alone, when it exists with the current schema.

    None for anything else (a new or older store, an unusual URL): the caller then opens the
    store through SQLAlchemy, which creates or upgrades it and explains any error.
    """
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            return None
        import sqlite3

        try:
            # Transactions begun and ended explicitly; a snapshot's writer thread takes turns with the reader.
            raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(raw)
        except sqlite3.Error:
            return None
        db = Db(raw, "sqlite", sqlite3.Error)
    elif url.startswith(POSTGRES_SCHEMES):
        db = _postgres(url)
        if db is None:
            return None
    else:
        return None
    try:
        current = db.scalar("SELECT version_num FROM alembic_version")
    except db.error:  # no such table, or no access: SQLAlchemy's path explains
        current = None
    if current != HEAD:
        db.raw.close()
        return None
    db.threads = True
    return db


def _postgres(url: str) -> Db | None:
    try:
        psycopg2 = _import_psycopg2()
    except ImportError:
        return None
    parts = urlsplit(url)
    options = {"dbname": unquote(parts.path.lstrip("/")) or None, "user": unquote(parts.username or "") or None}
    options["password"] = unquote(parts.password) if parts.password else os.environ.get("PGPASSWORD")
    options["host"], options["port"] = parts.hostname, parts.port
    for pair in parts.query.split("&") if parts.query else []:  # libpq parameters; libpq refuses others
        key, _, value = pair.partition("=")
        options[key] = unquote(value)
    try:
        raw = psycopg2.connect(**{k: v for k, v in options.items() if v is not None})
    except psycopg2.Error:
        return None
    return Db(raw, "postgresql", psycopg2.Error)


def _import_psycopg2():
    """psycopg2, loaded without Python's ``ssl`` module where nothing has loaded that yet.

    As it loads, psycopg2 imports ``ssl`` only so that Python sets up the locking callbacks that
    OpenSSL needed before version 1.1, and then tells libpq to leave them alone; where ``ssl``
    cannot be imported it leaves libpq to its own set-up (``libcrypto_threads_init`` in
    psycopgmodule.c). OpenSSL 1.1 and later lock by themselves, so nothing is lost, and a refresh
    is spared the 6-10 ms that loading ``ssl`` costs. Encrypted connections are libpq's own work.
    """
    if "ssl" in sys.modules:
        import psycopg2

        return psycopg2
    sys.modules["ssl"] = None  # an import of it raises ImportError
    try:
        import psycopg2
    finally:
        if sys.modules.get("ssl", 0) is None:
            del sys.modules["ssl"]
    return psycopg2


def latest_sync_state(db: Db) -> dict | None | bool:
    """The latest snapshot's sync state (None where it recorded none), False where there is none."""
    import json

    found = db.rows("SELECT sync FROM snapshots ORDER BY id DESC LIMIT 1")
    if not found:
        return False
    return json.loads(found[0][0]) if found[0][0] else None


def masked(url: str) -> str:
    """The URL with any password in it replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def first_line(exc: Exception) -> str:
    """The first line of a database error: what a user is shown."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_OPEN: weakref.WeakSet = weakref.WeakSet()  # stores of either kind, for close_open_stores


def opened(store) -> None:
    """Note a store as open, until ``closed``."""
    _OPEN.add(store)


def closed(store) -> None:
    _OPEN.discard(store)


def close_open_stores() -> None:
    """Close every store still open, through its driver or SQLAlchemy: a command line that leaves
    without Python's teardown calls this first, so PostgreSQL sees each session end (and rolls back
    whatever the last reads left open) instead of a dropped connection, which it counts as an
    abandoned session and, inside a transaction, logs as an unexpected end of file."""
    for store in list(_OPEN):
        store.close()


class DriverStore:
    """The store through the driver alone, for ``snapshot take`` and the commands that only read
    snapshots or keep joiner proposals; the methods they use, as ``Store`` has them."""

    def __init__(self, db: Db, url: str):
        self.db = db
        self.display_url = masked(url)
        self.roles = _DriverRoles(self)
        self.ahead = None  # a NamesAhead started by begin_refresh, for the next write_snapshot
        self.refreshing: tuple[dict | None | bool] | None = None  # what begin_refresh found, until written
        opened(self)

    def snapshots(self) -> list:
        from ..kinds import SnapshotInfo

        query = "SELECT id, taken_at, source, users, grants, roles, memberships FROM snapshots ORDER BY id"
        return [SnapshotInfo(row[0], aware(row[1]), *row[2:]) for row in self.db.rows(query)]

    def snapshot_info(self, ref: int | str | None = None):
        from ..kinds import pick_snapshot

        return pick_snapshot(self.snapshots(), ref)

    def load_snapshot(self, ref: int | str | None = None, kinds: tuple[str, ...] | None = None):
        """As ``Store.load_snapshot``."""
        from .lean import load

        return self._lean(load, self.snapshot_info(ref).id, kinds)

    def find_entries(self, snapshot_id: int, name_or_dn: str, kinds: tuple[str, ...]) -> list:
        """As ``Store.find_entries``."""
        from .lean import find_entries

        return self._lean(find_entries, snapshot_id, name_or_dn, kinds)

    def not_users_and_disabled(self, snapshot_id: int) -> tuple[frozenset[int], frozenset[int]]:
        """As ``Store.not_users_and_disabled``."""
        from .lean import not_users_and_disabled

        return self._lean(not_users_and_disabled, snapshot_id)

    def find_peers(self, snapshot_id: int, attrs) -> list[int]:
        """As ``Store.find_peers``."""
        from .lean import find_peers

        return self._lean(find_peers, snapshot_id, attrs)

    def _lean(self, read, *args):
        try:
            return read(self.db, *args)
        except self.db.error as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> StoreError:
        """A database error as the one line a user is shown."""
        return StoreError(f"store {self.display_url}: {first_line(exc)}")

    def transaction(self, work):
        """``work(db)`` in one transaction, taking SQLite's write lock first; its result."""
        raw, sqlite = self.db.raw, not self.db.postgres
        try:
            if sqlite:
                raw.execute("BEGIN IMMEDIATE")
            try:
                done = work(self.db)
            except BaseException:
                raw.execute("ROLLBACK") if sqlite else raw.rollback()
                raise
            raw.execute("COMMIT") if sqlite else raw.commit()
        except self.db.error as exc:
            raise self._failed(exc) from None
        return done

    def begin_refresh(self) -> dict | None | bool:
        """As ``Store.begin_refresh``; then, on PostgreSQL into a store that holds a snapshot, a
        thread starts reading what the next snapshot is written against while the directory is
        read (``snapshot_writer.NamesAhead``: it takes the store's lock now, and holds the
        connection until ``write_snapshot`` uses what it read). Asked again before that, it
        answers what it found the first time, without waiting for the thread."""
        if self.refreshing is None:
            self.refreshing = (latest_sync_state(self.db),)
            if self.refreshing[0] is not False and self.db.postgres and self.db.threads:
                from . import snapshot_writer

                self.ahead = snapshot_writer.NamesAhead(self.db)
        return self.refreshing[0]

    def snapshots_exist(self) -> bool:
        return self.db.scalar("SELECT max(id) FROM snapshots") is not None

    def write_snapshot(self, build, skip_unchanged: bool = False, preview: bool = False):
        """As ``Store.write_snapshot``, without ``preview`` (which loads a whole snapshot)."""
        from . import snapshot_writer

        if preview:
            raise ValueError("a preview needs the SQLAlchemy store")
        # A first snapshot only adds pages, which a rollback journal need not copy as the WAL would;
        # another connection to the file keeps it in WAL (the switch then does nothing).
        sqlite = not self.db.postgres
        journal = sqlite and not self.snapshots_exist() and self._journal()
        ahead, self.ahead, self.refreshing = self.ahead, None, None
        try:  # the write lock first: a snapshot writer compares against the last one
            written = self.transaction(lambda db: snapshot_writer.write(db, build, skip_unchanged, ahead))
        finally:
            if journal:
                self._back_to_wal()
        return written, None

    def _journal(self) -> bool:
        """Write with a rollback journal; False where another connection keeps the file in WAL."""
        try:
            return self.db.scalar("PRAGMA journal_mode=DELETE") == "delete"
        except self.db.error:
            return False

    def _back_to_wal(self) -> None:
        try:
            self.db.raw.execute("PRAGMA journal_mode=WAL")
        except self.db.error:  # busy: the next connection to open the store switches it back
            pass

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.thread.join()  # its query done before the connection goes
        self.db.raw.close()
        closed(self)


def aware(value):
    """A stored timestamp as an aware UTC datetime (SQLite hands back text, naive UTC)."""
    from datetime import datetime, timezone

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _DriverRoles:
    """What ``joiner propose`` asks of the role catalogue (``Store.roles``), through the driver."""

    def __init__(self, store: DriverStore):
        self.store = store

    def definitions(self, include_deleted: bool = False) -> list:
        from .lean import definitions

        return self.store._lean(definitions, include_deleted)

    def rules(self) -> dict:
        from .lean import rules

        return self.store._lean(rules)

    def save_proposals(self, user_dn: str, snapshot_id: int | None, body) -> int:
        from .lean import save_proposals

        return self.store.transaction(lambda db: save_proposals(db, user_dn, snapshot_id, body))
