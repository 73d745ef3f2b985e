"""Incremental snapshots against real servers: after random changes, an incremental read equals a full one.

slapd serves RFC 4533 Content Sync (the sandbox loads syncprov); Samba AD answers DirSync to its
administrator, and uSNChanged to an account without the right to replicate directory changes.
"""

from __future__ import annotations

import random
import time

import ldap3
import pytest

from rbac_migrate import snapshot
from rbac_migrate.config import load_settings
from rbac_migrate.model import USER, Snapshot, identity_key
from rbac_migrate.store import open_store
from tests.conftest import Org
from tests.support.ad import AdOrg, admin_connection, service_account, set_ace


def canonical(snap: Snapshot) -> tuple[dict, dict]:
    """A snapshot keyed by identity, so snapshots numbered differently compare equal."""
    key = {e.idx: identity_key(e.uuid, e.dn) for e in snap.entries}
    entries = {key[e.idx]: (e.kind, e.dn.lower(), e.name, e.uuid, e.enabled, dict(e.attrs)) for e in snap.entries}
    return entries, {key[g]: sorted(key[m] for m in ms) for g, ms in snap.members.items()}


class Changer:
    """Random changes of every kind a snapshot must follow, made over LDAP as an administrator would."""

    def __init__(self, conn: ldap3.Connection, org, flavour: str, seed: int):
        self.conn, self.org, self.ad = conn, org, flavour == "ad"
        self.rng = random.Random(seed)
        self.serial = 0
        # DNs deleted or renamed away since the latest snapshot, which still lists them: an
        # administrator would not change them, and AD refuses a member value that names nothing.
        self.gone: set[str] = set()
        self.sample = org.sample

    def _latest(self) -> Snapshot:
        return open_store(self.org.store_url).load_snapshot()

    def _ok(self) -> None:
        assert self.conn.result["result"] == 0, self.conn.result

    def _new_user(self, dn: str | None = None) -> str:
        self.serial += 1
        name = f"sync{self.serial}{self.rng.randrange(10**6)}"
        rdn = "CN" if self.ad else "uid"
        dn = dn or f"{rdn}={name},{self.sample.people_dn}"
        if self.ad:
            self.conn.add(dn, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": name, "title": "T"})
        else:
            self.conn.add(dn, ["inetOrgPerson"], {"uid": name, "cn": name, "sn": name, "title": "T"})
        self._ok()
        return dn

    def _toggle(self, dn: str, leaver: bool) -> None:
        if self.ad:
            change = {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514" if leaver else "512"])]}
        else:
            change = {"employeeType": [(ldap3.MODIFY_REPLACE, ["leaver"] if leaver else [])]}
        self.conn.modify(dn, change)
        self._ok()

    def _settled(self, old_dn: str) -> None:
        """refint rewrites member values in the background on slapd: wait until it has."""
        deadline = time.monotonic() + 20
        while not self.ad and time.monotonic() < deadline:
            value = ldap3.utils.conv.escape_filter_chars(old_dn)
            self.conn.search(self.sample.groups_dn, f"(member={value})", attributes=["1.1"])
            if not self.conn.response:
                return
            time.sleep(0.1)

    def round(self, steps: int) -> None:
        for _ in range(steps):
            snap = self._latest()
            by_idx = {e.idx: e for e in snap.entries}
            users = [e for e in snap.entries if e.kind == USER and e.dn.lower() not in self.gone]
            groups = [e for e in snap.entries if e.is_group]
            user, group = self.rng.choice(users), self.rng.choice(groups)
            getattr(self, f"_step{self.rng.randrange(8)}")(user, group, snap, by_idx)

    def _step0(self, user, group, snap, by_idx):  # member added
        if user.idx not in snap.members[group.idx]:
            self.conn.modify(group.dn, {"member": [(ldap3.MODIFY_ADD, [user.dn])]})
            self._ok()

    def _step1(self, user, group, snap, by_idx):  # member removed
        members = [by_idx[m] for m in snap.members[group.idx] if by_idx[m].kind == USER]
        members = [m for m in members if m.dn.lower() not in self.gone]
        if len(members) > 1:
            self.conn.modify(group.dn, {"member": [(ldap3.MODIFY_DELETE, [self.rng.choice(members).dn])]})
            self._ok()

    def _step2(self, user, group, snap, by_idx):  # user deleted
        self.conn.delete(user.dn)
        self._ok()
        self.gone.add(user.dn.lower())
        self._settled(user.dn)

    def _step3(self, user, group, snap, by_idx):  # renamed (moddn), or moved out of the user base
        self.serial += 1
        rdn, value = user.dn.split(",", 1)[0].split("=", 1)
        if self.rng.random() < 0.7:
            self.conn.modify_dn(user.dn, f"{rdn}={value}r{self.serial}")
        else:
            self.conn.modify_dn(user.dn, f"{rdn}={value}", new_superior=self.sample.groups_dn)
        self._ok()
        self.gone.add(user.dn.lower())
        self._settled(user.dn)

    def _step4(self, user, group, snap, by_idx):  # re-created under the same DN: a new identity
        held = [g for g in snap.entries if g.is_group and user.idx in snap.members[g.idx]]
        self.conn.delete(user.dn)
        self._ok()
        self._settled(user.dn)
        self._new_user(user.dn)
        for g in held[:2]:
            self.conn.modify(g.dn, {"member": [(ldap3.MODIFY_ADD, [user.dn])]})

    def _step5(self, user, group, snap, by_idx):  # a new user, disabled or moved between jobs, then a member
        dn = self._new_user()
        if self.rng.random() < 0.5:
            self._toggle(dn, True)
        self.conn.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, [self.rng.choice(["A", "B"])])]})
        self.conn.modify(group.dn, {"member": [(ldap3.MODIFY_ADD, [dn])]})
        self._ok()

    def _step6(self, user, group, snap, by_idx):  # a user disabled, or enabled again
        if not self.ad:  # (on AD only the test's own users change state: the seeded org is restored by identity)
            self._toggle(user.dn, user.enabled)

    def _step7(self, user, group, snap, by_idx):  # a new grant group, or a dangling member value
        self.serial += 1
        name = f"g-sync{self.serial}"
        dn = f"{'CN' if self.ad else 'cn'}={name},{self.sample.grant_base}"
        if self.ad:
            self.conn.add(dn, ["top", "group"], {"sAMAccountName": name, "member": [user.dn]})
        else:
            self.conn.add(dn, ["groupOfNames"], {"cn": name, "member": [user.dn, f"uid=ghost{self.serial},ou=x"]})
        self._ok()


def _check_rounds(org, changer: Changer, expected_path: str, rounds: int = 3) -> None:
    first = org.run("snapshot", "take")
    assert first.code == 0, first.err
    assert "full read: first snapshot" in first.err
    store = open_store(org.store_url)
    for number in range(rounds):
        changer.round(6)
        incremental = org.run("snapshot", "take")
        assert incremental.code == 0, incremental.err
        assert f"incremental ({expected_path})" in incremental.err, incremental.err
        full = org.run("snapshot", "take", "--full")
        assert full.code == 0, full.err
        assert "the full read agrees with the incremental state" in full.err, full.err
        a, b = int(incremental.out), int(full.out)
        assert canonical(store.load_snapshot(a)) == canonical(store.load_snapshot(b)), f"round {number}"
        # The incremental counts follow from the previous snapshot's; the full read's are counted afresh.
        counts = [store.snapshot_info(n) for n in (a, b)]
        assert len({(i.users, i.grants, i.roles, i.memberships) for i in counts}) == 1, counts
    assert len(store.snapshots()) == 1 + 2 * rounds


@pytest.mark.parametrize("seed", [11, 12])
def test_incremental_equals_full_read_after_random_changes_on_slapd(org, seed):
    with ldap3.Connection(org.slapd.url, org.slapd.admin_dn, org.slapd.admin_password, auto_bind=True) as conn:
        _check_rounds(org, Changer(conn, org, "openldap", seed), "RFC 4533 content sync")


def test_incremental_equals_full_read_after_random_changes_on_slapd_into_postgresql(slapd, ldap_base, tmp_path, pg_url):
    """Into PostgreSQL, where the store's current DNs are read on a thread while the directory is."""
    org = Org(slapd, ldap_base, tmp_path, users=120, seed=7, store=pg_url)
    with ldap3.Connection(org.slapd.url, org.slapd.admin_dn, org.slapd.admin_password, auto_bind=True) as conn:
        _check_rounds(org, Changer(conn, org, "openldap", 13), "RFC 4533 content sync")


def test_incremental_equals_full_read_after_random_changes_on_samba_with_dirsync(ad_org):
    with admin_connection(ad_org.slapd) as conn:
        _check_rounds(ad_org, Changer(conn, ad_org, "ad", 21), "Active Directory DirSync", rounds=2)


def test_account_without_the_dirsync_right_reads_usnchanged_and_says_why(ad_org, ad_seed, tmp_path):
    password = "Sync-Reader-1"
    account, _sid = service_account(ad_seed.dc, "svc-dirsync", password)
    (tmp_path / "reader").mkdir()
    reader = AdOrg(ad_seed, tmp_path / "reader", bind=(account, password))
    path = "Active Directory uSNChanged; DirSync refused: insufficient rights"
    with admin_connection(ad_org.slapd) as conn:
        _check_rounds(reader, Changer(conn, reader, "ad", 22), path, rounds=1)


REPLICATE_CHANGES = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2"  # DS-Replication-Get-Changes, which DirSync needs


def test_dirsync_refused_to_a_new_bind_account_falls_back_then_starts_once_granted(ad_org, ad_seed, tmp_path):
    """The administrator's snapshot stores a DirSync cookie; a service account reading the same store
    without the right falls back to uSNChanged, and takes DirSync up once it is granted the right."""
    password = "Sync-Reader-2"
    account, sid = service_account(ad_seed.dc, "svc-granted", password)
    (tmp_path / "reader").mkdir()
    reader = AdOrg(ad_seed, tmp_path / "reader", bind=(account, password))
    groups = [g for g in reader.sample.groups if len(g.members) > 1]
    assert ad_org.run("snapshot", "take").code == 0

    def member_removed_then_read(group) -> str:
        with admin_connection(ad_org.slapd) as conn:
            conn.modify(group.dn, {"member": [(ldap3.MODIFY_DELETE, [group.members[0]])]})
        taken = reader.run("--store", ad_org.store_url, "snapshot", "take")
        assert taken.code == 0, taken.err
        return next(line.strip() for line in taken.err.splitlines() if line.strip().startswith("incremental"))

    assert member_removed_then_read(groups[0]) == (
        "incremental (Active Directory uSNChanged; DirSync refused: insufficient rights): 1 entries changed"
    )
    set_ace(ad_seed.dc, ad_seed.dc.base_dn, f"(OA;;CR;{REPLICATE_CHANGES};;{sid})")
    assert member_removed_then_read(groups[1]) == (
        "incremental (Active Directory uSNChanged; DirSync from the next snapshot on): 1 entries changed"
    )
    assert member_removed_then_read(groups[2]) == "incremental (Active Directory DirSync): 1 entries changed"
    full = reader.run("--store", ad_org.store_url, "snapshot", "take", "--full")
    assert "the full read agrees with the incremental state" in full.err, full.err
    members = {g.dn.lower(): g for g in reader.sample.groups}
    snap = open_store(ad_org.store_url).load_snapshot()
    by_idx = {e.idx: e for e in snap.entries}
    changed = [e for e in snap.entries if e.dn.lower() in {g.dn.lower() for g in groups[:3]}]
    assert len(changed) == 3
    for entry in changed:
        held = {by_idx[m].dn.lower() for m in snap.members[entry.idx]}
        assert held == {m.lower() for m in members[entry.dn.lower()].members[1:]}


def test_dirsync_follows_a_change_to_an_attribute_only_the_user_filter_tests(ad_org):
    """A user whose description now excludes them from user_filter leaves the snapshot, though no search reads it."""
    settings = ("--set", "user_filter=(&(objectClass=user)(!(description=left)))")
    assert ad_org.run(*settings, "snapshot", "take").code == 0
    user = next(u for u in ad_org.sample.users if not u.leaver)
    with admin_connection(ad_org.slapd) as conn:
        conn.modify(user.dn, {"description": [(ldap3.MODIFY_REPLACE, ["left"])]})
    taken = ad_org.run(*settings, "snapshot", "take")
    line = next(line for line in taken.err.splitlines() if line.startswith("incremental"))
    assert line.startswith("incremental (Active Directory DirSync): ") and line.endswith(", 1 gone"), line
    names = {e.name for e in open_store(ad_org.store_url).load_snapshot().entries if e.kind == USER}
    assert user.uid not in names and len(names) == len(ad_org.sample.users) - 1
    full = ad_org.run(*settings, "snapshot", "take", "--full")
    assert "the full read agrees with the incremental state" in full.err, full.err


def test_refresh_without_changes_writes_nothing_and_says_so(org):
    settings, store = load_settings(config=str(org.config), environ={}), open_store(org.store_url)
    password = lambda _text: org.slapd.admin_password  # noqa: E731
    first, how = snapshot.refresh(settings, store, prompt=password)
    assert how == "full read: first snapshot"
    again, how = snapshot.refresh(settings, store, prompt=password)
    assert how == f"incremental (RFC 4533 content sync): 0 entries changed; nothing changed since snapshot {first}"
    assert again == first and len(store.snapshots()) == 1
    user = next(u for u in org.sample.users if not u.leaver)
    org.slapd.ldapmodify(f"dn: {user.dn}\nchangetype: modify\nreplace: employeeType\nemployeeType: leaver\n\n")
    changed, how = snapshot.refresh(settings, store, prompt=password)
    assert how == "incremental (RFC 4533 content sync): 1 entries changed"
    assert changed == first + 1 == store.snapshot_info().id
    assert not next(e for e in store.load_snapshot().entries if e.name == user.uid).enabled


def test_full_read_where_no_incremental_read_is_offered(org):
    assert org.run("snapshot", "take").code == 0
    result = org.run("--set", "bulk_reader=ldap3", "snapshot", "take")
    assert result.code == 0, result.err
    assert "full read: the server offers no incremental read" in result.err
    after = org.run("snapshot", "take")
    assert "full read: the last snapshot recorded no sync state" in after.err
    changed = org.run("--set", "peer_attributes=title", "snapshot", "take")
    assert "full read: the server or the searches changed since the last snapshot" in changed.err
    back = org.run("--set", "peer_attributes=title", "snapshot", "take")
    assert "incremental (RFC 4533 content sync): 0 entries changed" in back.err


def test_incremental_snapshot_writes_only_the_changed_group(org):
    settings, store = load_settings(config=str(org.config), environ={}), open_store(org.store_url)
    password = lambda _text: org.slapd.admin_password  # noqa: E731
    snapshot.update(settings, store, prompt=password)
    group = next(g for g in org.sample.groups if len(g.members) > 1)
    org.slapd.ldapmodify(f"dn: {group.dn}\nchangetype: modify\ndelete: member\nmember: {group.members[0]}\n-\n\n")
    taken = snapshot.update(settings, store, prompt=password)
    assert taken.description == "incremental (RFC 4533 content sync): 1 entries changed"
    written = taken.written
    assert (written.added, written.changed, written.removed) == (0, 1, 0)
    full = snapshot.update(settings, store, prompt=password, full=True)
    assert full.differences == [] and full.written.nothing
    held = store.load_snapshot(written.snapshot_id)
    by_idx = {e.idx: e for e in held.entries}
    group_entry = next(e for e in held.entries if e.dn.lower() == group.dn.lower())
    assert [by_idx[m].dn.lower() for m in held.members[group_entry.idx]] == [m.lower() for m in group.members[1:]]
