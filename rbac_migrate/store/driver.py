"""The store's database driver used directly: SQL at driver speed, and no SQLAlchemy to import.

Snapshots move hundreds of thousands of rows, and a refresh must start in well under a second,
so the snapshot writer speaks plain SQL through the DB-API connection: sqlite3 for SQLite,
psycopg for PostgreSQL. It is handed either a connection SQLAlchemy opened (inside that
connection's transaction) or one ``open_driver`` opened from the store URL alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import StoreError

CHUNK = 500  # values per IN (...) list
HEAD = "0008_roles_rules"  # the schema revision this code writes; store.migrations checks it against Alembic


class Db:
    """A DB-API connection with its dialect ("sqlite" or "postgresql"). SQL is written with ``?``."""

    def __init__(self, raw, dialect: str):
        self.raw = raw
        self.dialect = dialect
        self.postgres = dialect == "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return cursor.fetchall()
        finally:
            cursor.close()

    def scalar(self, sql: str, params: Sequence = ()):
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def run(self, sql: str, params: Sequence = ()) -> None:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self._sql(sql), params)
        finally:
            cursor.close()

    def rows_in(self, sql: str, values: Iterable, params: Sequence = ()) -> list[tuple]:
        """``sql`` with ``{marks}`` standing for an IN list, run over ``values`` a chunk at a time."""
        ordered = sorted(set(values))
        out: list[tuple] = []
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            out += self.rows(sql.format(marks=", ".join("?" * len(chunk))), [*params, *chunk])
        return out

    def run_in(self, sql: str, values: Iterable, params: Sequence = ()) -> None:
        ordered = sorted(set(values))
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            self.run(sql.format(marks=", ".join("?" * len(chunk))), [*params, *chunk])

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        """Insert many rows: COPY on PostgreSQL, executemany on SQLite. Values in the driver's form."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.postgres:
            with self.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def index_definitions(self, table: str) -> list[tuple[str, str]]:
        """(name, CREATE INDEX statement) of a table's secondary indexes, as the database holds them."""
        if self.postgres:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ? AND indexname LIKE 'ix_%'"
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
        return sorted(self.rows(query, (table,)))


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL; None for memory databases and other URLs."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///") :]
    return Path(path).expanduser() if path and path != ":memory:" else None


def sqlite_pragmas(raw) -> None:
    """WAL lets readers work while a batch writes; foreign keys are off by default in SQLite."""
    cursor = raw.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
            raw = sqlite3.connect(path, isolation_level=None)
            raw.execute("BEGIN")
            raw.execute("ROLLBACK")
        except sqlite3.Error:
            return None
        sqlite_pragmas(raw)
        raw.isolation_level = ""  # the driver's transactions: BEGIN before the first write
        db = Db(raw, "sqlite")
    elif url.startswith(("postgresql+psycopg://", "postgresql://")):
        db = _postgres(url)
        if db is None:
            return None
    else:
        return None
    try:
        current = db.scalar("SELECT version_num FROM alembic_version")
    except Exception:  # noqa: BLE001 - no such table, or no access: SQLAlchemy's path explains
        current = None
    if current != HEAD:
        db.raw.close()
        return None
    return db


def _postgres(url: str) -> Db | None:
    try:
        import psycopg
    except ImportError:
        return None
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    if parts.query and any(not p.startswith(("host=", "sslmode=")) for p in parts.query.split("&")):
        return None
    options = {"dbname": unquote(parts.path.lstrip("/")) or None, "user": unquote(parts.username or "") or None}
    options["password"] = unquote(parts.password) if parts.password else os.environ.get("PGPASSWORD")
    options["host"], options["port"] = parts.hostname, parts.port
    for pair in parts.query.split("&") if parts.query else []:
        key, _, value = pair.partition("=")
        options[key] = unquote(value)
    try:
        raw = psycopg.connect(**{k: v for k, v in options.items() if v is not None})
    except psycopg.Error:
        return None
    return Db(raw, "postgresql")


def first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def store_error(exc: Exception, what: str) -> StoreError:
    return StoreError(f"{what}: {first_line(exc)}")
