"""A snapshot exists complete or not at all, however its writing ends.

A first snapshot inserts its users and builds their indexes on a writer thread while the groups
are still read, into an empty SQLite store with a rollback journal instead of the WAL. These
tests kill the command while it writes, make the writer thread fail (inserting, and building
indexes), and make the reader fail while the thread works: each time the store must be as it
was, and the next snapshot must be whole.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from rbac_migrate.errors import DirectoryError
from rbac_migrate.store import open_store
from rbac_migrate.store.driver import Db
from tests.conftest import Org


@pytest.fixture
def big_org(slapd, ldap_base, tmp_path, store_url) -> Org:
    """Enough users for the writer thread to get several chunks; the store already created."""
    org = Org(slapd, ldap_base, tmp_path, users=2500, seed=5, store=store_url)
    open_store(store_url).engine.dispose()
    return org


def _snapshot_rows(org: Org) -> tuple[int, int]:
    store = open_store(org.store_url)
    with store.begin() as conn:
        snapshots = conn.exec_driver_sql("SELECT count(*) FROM snapshots").scalar()
        versions = conn.exec_driver_sql("SELECT count(*) FROM entry_versions").scalar()
    store.engine.dispose()
    return snapshots, versions


def _journal_mode(org: Org) -> str | None:
    if not org.store_url.startswith("sqlite:///"):
        return None
    with sqlite3.connect(org.store_url[len("sqlite:///") :]) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


def _check_whole(org: Org) -> None:
    """The store holds one snapshot per successful take, each with every user of the org."""
    store = open_store(org.store_url)
    for info in store.snapshots():
        assert info.users == len(org.sample.users), info
        assert len(store.load_snapshot(info.id).entries) >= info.users + info.grants + info.roles
    store.engine.dispose()


def _failed_in_one_line(result, fragment: str) -> None:
    """Exit 1 and, after the progress lines, one error line naming the cause; no traceback."""
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    errors = [line for line in result.err_lines if not line.startswith("  read ")]
    assert len(errors) == 1 and errors[0].startswith("error:") and fragment in errors[0], errors


def _take(org: Org) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")}
    env.update(org.env)
    argv = [sys.executable, "-m", "rbac_migrate", "snapshot", "take"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_first_snapshot_killed_while_it_writes_leaves_nothing_behind(big_org):
    started = time.monotonic()
    whole = _take(big_org)
    assert whole.wait(timeout=120) == 0, whole.stderr.read()
    duration = time.monotonic() - started
    reference = _snapshot_rows(big_org)
    assert reference[0] == 1
    for fraction in (0.35, 0.55, 0.7, 0.85, 0.95):  # reading users, writing them, reading groups, committing
        with open_store(big_org.store_url).begin() as conn:  # back to an empty store
            conn.exec_driver_sql("DELETE FROM entry_versions")
            conn.exec_driver_sql("DELETE FROM snapshots")
        proc = _take(big_org)
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        snapshots, versions = _snapshot_rows(big_org)
        if snapshots:  # it had committed before the kill
            assert (snapshots, versions) == reference, fraction
        else:
            assert versions == 0, f"{versions} versions of a snapshot that does not exist ({fraction})"
        if big_org.store_url.startswith("sqlite:///"):
            with sqlite3.connect(big_org.store_url[len("sqlite:///") :]) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = big_org.run("snapshot", "take")
    assert again.code == 0, again.err
    _check_whole(big_org)
    assert _journal_mode(big_org) in (None, "wal")


@pytest.mark.parametrize("step", ["insert", "run"])  # inserting users, building indexes
def test_a_failing_writer_thread_fails_the_snapshot_in_one_line_and_writes_nothing(big_org, monkeypatch, step):
    original = getattr(Db, step)

    def failing(self, *args, **kwargs):
        if threading.current_thread().name == "snapshot-writer":
            raise self.error("disk I/O error")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Db, step, failing)
    result = big_org.run("snapshot", "take")
    _failed_in_one_line(result, "disk I/O error")
    assert _snapshot_rows(big_org) == (0, 0)
    assert _journal_mode(big_org) in (None, "wal")
    monkeypatch.setattr(Db, step, original)
    assert big_org.run("snapshot", "take").code == 0
    _check_whole(big_org)


def test_a_reader_failing_while_the_thread_writes_leaves_nothing(big_org, monkeypatch):
    from rbac_migrate import snapshot

    def failing(self, kind, dn, raw):
        raise DirectoryError("search under the grant base failed: server gone")

    monkeypatch.setattr(snapshot._Reader, "group", failing)
    result = big_org.run("snapshot", "take")
    _failed_in_one_line(result, "server gone")
    assert _snapshot_rows(big_org) == (0, 0)
    assert _journal_mode(big_org) in (None, "wal")
