"""The store's driver-only path on real SQLite and real PostgreSQL: bulk inserts and store URLs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rbac_migrate.store import open_store
from rbac_migrate.store.driver import open_driver
from rbac_migrate.store.pgcopy import copy_text
from tests.conftest import Org

COLUMNS = ("n", "label", "flag", "blob")
HOSTILE = [
    "plain",
    "back\\slash",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "\\N",
    "\\.",
    "",
    "cn=Smith\\, John\\0A,ou=people",
    '{"cn": ["a\\"b"], "x": "\\u00e9"}',
    "ünïcødé ✓",
    "\t\\\n\r",
]


def _rows() -> list[tuple]:
    rows = []
    for n, label in enumerate(HOSTILE):
        blob = None if n % 3 == 0 else bytes([0, 9, 10, 13, 92, n, 255])
        flag = None if n % 4 == 0 else n % 2 == 0
        rows.append((n, label, flag, blob))
    rows.append((len(HOSTILE), None, True, b""))
    return rows


def _read_back(db) -> list[tuple]:
    found = db.rows("SELECT n, label, flag, blob FROM copied ORDER BY n")
    return [
        (n, label, None if flag is None else bool(flag), None if blob is None else bytes(blob))
        for n, label, flag, blob in found
    ]


@pytest.fixture
def driver(store_url):
    open_store(store_url)  # the schema in place, so the driver-only path opens it
    db = open_driver(store_url)
    assert db is not None
    blob = "BYTEA" if db.postgres else "BLOB"
    db.run(f"CREATE TABLE copied (batch INTEGER, n INTEGER, label TEXT, flag BOOLEAN, blob {blob})")
    yield db
    db.raw.rollback()
    db.raw.close()


def test_bulk_insert_stores_every_value_as_given(driver):
    rows = _rows()
    driver.insert("copied", COLUMNS, rows, constants={"batch": 7})
    assert _read_back(driver) == rows
    assert {row[0] for row in driver.rows("SELECT batch FROM copied")} == {7}


def test_bulk_insert_of_columns_with_nothing_to_escape_and_nothing_missing(driver):
    rows = [(n, f"user{n}", n % 2 == 0, bytes([n % 256]) * 3) for n in range(1000)]
    driver.insert("copied", COLUMNS, rows)
    assert _read_back(driver) == rows


def test_copy_text_escapes_what_the_format_reserves():
    text = copy_text([(1, "a\tb\\c\nd\re", None, True, b"\x00\xff")], constants=(5,))
    assert text == b"5\t1\ta\\tb\\\\c\\nd\\re\t\\N\tt\t\\\\x00ff\n"


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2", "postgresql+psycopg"])
def test_every_postgresql_spelling_opens_the_store_both_ways(pg_url, scheme):
    url = scheme + pg_url[pg_url.index("://") :]
    store = open_store(url)
    assert store.display_url.startswith(f"{scheme}://")
    assert store.revision() is not None
    db = open_driver(url)
    assert db is not None and db.postgres
    db.raw.close()


def test_the_console_entry_ends_its_postgresql_sessions_before_it_leaves(slapd, ldap_base, tmp_path, pg_url):
    """The command line leaves without Python's teardown; it closes its store first, so PostgreSQL
    sees each session end rather than a dropped connection (which it logs as an unexpected EOF
    and counts in ``sessions_abandoned`` of the test's own database)."""
    org = Org(slapd, ldap_base, tmp_path, users=50, seed=3, store=pg_url)
    env = {**os.environ, **org.env}
    user = org.sample.users[0].uid
    for args in (["db", "upgrade"], ["snapshot", "take"], ["snapshot", "take"], ["access", "show", user]):
        done = subprocess.run([sys.executable, "-m", "rbac_migrate", *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    assert _sessions(pg_url) == (0, 4)


def test_snapshots_into_postgresql_leave_pythons_ssl_module_unloaded(slapd, ldap_base, tmp_path, pg_url):
    """psycopg2 loads Python's ``ssl`` only to set up locking for OpenSSL before 1.1, which costs
    every command 6-10 ms; the driver keeps it from doing so. A first and an incremental snapshot
    run without it, and it still loads afterwards for whatever needs it."""
    org = Org(slapd, ldap_base, tmp_path, users=50, seed=3, store=pg_url)
    assert org.run("db", "upgrade").code == 0
    script = (
        "import sys\n"
        "from rbac_migrate.cli import main\n"
        "codes = [main(['snapshot', 'take']) for _ in range(2)]\n"
        "print([int(code) for code in codes], 'ssl' in sys.modules)\n"
        "import ssl\n"
        "print(ssl.OPENSSL_VERSION_INFO >= (1, 1))\n"
    )
    env = {**os.environ, **org.env}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["[0, 0] False", "True"], done.stdout
    assert "incremental" in done.stderr, done.stderr


def _sessions(url: str) -> tuple[int, int]:
    """(abandoned, ended) sessions of the database at ``url`` but this one, once the server counted them."""
    import psycopg2

    conn = psycopg2.connect("postgresql://" + url.split("://", 1)[1])
    conn.autocommit = True
    query = "SELECT sessions_abandoned, sessions FROM pg_stat_database WHERE datname = current_database()"
    try:
        with conn.cursor() as cursor:
            for _ in range(50):  # a backend reports its end as it exits
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(query)
                abandoned, sessions = cursor.fetchone()
                if sessions >= 5:  # the four commands' sessions and this one
                    return abandoned, sessions - 1
                time.sleep(0.1)
        return abandoned, sessions - 1
    finally:
        conn.close()


def test_a_refresh_reads_the_sync_state_before_the_thread_takes_the_connection(
    slapd, ldap_base, tmp_path, pg_url, monkeypatch
):
    """Into PostgreSQL, a refresh starts a thread that holds the store's connection while it reads
    every current DN; the sync state the refresh resumes from is read before that, and asking for
    it again (as ``snapshot take`` does, having started the thread early) waits for no query."""
    import threading

    from rbac_migrate import connections
    from rbac_migrate.config import load_settings
    from rbac_migrate.store.driver import Db

    org = Org(slapd, ldap_base, tmp_path, users=50, seed=3, store=pg_url)
    assert org.run("snapshot", "take").code == 0
    store = connections.snapshot_store_for(load_settings(config=str(org.config), environ=org.env))
    asked: list[str] = []
    original = Db.rows

    def rows(self, sql, params=()):
        asked.append(threading.current_thread().name)
        return original(self, sql, params)

    monkeypatch.setattr(Db, "rows", rows)
    state = store.begin_refresh()
    assert store.ahead is not None  # the thread is reading
    assert store.begin_refresh() == state and state["method"]
    store.ahead.wait()
    monkeypatch.undo()
    assert asked.count("MainThread") == 1, asked
    store.close()
    again = org.run("snapshot", "take")
    assert again.code == 0 and "incremental" in again.err, again.err
