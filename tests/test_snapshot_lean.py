"""``snapshot take`` on a store that is up to date: libldap and the database driver alone.

A refresh must start in a fraction of a second, so on an existing store it neither imports
SQLAlchemy and ldap3 nor reads the whole latest snapshot. These tests check that it really runs
that way, on SQLite and PostgreSQL, and that what it writes is what the full stack writes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import ldap3
import pytest

from rbac_migrate.store import open_store
from rbac_migrate.store.driver import HEAD, masked, open_driver
from tests.test_snapshot_sync import Changer, _check_rounds

# Runs the command line in a fresh interpreter, then names the heavy libraries it loaded.
PROBE = """
import sys
from rbac_migrate.cli import main
code = main(sys.argv[1:] or ["snapshot", "take"])
print(sorted(m for m in ("sqlalchemy", "ldap3", "alembic", "pyasn1", "ldap") if m in sys.modules))
sys.exit(code)
"""


def _probe(org, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")}
    env.update(org.env)
    argv = [sys.executable, "-c", PROBE, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def _admin(org) -> ldap3.Connection:
    return ldap3.Connection(org.slapd.url, org.slapd.admin_dn, org.slapd.admin_password, auto_bind=True)


def test_an_incremental_snapshot_loads_neither_sqlalchemy_nor_ldap3(org_on_store):
    assert org_on_store.run("snapshot", "take").code == 0  # creates the store, through SQLAlchemy
    Changer(_admin(org_on_store), org_on_store, "openldap", seed=3).round(4)
    proc = _probe(org_on_store)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]", proc.stdout
    assert "incremental (RFC 4533 content sync)" in proc.stderr, proc.stderr
    latest = open_store(org_on_store.store_url).snapshot_info()
    assert proc.stdout.splitlines()[0] == str(latest.id)
    assert f"snapshot {latest.id}: {latest.users} users, {latest.grants} grant groups" in proc.stderr


def test_driver_written_snapshots_equal_full_reads_on_every_store(org_on_store):
    """Incremental snapshots written through the driver against full reads written through SQLAlchemy."""
    _check_rounds(
        org_on_store, Changer(_admin(org_on_store), org_on_store, "openldap", seed=5), "RFC 4533 content sync"
    )


def test_a_new_or_older_store_is_left_to_sqlalchemy_which_creates_or_upgrades_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert open_driver(url) is None  # no file yet
    store = open_store(url)
    db = open_driver(url)
    assert db is not None and db.scalar("SELECT version_num FROM alembic_version") == HEAD
    db.raw.close()
    with store.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0007_versioned_snapshots'")
    assert open_driver(url) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:s3cret@db.example.org/rbac", "postgresql+psycopg://app:***@db.example.org/rbac"),
        ("sqlite:////var/lib/rbac/state.db", "sqlite:////var/lib/rbac/state.db"),
    ],
)
def test_store_urls_are_shown_without_their_password(url, shown):
    assert masked(url) == shown


def test_pages_of_one_entry_read_everything_and_agree_with_full_reads(org):
    """slapd follows one paged search per connection: a snapshot must never interleave two."""
    org.env["RBAC_MIGRATE_PAGE_SIZE"] = "1"
    _check_rounds(org, Changer(_admin(org), org, "openldap", seed=9), "RFC 4533 content sync", rounds=1)


def test_connection_failures_on_the_libldap_path_read_as_for_any_command(org):
    """snapshot take connects through libldap; when that fails, the error is ldap3's one line."""
    import socket
    import threading

    from tests.support.cli import assert_one_line_error, run
    from tests.test_errors import _closed_port

    assert org.run("snapshot", "take").code == 0  # the store exists: the next take goes the lean way
    wrong = {**org.env, "RBAC_MIGRATE_BIND_PASSWORD": "not-the-password"}
    assert_one_line_error(run(["snapshot", "take"], wrong), "wrong bind DN or password")
    port = _closed_port()
    refused = run(["--url", f"ldap://127.0.0.1:{port}", "snapshot", "take"], org.env)
    assert_one_line_error(refused, f"cannot reach ldap://127.0.0.1:{port}", "connection refused")
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []

        def accept() -> None:
            while not done.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except OSError:  # timed out: look at done again
                    pass

        done = threading.Event()
        acceptor = threading.Thread(target=accept)
        acceptor.start()
        try:
            argv = ["--url", f"ldap://127.0.0.1:{port}", "--set", "receive_timeout=1", "snapshot", "take"]
            silent = run(argv, org.env)
        finally:
            done.set()
            acceptor.join()
            for conn in accepted:
                conn.close()
    assert_one_line_error(silent, f"ldap://127.0.0.1:{port} did not answer within the timeout")
    assert len(accepted) == 1  # said after one wait, not after a second try through ldap3


def test_member_checks_sent_ahead_of_their_answers_agree_with_one_search_each(org):
    """Member values outside the managed entries are checked together on the libldap path: more
    at once than are ever in flight, existing or not, and names no server accepts as a DN."""
    from rbac_migrate.config import load_settings
    from rbac_migrate.directory.libldap import IN_FLIGHT, open_reader

    admin = _admin(org)
    elsewhere = f"ou=elsewhere,{org.sample.base_dn}"
    assert admin.add(elsewhere, ["organizationalUnit"], {"ou": "elsewhere"})
    existing = [f"cn=e{n},{elsewhere}" for n in range(IN_FLIGHT + 7)]
    for dn in existing:
        assert admin.add(dn, ["organizationalRole"], {"cn": dn.split(",")[0][3:]})
    missing = [f"cn=m{n},{elsewhere}" for n in range(IN_FLIGHT)] + [f"uid=x,ou=nowhere,{org.sample.base_dn}"]
    hostile = ["not a dn", "cn=", "cn=a\\", "=x", "cn=a,,dc=x", "cn=\x00", "cn=" + "z" * 5000]
    asked = [dn for trio in zip(existing, missing, existing[::-1], strict=False) for dn in trio] + hostile
    asked += existing[len(missing) :]

    def one_search_each(dn: str) -> bool:  # the reference: ldap3, one base search per DN
        try:
            return admin.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectClass"])
        except ldap3.core.exceptions.LDAPException:
            return False

    expected = {dn for dn in asked if one_search_each(dn)}
    assert expected == set(existing)  # the reference tells existing entries from the rest
    settings = load_settings(config=str(org.config), environ={})
    with open_reader(settings, org.slapd.admin_password) as reader:
        assert reader.resolving(asked) == expected
        assert reader.resolving([]) == set()
        # The connection is fit for the next search after all those answers.
        assert [dn for dn, _raw in reader.search_raw(elsewhere, "(cn=e1)", ["cn"])] == [existing[1]]


def test_a_full_read_resolves_every_member_value_whichever_page_its_entry_comes_on(org):
    """With pages of one entry, a value naming an entry on a later page (a group read after the
    group holding it), another spelling of a user's DN, a missing entry and one outside the
    managed bases must each resolve as the test reads them here."""
    admin = _admin(org)
    grants, people = org.sample.grant_base, org.sample.people_dn
    user = org.sample.users[3].dn
    shouted = ",".join(part.split("=", 1)[0].upper() + "=" + part.split("=", 1)[1] for part in user.split(","))
    outside = f"cn=outsider,{org.sample.base_dn}"
    assert admin.add(outside, ["organizationalRole"], {"cn": "outsider"})
    early, late = f"cn=g-early,{grants}", f"cn=g-late,{grants}"
    holds = {
        early: [late, shouted, outside, f"uid=ghost,{people}"],  # g-late is added, so read, after g-early
        late: [user, early],
    }
    for dn in (early, late):
        assert admin.add(dn, ["groupOfNames"], {"cn": dn.split(",")[0][3:], "member": holds[dn]}), admin.result
    org.env["RBAC_MIGRATE_PAGE_SIZE"] = "1"
    result = org.run("snapshot", "take")
    assert result.code == 0, result.err
    snap = open_store(org.store_url).load_snapshot()
    by_dn = {e.dn.lower(): e for e in snap.entries}
    by_idx = {e.idx: e for e in snap.entries}

    def named(dn: str):  # the entry a value names: by its DN, attribute names in any case
        return by_dn[dn.lower()]

    for group, values in holds.items():
        assert [by_idx[m].dn.lower() for m in snap.members[named(group).idx]] == [v.lower() for v in values], group
    assert named(late).kind == "grant" and named(user).kind == "user"
    assert named(outside).kind == "external" and named(f"uid=ghost,{people}").kind == "dangling"
    assert not any(e.dn == shouted for e in snap.entries)  # the same user, not a second entry


def test_access_reads_through_the_driver_alone_and_answers_as_the_full_store_does(org_on_store):
    """access show / explain on an up-to-date store load neither SQLAlchemy nor ldap3, for the
    latest snapshot and an earlier one, and say what the SQLAlchemy store's reading says."""
    import json

    from rbac_migrate import access

    assert org_on_store.run("snapshot", "take").code == 0
    Changer(_admin(org_on_store), org_on_store, "openldap", seed=11).round(6)
    assert org_on_store.run("snapshot", "take").code == 0
    store = open_store(org_on_store.store_url)
    holders = [u for u in org_on_store.sample.users if u.roles and not u.leaver]
    user = holders[0].uid
    for ref in ("1", "-1", "latest"):
        proc = _probe(org_on_store, "access", "show", user, "--snapshot", ref, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        *document, loaded = proc.stdout.splitlines()
        assert loaded == "[]", proc.stdout
        expected = access.access_show(store, user, ref)
        shown = json.loads("\n".join(document))
        assert shown["snapshot"] == expected.snapshot_id == store.snapshot_info(ref).id
        assert shown["roles"] == [r.name for r in expected.roles]
        assert [(g["dn"], g["sources"]) for g in shown["grants"]] == [(g.group.dn, g.sources) for g in expected.grants]
        assert shown["grants"], "the user reaches grants in every snapshot"
    target = shown["grants"][0]["grant"]  # a grant the user holds in the latest snapshot
    proc = _probe(org_on_store, "access", "explain", user, target, "--format", "json")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "[]", proc.stdout + proc.stderr
    _entry, _target, paths = access.access_explain(store, user, target)
    assert len(json.loads("\n".join(proc.stdout.splitlines()[:-1]))["paths"]) == len(paths) > 0
    for args, fragment in (
        (("access", "show", "nobody-here"), "nobody-here"),
        (("access", "show", user, "--snapshot", "99"), "no snapshot 99"),
        (("access", "show", user, "--snapshot", "soon"), "snapshot 'soon' is not a number"),
    ):
        failed = _probe(org_on_store, *args)
        assert failed.returncode != 0 and failed.stdout.splitlines()[-1] == "[]"
        lines = failed.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], lines


def test_joiner_propose_reads_the_catalogue_and_keeps_its_proposals_through_the_driver(org_on_store):
    """joiner propose loads neither SQLAlchemy nor ldap3 on an up-to-date store, keeps its
    proposals where onboard (through SQLAlchemy) finds and carries them out, and sees a role
    created since the snapshot through the catalogue; on SQLite and PostgreSQL."""
    import json
    from datetime import datetime, timezone

    from rbac_migrate import connections
    from rbac_migrate.config import load_settings
    from rbac_migrate.roles import query as roles_query
    from tests.test_onboarding import ROLE, _newbie
    from tests.test_roles import role_dn, values

    dept, title = org_on_store.sample.role_profiles[ROLE]
    dn = _newbie(org_on_store, dept, title)
    _newbie(org_on_store, dept, title, uid="newbie2")
    assert org_on_store.run("snapshot", "take").code == 0
    store = open_store(org_on_store.store_url)
    settings = load_settings(config=str(org_on_store.config), environ={})

    def propose(uid: str) -> dict:
        proc = _probe(org_on_store, "joiner", "propose", uid, "--no-refresh", "--format", "json")
        assert proc.returncode == 0, proc.stderr
        *document, loaded = proc.stdout.splitlines()
        assert loaded == "[]", proc.stdout
        shown = json.loads("\n".join(document))
        expected = roles_query.propose(settings, store, uid).result.proposals
        assert [p["roles"] for p in shown["proposals"]] == [[r.name for r in p.roles] for p in expected]
        return shown

    shown = propose("newbie")
    assert shown["proposals"][0]["roles"] == [ROLE]
    kept_id, kept_at, body = store.roles.latest_proposals(dn)
    assert kept_id == shown["kept_as"] and kept_at.tzinfo is not None
    assert [p["number"] for p in body["proposals"]] == [p["number"] for p in shown["proposals"]]
    onboard = org_on_store.run("joiner", "onboard", "newbie", "--proposal", "1", "--yes")
    assert onboard.code == 0, onboard.err
    assert dn.lower() in values(org_on_store, role_dn(org_on_store, ROLE), "member")
    # A role created since the snapshot: the catalogue, read through the driver, knows it.
    before = datetime.now(timezone.utc)
    grant = next(g for g in org_on_store.sample.groups if g.kind == "grant")
    assert org_on_store.run("role", "create", "role-lean", "--grant", grant.cn, "--yes").code == 0
    lean = connections.lean_store_for(settings)
    assert type(lean).__name__ == "DriverStore"
    (made,) = [d for d in lean.roles.definitions() if d.name == "role-lean"]
    assert [g.lower() for g in made.grants] == [grant.dn.lower()] and made.state == "active"
    assert before <= made.created_at <= made.updated_at <= datetime.now(timezone.utc)
    assert made in store.roles.definitions(include_deleted=True)
    assert propose("newbie2")["proposals"]


def test_pages_of_a_size_asked_for_read_what_one_page_reads_on_either_connection(org):
    """A full read asks for groups a few at a time: a smaller page than the setting must still
    bring every entry and every value, through libldap and through ldap3 alike."""
    from rbac_migrate.config import load_settings
    from rbac_migrate.directory import connect
    from rbac_migrate.directory.libldap import open_reader

    settings = load_settings(config=str(org.config), environ={})
    base, attributes = org.sample.grant_base, ["cn", "member"]
    admin = _admin(org)
    admin.search(base, "(objectClass=groupOfNames)", attributes=attributes)
    expected = {e.entry_dn: sorted(e.entry_attributes_as_dict["member"]) for e in admin.entries}
    assert len(expected) > 3

    def read(directory, size: int | None) -> dict[str, list[str]]:
        found = directory.search_raw(base, "(objectClass=groupOfNames)", attributes, page_size=size)
        return {dn: sorted(v.decode() for v in raw.get("member", [])) for dn, raw in found}

    with open_reader(settings, org.slapd.admin_password) as fast:
        for size in (None, 1, 2, 3):
            assert read(fast, size) == expected, size
    plain = load_settings(config=str(org.config), environ={"RBAC_MIGRATE_BULK_READER": "ldap3"})
    slow = connect(plain, org.slapd.admin_password)
    assert slow.bulk_reader == "ldap3"
    try:
        for size in (None, 1, 2):
            assert read(slow, size) == expected, size
    finally:
        slow.close()
