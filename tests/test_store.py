"""The state store on real SQLite and real PostgreSQL: migrations, snapshots, look-ups."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect

from rbac_migrate.errors import NotFoundError, StoreError
from rbac_migrate.model import DANGLING, GRANT, ROLE, USER, Entry, Snapshot
from rbac_migrate.store import migrations, open_store
from tests.support.cli import run


def _snapshot(users: int = 3) -> Snapshot:
    entries = [
        Entry(i, USER, f"uid=u{i},ou=People,dc=x", f"U{i}", f"uuid-{i}", i != 2, {"title": f"t{i}"})
        for i in range(users)
    ]
    entries += [
        Entry(users, GRANT, "cn=Fin-Read,ou=grants,dc=x", "Fin-Read", "g-1"),
        Entry(users + 1, ROLE, "cn=role-fin,ou=roles,dc=x", "role-fin", "r-1"),
        Entry(users + 2, DANGLING, "uid=gone,ou=people,dc=x", "uid=gone,ou=people,dc=x"),
    ]
    members = {users: (0, users + 1, users + 2), users + 1: (1,)}
    return Snapshot(
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "ldap://x:389",
        "openldap",
        {"user_base": "ou=people,dc=x"},
        entries,
        members,
    )


def test_migrations_create_the_schema(store_url):
    store = open_store(store_url)
    assert store.revision() == migrations.head() == migrations.HEAD
    tables = set(inspect(store.engine).get_table_names())
    assert {"snapshots", "entry_versions", "alembic_version"} <= tables
    assert "snapshot_entries" not in tables
    assert store.upgrade() == []  # idempotent


def test_snapshot_round_trip(store_url):
    store = open_store(store_url)
    original = _snapshot()
    snapshot_id = store.save_snapshot(original)
    loaded = store.load_snapshot(snapshot_id)
    assert loaded.entries == original.entries
    assert loaded.members == original.members
    assert loaded.taken_at.replace(tzinfo=timezone.utc) == original.taken_at
    info = store.snapshots()[0]
    assert (info.users, info.grants, info.roles, info.memberships) == (3, 1, 1, 4)


def test_snapshot_references(store_url):
    store = open_store(store_url)
    first, second = store.save_snapshot(_snapshot()), store.save_snapshot(_snapshot(4))
    assert store.snapshot_info("latest").id == second
    assert store.snapshot_info(-1).id == first
    assert store.snapshot_info(str(first)).id == first
    with pytest.raises(NotFoundError, match="no snapshot 99"):
        store.snapshot_info(99)
    with pytest.raises(NotFoundError, match="not a number"):
        store.snapshot_info("yesterday")


def test_find_entries_by_name_or_dn_case_insensitively(store_url):
    store = open_store(store_url)
    snapshot_id = store.save_snapshot(_snapshot())
    assert [e.idx for e in store.find_entries(snapshot_id, "u1", (USER,))] == [1]
    assert [e.idx for e in store.find_entries(snapshot_id, "UID=u1, ou=people,DC=x", (USER,))] == [1]
    assert store.find_entries(snapshot_id, "fin-read", (USER,)) == []
    assert [e.name for e in store.find_entries(snapshot_id, "fin-read", (GRANT,))] == ["Fin-Read"]


def test_partial_loads_keep_groups(store_url):
    store = open_store(store_url)
    store.save_snapshot(_snapshot())
    groups_only = store.load_snapshot(kinds=())
    assert {e.kind for e in groups_only.entries} == {GRANT, ROLE}
    assert groups_only.members[3] == (0, 4, 5)


def test_failed_snapshot_write_leaves_nothing(store_url):
    store = open_store(store_url)
    first = store.save_snapshot(_snapshot())
    broken = _snapshot(4)
    broken.entries[3] = Entry(3, USER, None, "U3", "uuid-3")  # no DN: the insert fails midway
    with pytest.raises(StoreError):
        store.save_snapshot(broken)
    twice = _snapshot()
    twice.entries.append(Entry(9, USER, "uid=x,dc=x", "x", "uuid-0"))  # one identity, two entries
    with pytest.raises(StoreError, match="two entries with the same identity"):
        store.save_snapshot(twice)
    assert [info.id for info in store.snapshots()] == [first]
    assert store.load_snapshot().entries == _snapshot().entries


def test_db_upgrade_command(store_url, tmp_path):
    result = run(["--store", store_url, "db", "upgrade"], {"HOME": str(tmp_path)})
    assert result.code == 0, result.err
    assert f"at revision {migrations.head()}" in result.err
    again = run(["--store", store_url, "db", "upgrade"], {"HOME": str(tmp_path)})
    assert "(up to date)" in again.err
