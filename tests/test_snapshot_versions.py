"""Versioned snapshot storage on real SQLite and PostgreSQL: random histories against full copies."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from rbac_migrate import changes
from rbac_migrate.model import DANGLING, EXTERNAL, GRANT, ROLE, USER, Entry, Snapshot, identity_key
from rbac_migrate.store import migrations, open_store
from rbac_migrate.store.packing import pack
from rbac_migrate.store.schema import entry_versions

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class History:
    """A random directory that changes a little between snapshots; each snapshot is a full copy."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.serial = 0
        self.users: dict[str, dict] = {}  # uuid -> fields
        self.groups: dict[str, dict] = {}
        for _ in range(30):
            self._new_user()
        for kind in (GRANT,) * 6 + (ROLE,) * 3:
            self._new_group(kind)

    def _uuid(self) -> str:
        self.serial += 1
        return f"00000000-0000-0000-0000-{self.serial:012d}"

    def _new_user(self, dn: str | None = None) -> None:
        uuid = self._uuid()
        name = f"u{self.serial}"
        title = self.rng.choice(["dev", "ops", "hr"])
        self.users[uuid] = {"dn": dn or f"uid={name},ou=people,dc=x", "name": name, "on": True, "title": title}

    def _new_group(self, kind: str) -> None:
        uuid = self._uuid()
        base = "ou=grants,dc=x" if kind == GRANT else "ou=roles,dc=x"
        members = self.rng.sample(sorted(self.users), 5)
        self.groups[uuid] = {"dn": f"cn=g{self.serial},{base}", "name": f"g{self.serial}", "kind": kind}
        self.groups[uuid]["members"] = [self.users[u]["dn"] for u in members]

    def mutate(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 6)):
            step = rng.randrange(10)
            user = rng.choice(sorted(self.users))
            group = self.groups[rng.choice(sorted(self.groups))]
            if step == 0:
                self._new_user()
            elif step == 1:  # deleted; its member values dangle
                del self.users[user]
            elif step == 2:  # re-created under the same DN: a new identity
                dn = self.users.pop(user)["dn"]
                self._new_user(dn)
            elif step == 3:
                old = self.users[user]["dn"]
                self.users[user]["dn"] = old.replace("uid=", "uid=r")
                for g in self.groups.values():  # as refint does
                    g["members"] = [self.users[user]["dn"] if m == old else m for m in g["members"]]
            elif step == 4:
                self.users[user]["on"] = not self.users[user]["on"]
            elif step == 5:
                self.users[user]["title"] = rng.choice(["dev", "ops", "hr", "qa"])
            elif step == 6 and self.users[user]["dn"] not in group["members"]:
                group["members"].append(self.users[user]["dn"])
            elif step == 7 and group["members"]:
                group["members"].remove(rng.choice(group["members"]))
            elif step == 8:
                self._new_group(rng.choice((GRANT, ROLE)))
            elif step == 9:
                group["members"].append(rng.choice(["uid=ghost,ou=people,dc=x", "cn=ext,ou=other,dc=x"]))

    def snapshot(self, when: datetime) -> Snapshot:
        entries: list[Entry] = []
        by_dn: dict[str, int] = {}

        def add(kind, dn, name, uuid=None, enabled=True, attrs=None):
            if dn.lower() not in by_dn:
                by_dn[dn.lower()] = len(entries)
                entries.append(Entry(len(entries), kind, dn, name, uuid, enabled, attrs or {}))
            return by_dn[dn.lower()]

        for uuid, u in self.users.items():
            add(USER, u["dn"], u["name"], uuid, u["on"], {"title": u["title"]})
        for uuid, g in self.groups.items():
            add(g["kind"], g["dn"], g["name"], uuid)
        members = {}
        for g in self.groups.values():
            resolved = []
            for value in g["members"]:
                kind = EXTERNAL if "ou=other" in value else DANGLING
                resolved.append(by_dn.get(value.lower(), None))
                if resolved[-1] is None:
                    resolved[-1] = add(kind, value, value)
            members[by_dn[g["dn"].lower()]] = tuple(resolved)
        return Snapshot(when, "ldap://x", "openldap", {"user_base": "ou=people,dc=x"}, entries, members)


def canonical(snap: Snapshot) -> tuple[dict, dict]:
    """A snapshot keyed by identity, so copies numbered differently compare equal."""
    key = {e.idx: identity_key(e.uuid, e.dn) for e in snap.entries}
    entries = {key[e.idx]: (e.kind, e.dn, e.name, e.uuid, e.enabled, dict(e.attrs)) for e in snap.entries}
    members = {key[g]: [key[m] for m in ms] for g, ms in snap.members.items()}
    return entries, members


@pytest.mark.parametrize("seed", [1, 2])
def test_random_history_reconstructs_every_snapshot_exactly(store_url, seed):
    store = open_store(store_url)
    history, copies = History(seed), {}
    for step in range(25):
        snap = history.snapshot(START + timedelta(days=step))
        copies[store.save_snapshot(snap)] = snap
        history.mutate()
    for snapshot_id, copy in copies.items():
        loaded = store.load_snapshot(snapshot_id)
        assert canonical(loaded) == canonical(copy), snapshot_id
        assert store.snapshot_info(snapshot_id).memberships == copy.info().memberships
        for entry in copy.entries[:5]:
            found = store.find_entries(snapshot_id, entry.dn, (entry.kind,))
            assert [(e.dn, e.uuid) for e in found] == [(entry.dn, entry.uuid)]
    ids = sorted(copies)
    for a, b in zip(ids, ids[1:], strict=False):  # diff reads the same from versions as from copies
        assert changes.diff(store.load_snapshot(a), store.load_snapshot(b)) == changes.diff(copies[a], copies[b])
    disabled = {e.name for e in copies[ids[3]].entries if e.kind == USER and not e.enabled}
    _, loaded_disabled = store.not_users_and_disabled(ids[3])
    by_idx = {e.idx: e.name for e in store.load_snapshot(ids[3]).entries}
    assert {by_idx[i] for i in loaded_disabled} == disabled


@pytest.mark.parametrize("hostile", ["", "uid=two\nlines,ou=people,dc=x"])
def test_names_member_values_resolve_to_match_a_plain_read(store_url, hostile):
    """The DN -> entity map an incremental read resolves member values with, read in one go,
    agrees with the current rows read one by one, also when a DN holds the separator it joins on."""
    from rbac_migrate.store.driver import driver_of
    from rbac_migrate.store.snapshot_writer import Latest

    store = open_store(store_url)
    history = History(3)
    if hostile:
        history.users["00000000-0000-0000-0000-999999999999"] = {"dn": hostile, "name": "x", "on": True, "title": "qa"}
    for step in range(3):
        store.save_snapshot(history.snapshot(START + timedelta(days=step)))
        history.mutate()
    with store.connect() as conn:
        rows = conn.execute(text("SELECT dn, entity FROM entry_versions WHERE until IS NULL")).all()
        plain = {dn.encode(): entity for dn, entity in rows}
        assert len(plain) == len(rows) > 30
        assert any(b"\n" in dn for dn in plain) == bool(hostile)
        latest = Latest(driver_of(conn))
        assert latest.names(set()) == plain
        some = {rows[0][1], rows[-1][1]}
        assert latest.names(some) == {dn: e for dn, e in plain.items() if e not in some}


def _version_rows(store) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(entry_versions)).scalar()


def test_store_grows_with_change_not_size(store_url):
    store = open_store(store_url)
    history = History(5)
    store.save_snapshot(history.snapshot(START))
    first = _version_rows(store)
    store.save_snapshot(history.snapshot(START + timedelta(days=1)))
    assert _version_rows(store) == first  # nothing changed: no new version at all
    group = next(iter(history.groups.values()))
    group["members"].pop()
    store.save_snapshot(history.snapshot(START + timedelta(days=2)))
    assert _version_rows(store) == first + 1  # one group changed: one new version
    assert store.last_written.changed == 1 and store.last_written.added == store.last_written.removed == 0
    assert store.save_snapshot(history.snapshot(START + timedelta(days=3)), skip_unchanged=True) is None
    assert len(store.snapshots()) == 3


def test_prune_keeps_what_remaining_snapshots_need(store_url):
    store = open_store(store_url)
    history, copies = History(9), {}
    for step in range(8):
        snap = history.snapshot(START + timedelta(days=step))
        copies[store.save_snapshot(snap)] = snap
        history.mutate()
    ids = sorted(copies)
    assert store.prune_snapshots(keep=3) == ids[:5]
    assert [s.id for s in store.snapshots()] == ids[5:]
    for snapshot_id in ids[5:]:
        assert canonical(store.load_snapshot(snapshot_id)) == canonical(copies[snapshot_id])
    with store.connect() as conn:  # every version left is held by a remaining snapshot
        orphaned = conn.execute(
            text("SELECT count(*) FROM entry_versions WHERE until IS NOT NULL AND until <= :s"), {"s": ids[5]}
        ).scalar()
    assert orphaned == 0
    assert store.prune_snapshots(older_than=START + timedelta(days=100)) == ids[5:7]  # never the latest
    assert canonical(store.load_snapshot()) == canonical(copies[ids[-1]])


def test_migration_converts_full_copies_into_versions(store_url):
    from alembic import command

    store = open_store(store_url, upgrade=False)
    with store.begin() as conn:
        command.upgrade(migrations.config(conn), "0003")
    history, copies = History(4), []
    for step in range(4):
        copies.append(history.snapshot(START + timedelta(days=step)))
        history.mutate()
    with store.begin() as conn:
        for number, snap in enumerate(copies, start=1):
            _write_old_style(conn, number, snap)
    assert store.upgrade()[-1] == migrations.HEAD
    for number, snap in enumerate(copies, start=1):
        assert canonical(store.load_snapshot(number)) == canonical(snap)
    assert _version_rows(store) < sum(len(s.entries) for s in copies) / 2


def _write_old_style(conn, number: int, snap: Snapshot) -> None:
    """A snapshot as revision 0003 stored it: a full copy of every entry."""
    conn.execute(
        text(
            "INSERT INTO snapshots (id, taken_at, source, flavour, bases, users, grants, roles, memberships) "
            "VALUES (:id, :at, 'ldap://x', 'openldap', '{}', 0, 0, 0, 0)"
        ),
        {"id": number, "at": snap.taken_at},
    )
    for e in snap.entries:
        conn.execute(
            text(
                "INSERT INTO snapshot_entries (snapshot_id, idx, kind, dn, dn_norm, name, name_norm, uuid, enabled, "
                "attrs, members) VALUES (:s, :idx, :kind, :dn, :norm, :name, :lname, :uuid, :on, :attrs, :members)"
            ),
            {
                "s": number,
                "idx": e.idx,
                "kind": e.kind,
                "dn": e.dn,
                "norm": e.dn.lower(),
                "name": e.name,
                "lname": e.name.lower(),
                "uuid": e.uuid,
                "on": e.enabled,
                "attrs": json.dumps(dict(e.attrs), separators=(",", ":")) if e.attrs else None,
                "members": pack(snap.members[e.idx]) if e.idx in snap.members else None,
            },
        )


def test_holders_tells_a_member_from_its_bytes_astride_two_others(store_url):
    """An incremental read asks which groups hold a few entities (renamed, gone, or known only from
    member values); the database finds the groups whose packed members contain an entity's four
    bytes, and an occurrence astride two numbers must not count: members 256 and 0 pack to
    00 01 00 00 00 00 00 00, which holds entity 1's bytes (01 00 00 00) one byte in."""
    from rbac_migrate.store.driver import driver_of
    from rbac_migrate.store.snapshot_writer import FEW_HELD, Latest

    users = [Entry(i, USER, f"uid=u{i},ou=people,dc=x", f"u{i}", f"uuid-{i}", True, {}) for i in range(300)]
    groups = [Entry(300, GRANT, "cn=astride,ou=grants,dc=x", "astride", "uuid-g0", True, {})]
    groups.append(Entry(301, GRANT, "cn=plain,ou=grants,dc=x", "plain", "uuid-g1", True, {}))
    members = {300: (256, 0), 301: (1, 2, 3)}
    store = open_store(store_url)
    store.save_snapshot(Snapshot(START, "ldap://x", "openldap", {"user_base": "dc=x"}, [*users, *groups], members))
    with store.connect() as conn:
        latest = Latest(driver_of(conn))
        assert pack([256, 0])[1:5] == pack([1])
        assert set(latest.holders({1})) == {301}
        assert set(latest.holders({256})) == {300}
        assert set(latest.holders({0, 3})) == {300, 301}
        assert latest.holders({7}) == {}
        many = set(range(100, 100 + FEW_HELD)) | {1}  # more than the database is asked to look for
        assert set(latest.holders(many)) == {301}
        assert list(latest.holders({1})[301]) == [1, 2, 3]
