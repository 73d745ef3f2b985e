"""The toolkit against a real Samba AD domain controller: the ``ad`` flavour end to end.

The safety tests of test_migration.py and test_interruption.py run here a second time, unchanged,
with ``org`` bound to the AD org seeded once per session (tests/support/ad.py).
"""

from __future__ import annotations

import json
import os
import pwd
import random
import uuid
from collections.abc import Iterator

import ldap3
import pytest
import yaml

from rbac_migrate.config import load_settings
from rbac_migrate.demo.sandbox import NotInstalledError
from rbac_migrate.directory import Directory, connect
from rbac_migrate.directory.ad import primary_group_members
from rbac_migrate.store import open_store
from tests.support.ad import AdOrg, admin_connection, delegate_member_writes, extended_dn, service_account
from tests.support.cli import assert_one_line_error, write_config
from tests.support.samba import NeedsRootError, SambaDC, check_can_run
from tests.support.skips import unavailable
from tests.test_engine import (  # noqa: F401 - collected here again, against AD
    test_every_kind_of_write_is_a_batch_that_rollback_undoes_exactly,
    test_several_batches_roll_back_newest_first,
)
from tests.test_interruption import (  # noqa: F401 - collected here again, against AD
    apply_in_subprocess,
    kill_at_write_points,
    test_slapd_restarted_mid_batch_then_resume,
)
from tests.test_migration import (  # noqa: F401 - collected here again, against AD
    ROLE,
    candidates,
    managed_state,
    members,
    plan_file,
    ready,
    test_apply_moves_users_onto_the_role_without_changing_access,
    test_apply_on_a_terminal_shows_the_changes_and_asks,
    test_apply_refuses_drift_naming_entry_and_value,
    test_batch_size_picks_safe_candidates,
    test_guard_rails,
    test_plan_formats_and_verify_after_ldapmodify,
    test_plan_refuses_gain_unless_approved,
    test_rollback_conflict_leaves_user_alone_unless_forced,
    test_rollback_of_one_user_and_dry_run,
    test_rollback_point_is_written_before_the_first_write,
    test_rollback_restores_every_member_value_exactly_and_twice_is_harmless,
    test_status_and_batches_show,
    test_unrelated_concurrent_changes_survive_apply_and_rollback,
    test_user_recreated_under_same_dn_is_drift,
    test_writes_need_confirmation_without_a_terminal,
)
from tests.test_remediation import (  # noqa: F401 - collected here again, against AD
    test_every_leaver_grant_is_removed_in_small_batches_touching_nothing_else,
)


@pytest.fixture
def org(ad_org: AdOrg) -> AdOrg:
    """The shared tests' ``org``, here the seeded AD org."""
    return ad_org


@pytest.fixture
def directory(org: AdOrg) -> Iterator[Directory]:
    with connect(load_settings(config=str(org.config), environ={}), org.slapd.admin_password) as conn:
        yield conn


def guids_by_samba(org: AdOrg) -> dict[str, str]:
    """objectGUID of each sample user as Samba itself spells it."""
    with admin_connection(org.slapd) as conn:
        return {u.dn.lower(): extended_dn(conn, u.dn)[0] for u in org.sample.users}


# -- the journey --------------------------------------------------------------------------


def test_check_reports_active_directory_without_transactions(org):
    result = org.run("check", "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert "(Active Directory)" in report["server"]
    assert report["users"] == len(org.sample.users)
    assert report["disabled users"] == sum(u.leaver for u in org.sample.users)
    assert report["grant groups"] == sum(g.kind == "grant" for g in org.sample.groups)
    assert report["LDAP transactions"] is False
    assert report["nested memberOf"] is True


def test_snapshot_identity_disabled_users_and_foreign_members(org):
    assert org.run("snapshot", "take").code == 0
    snap = open_store(org.store_url).load_snapshot()
    users = {e.name: e for e in snap.entries if e.kind == "user"}
    assert set(users) == {u.uid for u in org.sample.users}
    samba = guids_by_samba(org)
    assert {e.dn.lower(): e.uuid for e in users.values()} == samba
    assert all(str(uuid.UUID(guid)) == guid for guid in samba.values())
    disabled = {name for name, e in users.items() if not e.enabled}
    assert disabled == {u.uid for u in org.sample.users if u.leaver}
    first = org.sample.users[0]
    assert users[first.uid].attrs == {"department": first.department, "title": first.title}
    dangling = {e.dn.lower() for e in snap.entries if e.kind == "dangling"}
    assert dangling == {dn.lower() for _group, dn in org.sample.planted["dangling"]}
    assert all(",cn=foreignsecurityprincipals," in dn for dn in dangling)


def test_access_show_and_explain_follow_nested_groups(org):
    assert org.run("snapshot", "take").code == 0
    for user in random.Random(3).sample(org.sample.users, 15):
        shown = json.loads(org.run("access", "show", user.uid, "--format", "json").out)
        assert {g["grant"] for g in shown["grants"]} == set(org.effective_grants(user.uid)), user.uid
        assert set(shown["roles"]) == set(user.roles)
    parent, child = org.sample.planted["nested"][0]
    nested = next(u for u in org.sample.users if child in u.direct_grants and parent not in u.direct_grants)
    result = org.run("access", "explain", nested.uid, parent, "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["paths"][0]["path"] == f"{nested.uid} → {child} → {parent}"


def test_apply_adds_the_role_before_removing_any_grant(org, tmp_path):
    """No transactions on AD: killed after the first write, the user holds the role and every grant."""
    assert org.run("snapshot", "take").code == 0
    user = candidates(org, 1)[0]
    plan = plan_file(org, tmp_path, [user])
    before = managed_state(org)
    role_dn = next(g.dn for g in org.sample.groups if g.cn == ROLE)
    killed = apply_in_subprocess(org, plan, 2)  # SIGKILL just after the first LDAP write
    assert killed.returncode == -9, killed.stderr
    state = managed_state(org)
    assert state[role_dn] == sorted([*before[role_dn], user.dn.lower()])
    assert {dn: v for dn, v in state.items() if dn != role_dn} == {dn: v for dn, v in before.items() if dn != role_dn}
    resumed = org.run("migrate", "resume", "1", "--yes")
    assert resumed.code == 0, resumed.err
    steps = open_store(org.store_url).batch(1).steps
    assert {s.state for s in steps} == {"applied"}
    assert org.run("rollback", "1", "--yes").code == 0
    assert managed_state(org) == before


def test_killed_at_write_points_then_resumed_or_rolled_back(org, tmp_path):
    # Without transactions every value is a write of its own: every one of them is a kill point.
    kill_at_write_points(org, tmp_path, "off")


def test_joiner_proposal_and_orphan_report(org):
    assert org.run("snapshot", "take").code == 0
    joiner = candidates(org, 1)[0]
    proposal = org.run("joiner", "propose", joiner.uid, "--format", "json")
    assert proposal.code == 0, proposal.err
    assert ROLE in proposal.out
    result = org.run("report", "orphans", "--format", "json")
    assert result.code == 0, result.err
    findings = json.loads(result.out)["findings"]
    dangling = {(f["group"], f["member_value"].lower()) for f in findings if f["category"] == "dangling-member"}
    assert dangling == {(cn, dn.lower()) for cn, dn in org.sample.planted["dangling"]}
    leavers = {f["user_id"] for f in findings if f["category"] == "leaver-grant"}
    assert leavers == {u.uid for u in org.sample.users if u.leaver}


def test_a_service_account_that_may_only_write_member_migrates_and_rolls_back(org, ad_seed, tmp_path):
    dc = org.slapd
    password = "Service-Account-1"
    svc_dn, sid = service_account(dc, f"svc-{uuid.uuid4().hex[:8]}", password)
    delegate_member_writes(dc, org.sample.groups_dn, sid)
    (tmp_path / "svc").mkdir()
    svc = AdOrg(ad_seed, tmp_path / "svc", bind=(svc_dn, password))
    assert svc.run("snapshot", "take").code == 0
    before = managed_state(org)
    applied = svc.run("migrate", "apply", plan_file(svc, tmp_path, candidates(org, 2)), "--yes")
    assert applied.code == 0, applied.err
    assert managed_state(org) != before
    assert svc.run("rollback", "1", "--yes").code == 0
    assert managed_state(org) == before
    # Everything else stays out of reach: a group outside the managed subtree, any user attribute.
    admins, user = f"CN=Domain Admins,CN=Users,{dc.base_dn}", org.sample.users[0].dn
    with ldap3.Connection(dc.url.removeprefix("ldap://"), svc_dn, password, auto_bind=True) as conn:
        assert not conn.modify(admins, {"member": [(ldap3.MODIFY_ADD, [svc_dn])]})
        assert conn.result["result"] == 50
        assert not conn.modify(user, {"title": [(ldap3.MODIFY_REPLACE, ["Chief Everything"])]})
        assert conn.result["result"] == 50


# -- AD specifics in the directory layer ------------------------------------------------------


def test_member_ranges_are_read_to_the_end(org, directory):
    big = max(org.sample.groups, key=lambda g: len(g.members))
    want = sorted(m.lower() for m in big.members)
    assert len(want) > 40
    for paged in (False, True):  # through ldap3, and through the bulk reader when installed
        found = dict(directory.search_raw(big.dn, "(objectClass=*)", ["member;range=0-9", "cn"], "base", paged))
        attrs = found[big.dn]
        assert set(attrs) == {"cn", "member"}
        assert sorted(v.decode().lower() for v in attrs["member"]) == want


def test_a_range_past_the_last_value_is_empty(org, directory):
    group = next(g for g in org.sample.groups if len(g.members) > 3)
    count = len(group.members)
    attrs = directory.read_entry(group.dn, [f"member;range={count}-{count + 9}"])
    assert attrs == {"member": []}
    attrs = directory.read_entry(group.dn, [f"member;range={count - 1}-*"])
    assert len(attrs["member"]) == 1


def test_primary_group_members_are_found_though_member_omits_them(org, directory):
    grant = next(g for g in org.sample.groups if g.kind == "grant" and len(g.members) > 3)
    dn = f"CN=primary-test,{org.sample.people_dn}"
    with admin_connection(org.slapd) as conn:
        conn.add(dn, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": "primary-test"})
        conn.modify(grant.dn, {"member": [(ldap3.MODIFY_ADD, [dn])]})
        conn.search(grant.dn, "(objectClass=*)", ldap3.BASE, attributes=["primaryGroupToken"])
        token = conn.response[0]["raw_attributes"]["primaryGroupToken"][0]
        conn.modify(dn, {"primaryGroupID": [(ldap3.MODIFY_REPLACE, [token])]})
    settings = load_settings(config=str(org.config), environ={})
    assert primary_group_members(directory, settings) == [(dn, grant.dn)]
    # AD drops the member value once the group is primary: the membership is invisible to a snapshot.
    assert dn.lower() not in members(org, grant.dn)
    checked = json.loads(org.run("check", "--format", "json").out)
    assert checked["primary-group members (never changed)"] == 1


# -- the harness ------------------------------------------------------------------------------


def test_harness_says_it_needs_root(tmp_path):
    """Run as nobody in a forked child when we are root, else as ourselves."""
    try:
        check_can_run()
    except NeedsRootError:
        pass
    except NotInstalledError as exc:
        unavailable(str(exc))
    reader, writer = os.pipe()
    child = os.fork() if os.geteuid() == 0 else None
    if child == 0:
        try:
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            SambaDC(workdir=tmp_path).start()
            message = "started"
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
        os.write(writer, message.encode())
        os._exit(0)
    if child is None:
        with pytest.raises(NeedsRootError) as raised:
            SambaDC(workdir=tmp_path).start()
        message = f"{raised.type.__name__}: {raised.value}"
    else:
        os.waitpid(child, 0)
        message = os.read(reader, 4096).decode()
    assert message == "NeedsRootError: a throwaway Samba AD DC needs root: samba-tool and samba refuse to run otherwise"


def test_ldaps_checks_the_dc_certificate(org, tmp_path):
    url = org.slapd.ldaps_url
    settings = {**yaml.safe_load(org.config.read_text()), "url": url, "tls": "ldaps"}
    untrusted = write_config(tmp_path / "untrusted.yml", **settings)
    result = org.run("--config", str(untrusted), "check")
    assert_one_line_error(result, f"the certificate of {url}:636 is not trusted", "set tls_ca_file")
    named = write_config(tmp_path / "named.yml", **settings, tls_ca_file=str(org.slapd.ca_file))
    result = org.run("--config", str(named), "check")
    assert_one_line_error(result, f"the certificate of {url}:636 is issued for other host names")
