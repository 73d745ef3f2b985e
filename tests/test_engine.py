"""The one write engine, attacked through every kind of write it carries out, on a real slapd.

"Restored exactly" is judged by reading every group under the test's subtree over LDAP with
ldapsearch, independently of rbac-migrate's own readers.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from rbac_migrate.store import open_store
from tests.support.cli import assert_one_line_error
from tests.test_migration import candidates, plan_file
from tests.test_roles import grant_dn, newcomer, role_dn, store_of


def groups_state(org) -> dict[str, list[str]]:
    """Every group entry under the org with its member values, as ldapsearch prints them."""
    found = {}
    text = org.slapd.ldapsearch(
        org.sample.base_dn, "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))", "member"
    )
    for record in text.split("\n\n"):
        lines = record.strip().splitlines()
        if lines and lines[0].startswith("dn: "):
            found[lines[0][4:].lower()] = sorted(v[7:].strip().lower() for v in lines if v.startswith("member:"))
    return found


def batches(org) -> list[dict]:
    return json.loads(org.run("batches", "list", "--format", "json").out)


@pytest.fixture
def ready(org):
    assert org.run("snapshot", "take").code == 0
    return org


def test_every_kind_of_write_is_a_batch_that_rollback_undoes_exactly(ready):
    org = ready
    user, (g1, g2) = newcomer(org)
    before = groups_state(org)
    steps = [
        ("role", "create", "role-e", "--grant", g1, "--ticket", "T-1", "--yes"),
        ("role", "add-grant", "role-e", g2, "--ticket", "T-2", "--yes"),
        ("joiner", "onboard", user.uid, "--role", "role-e", "--ticket", "T-3", "--yes"),
    ]
    states = [before]
    for args in steps:
        result = org.run(*args)
        assert result.code == 0, result.err
        states.append(groups_state(org))
    assert [(b["id"], b["kind"], b["status"]) for b in batches(org)] == [
        (1, "role-create", "applied"),
        (2, "role-add-grant", "applied"),
        (3, "onboard", "applied"),
    ]
    assert user.dn.lower() in states[3][role_dn(org, "role-e").lower()]
    for batch in (3, 2, 1):
        result = org.run("rollback", str(batch), "--ticket", f"UNDO-{batch}", "--yes")
        assert result.code == 0, result.err
        assert groups_state(org) == states[batch - 1], f"rollback {batch}"
    assert [b["status"] for b in batches(org)] == ["rolled_back"] * 3
    records = store_of(org).audit_records()
    undo = [r for r in records if r.action == "rollback"]
    assert [(r.details["batch"], r.ticket) for r in undo] == [(3, "UNDO-3"), (2, "UNDO-2"), (1, "UNDO-1")]
    assert all(r.details["changes"] for r in undo)
    assert store_of(org).roles.find("role-e") is None  # the catalogue followed the directory back


def test_role_delete_is_undone_by_recreating_the_role_with_its_nesting(ready):
    org = ready
    _, (g1, g2) = newcomer(org)
    assert org.run("role", "create", "role-d", "--grant", g1, "--grant", g2, "--yes").code == 0
    created = groups_state(org)
    assert org.run("role", "delete", "role-d", "--yes").code == 0
    assert role_dn(org, "role-d").lower() not in groups_state(org)
    result = org.run("rollback", "2", "--yes")
    assert result.code == 0, result.err
    assert groups_state(org) == created
    assert org.run("role", "show", "role-d", "--format", "json").code == 0


def test_several_batches_roll_back_newest_first(ready):
    org = ready
    user, (g1, _) = newcomer(org)
    before = groups_state(org)
    assert org.run("role", "create", "role-m", "--grant", g1, "--yes").code == 0
    assert org.run("joiner", "onboard", user.uid, "--role", "role-m", "--yes").code == 0
    result = org.run("rollback", "1", "2", "--yes", "--format", "json")
    assert result.code == 0, result.err
    assert [row["batch"] for row in json.loads(result.out)] == [2, 1]
    assert groups_state(org) == before


def test_a_journal_row_pointing_outside_the_bases_is_never_written(ready, tmp_path):
    org = ready
    users = candidates(org, 1)
    assert org.run("migrate", "apply", plan_file(org, tmp_path, users), "--yes").code == 0
    outside = f"cn=admins,{org.sample.base_dn}"
    org.slapd.ldapadd(f"dn: {outside}\nobjectClass: groupOfNames\ncn: admins\nmember: {users[0].dn}\n\n")
    store = open_store(org.store_url)
    from sqlalchemy import text

    with store.begin() as conn:
        conn.execute(
            text("UPDATE batch_steps SET group_dn = :dn WHERE batch_id = 1 AND op = 'delete'"), {"dn": outside}
        )
    state = groups_state(org)
    result = org.run("rollback", "1", "--yes")
    assert_one_line_error(result, f"{outside} is outside grant_base and role_base")
    assert groups_state(org) == state


def test_a_journal_row_naming_a_protected_account_is_never_written(ready, tmp_path):
    org = ready
    users = candidates(org, 1)
    assert org.run("migrate", "apply", plan_file(org, tmp_path, users), "--yes").code == 0
    state = groups_state(org)
    result = org.run("--set", f"protected_accounts={users[0].uid}", "rollback", "1", "--yes")
    assert_one_line_error(result, f"{users[0].dn} is a protected account")
    assert groups_state(org) == state


def test_protected_by_dn_with_hex_escapes_and_by_id(ready):
    org = ready
    user, (g1, _) = newcomer(org)
    assert org.run("role", "create", "role-p", "--grant", g1, "--yes").code == 0
    rdn_value = user.uid
    escaped = (
        "uid=" + "".join(f"\\{ord(c):02x}" for c in rdn_value[:1]) + rdn_value[1:] + "," + user.dn.split(",", 1)[1]
    )
    for protected in (user.uid, user.dn, escaped):
        result = org.run(
            "--set", f"protected_accounts={protected}", "joiner", "onboard", user.uid, "--role", "role-p", "--yes"
        )
        assert_one_line_error(result, "is a protected account")
    assert user.dn.lower() not in groups_state(org)[role_dn(org, "role-p").lower()]


def test_role_commands_obey_the_removal_cap_and_the_operator_lock(ready):
    org = ready
    user, (g1, g2) = newcomer(org)
    assert org.run("role", "create", "role-c", "--grant", g1, "--grant", g2, "--yes").code == 0
    capped = org.run("--set", "max_removals_per_run=1", "role", "remove-grant", "role-c", g1, g2, "--yes")
    assert_one_line_error(capped, "2 member values would be deleted, more than max_removals_per_run 1")
    store = open_store(org.store_url)
    from sqlalchemy import text

    other = f"{socket.gethostname()}:{os.getppid()}"  # a live process that is not this one
    with store.begin() as conn:
        conn.execute(
            text("INSERT INTO locks (name, holder, since) VALUES ('migration', :h, CURRENT_TIMESTAMP)"), {"h": other}
        )
    state = groups_state(org)
    locked = org.run("joiner", "onboard", user.uid, "--role", "role-c", "--yes")
    assert_one_line_error(locked, "another operator", "wait for it to finish")
    assert groups_state(org) == state
    assert role_dn(org, "role-c").lower() in groups_state(org)[grant_dn(org, g1).lower()]


def test_a_plan_file_the_store_did_not_write_or_already_applied_is_refused(ready, tmp_path):
    org = ready
    users = candidates(org, 1)
    plan = plan_file(org, tmp_path, users)
    copy = tmp_path / "copy.json"
    copy.write_text(open(plan).read().replace('"title": "', '"title": "x', 1))
    assert_one_line_error(
        org.run("apply", str(copy), "--yes"), "is not a plan this store wrote, or it was edited since"
    )
    applied = org.run("apply", plan, "--yes")
    assert applied.code == 0, applied.err
    again = org.run("migrate", "apply", plan, "--yes")
    assert_one_line_error(again, "was already applied as batch 1")


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"schema": "rbac-migrate/change-set", "version": 2, "kind": "migrate", "units": [', "is not a change set"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not a change set"),
        (
            b'{"schema": "rbac-migrate/change-set", "version": 2, "kind": "migrate", "intent": [], "units": []}',
            "intent must be an object",
        ),
        (
            b'{"schema": "rbac-migrate/change-set", "version": 2, "kind": "migrate", "intent": {}, '
            b'"units": [{"edits": 3}]}',
            "units[0].edits must be a list",
        ),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"version": 1, "users": [], "role": {}}', "is not a change set written by rbac-migrate"),
    ],
)
def test_malformed_plan_files_get_one_clear_line(org, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert_one_line_error(org.run("apply", str(path), "--yes"), message)


def test_waves_never_plan_a_user_twice_and_ignore_unrelated_hand_changes(ready, tmp_path):
    from tests.test_migration import ROLE

    org = ready
    first = org.run("migrate", "apply", "--role", ROLE, "--batch-size", "2", "--yes")
    assert first.code == 0, first.err
    migrated = {u["dn"].lower() for u in store_of(org).batch(1).plan["intent"]["users"]}
    assert len(migrated) == 2
    plan = tmp_path / "wave2.json"
    second = org.run("migrate", "plan", "--role", ROLE, "--batch-size", "3", "-o", str(plan))  # no snapshot taken
    assert second.code == 0, second.err
    planned = {u["dn"].lower() for u in json.loads(plan.read_text())["intent"]["users"]}
    assert planned and not planned & migrated
    # A hand change to someone outside the wave, in a group the wave touches, between plan and apply.
    touched = next(e["group"]["dn"] for u in json.loads(plan.read_text())["units"] for e in u["edits"])
    stranger = next(u.dn for u in org.sample.users if u.dn.lower() not in planned | migrated and u.leaver)
    org.slapd.ldapmodify(f"dn: {touched}\nchangetype: modify\nadd: member\nmember: {stranger}\n\n")
    applied = org.run("migrate", "apply", str(plan), "--yes")
    assert applied.code == 0, applied.err
    assert stranger.lower() in groups_state(org)[touched.lower()]


def test_plans_read_a_fresh_snapshot_first_unless_told_not_to(org, tmp_path):
    """The admin's loop needs no manual snapshot: a role created a moment ago is planned onto."""
    from tests.test_migration import ROLE, candidates

    assert org.run("snapshot", "take").code == 0
    user = candidates(org, 1)[0]
    grants = sorted(user.direct_grants)[:2]
    assert org.run("role", "create", "role-fresh", "--grant", grants[0], "--grant", grants[1], "--yes").code == 0
    stale = org.run("migrate", "plan", "--role", "role-fresh", "--users", user.uid, "--no-refresh")
    assert_one_line_error(stale, "role-fresh")
    fresh = org.run("migrate", "plan", "--role", "role-fresh", "--users", user.uid, "-o", str(tmp_path / "p.json"))
    assert fresh.code == 0, fresh.err
    assert "planned from snapshot 2: incremental" in fresh.err
    assert org.run("apply", str(tmp_path / "p.json"), "--yes").code == 0
    again = org.run("migrate", "plan", "--role", ROLE, "--batch-size", "1", "--format", "json")
    assert again.code == 0, again.err
    assert "planned from snapshot 3" in again.err  # the applied wave was read back before planning


def test_rollback_that_would_empty_a_group_keeps_it_open_with_the_empty_dn(ready, tmp_path):
    """Someone emptied the role by hand but for the migrated user: rollback cannot leave it memberless."""
    from tests.test_migration import ROLE

    org = ready
    user = candidates(org, 1)[0]
    assert org.run("migrate", "apply", plan_file(org, tmp_path, [user]), "--yes").code == 0
    role = role_dn(org, ROLE).lower()
    others = [v for v in groups_state(org)[role] if v != user.dn.lower()]
    for value in others:
        org.slapd.ldapmodify(f"dn: {role}\nchangetype: modify\ndelete: member\nmember: {value}\n\n")
    assert groups_state(org)[role] == [user.dn.lower()]
    result = org.run("rollback", "1", "--yes")
    assert result.code == 0, result.err
    state = groups_state(org)
    assert state[role] == [""]
    for grant in user.direct_grants:
        assert user.dn.lower() in state[grant_dn(org, grant).lower()]
