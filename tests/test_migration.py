"""Plan, apply, verify, rollback against a real slapd: promises 1-5 and 7 of PRODUCT.md."""

from __future__ import annotations

import json

import pytest

from rbac_migrate.store import open_store
from tests.support.cli import assert_one_line_error

ROLE = "role-fin-accountant"


def members(org, group_dn: str) -> list[str]:
    text = org.slapd.ldapsearch(group_dn, "(objectClass=*)", "member", scope="base")
    return sorted(line.split(": ", 1)[1].lower() for line in text.splitlines() if line.startswith("member: "))


def managed_state(org) -> dict[str, list[str]]:
    """Every member value of every managed group, read over LDAP in one search."""
    found = {}
    for record in org.slapd.ldapsearch(org.sample.base_dn, "(objectClass=*)", "member").split("\n\n"):
        lines = record.strip().splitlines()
        if lines and lines[0].startswith("dn: "):
            found[lines[0][4:].lower()] = sorted(v[8:].lower() for v in lines if v.startswith("member: "))
    return {g.dn: found[g.dn.lower()] for g in org.sample.groups}


def candidates(org, n: int = 2) -> list:
    dept_title = org.sample.role_profiles[ROLE]
    return [u for u in org.sample.users if (u.department, u.title) == dept_title and not u.roles and not u.leaver][:n]


def access(org, uid: str) -> set[str]:
    return {g["grant"] for g in json.loads(org.run("access", "show", uid, "--format", "json").out)["grants"]}


def plan_file(org, tmp_path, users, *extra) -> str:
    path = tmp_path / "plan.json"
    result = org.run(
        "migrate", "plan", "--role", ROLE, "--users", ",".join(u.uid for u in users), "-o", str(path), *extra
    )
    assert result.code == 0, result.err
    return str(path)


@pytest.fixture
def ready(org):
    assert org.run("snapshot", "take").code == 0
    return org


def test_apply_moves_users_onto_the_role_without_changing_access(ready, tmp_path):
    org = ready
    users = candidates(org)
    before = {u.uid: access(org, u.uid) for u in users}
    plan = plan_file(org, tmp_path, users)
    result = org.run("migrate", "apply", plan, "--ticket", "CHG-1", "--yes")
    assert result.code == 0, result.err
    role_dn = next(g.dn for g in org.sample.groups if g.cn == ROLE)
    for user in users:
        assert user.dn.lower() in members(org, role_dn)
        for grant in user.direct_grants:
            group = next(g for g in org.sample.groups if g.cn == grant)
            assert user.dn.lower() not in members(org, group.dn)  # every direct grant is covered by the role
    assert org.run("snapshot", "take").code == 0
    for user in users:
        assert access(org, user.uid) == before[user.uid]
        shown = json.loads(org.run("access", "show", user.uid, "--format", "json").out)
        assert shown["roles"] == [ROLE]
    listing = json.loads(org.run("batches", "list", "--format", "json").out)
    assert listing[0]["id"] == 1 and listing[0]["status"] == "applied" and listing[0]["ticket"] == "CHG-1"
    records = open_store(org.store_url).audit_records()
    assert [r.action for r in records] == ["migrate.start", "migrate.unit", "migrate.unit", "batch.applied"]
    assert all(r.ticket == "CHG-1" for r in records)
    first = records[1].details["changes"]
    assert {(c["before"], c["after"]) for c in first} == {("absent", "present"), ("present", "absent")}
    assert all(c["value"] == users[0].dn for c in first)


def test_rollback_restores_every_member_value_exactly_and_twice_is_harmless(ready, tmp_path):
    org = ready
    before = managed_state(org)
    plan = plan_file(org, tmp_path, candidates(org, 3))
    assert org.run("migrate", "apply", plan, "--yes").code == 0
    assert managed_state(org) != before
    result = org.run("rollback", "1", "--yes", "--format", "json")
    assert result.code == 0, result.err
    assert {r["outcome"] for r in json.loads(result.out)} == {"restored"}
    assert managed_state(org) == before
    again = org.run("rollback", "1", "--yes", "--format", "json")
    assert again.code == 0
    assert {r["outcome"] for r in json.loads(again.out)} == {"already as before"}
    assert managed_state(org) == before
    assert json.loads(org.run("batches", "list", "--format", "json").out)[0]["status"] == "rolled_back"


def test_rollback_of_one_user_and_dry_run(ready, tmp_path):
    org = ready
    users = candidates(org, 2)
    before = managed_state(org)
    assert org.run("migrate", "apply", plan_file(org, tmp_path, users), "--yes").code == 0
    after = managed_state(org)
    dry = org.run("rollback", "1", "--user", users[0].uid, "--dry-run", "--format", "json")
    assert json.loads(dry.out) == [{"batch": 1, "user": users[0].dn, "outcome": "would restore"}]
    assert managed_state(org) == after
    assert org.run("rollback", "1", "--user", users[0].uid, "--yes").code == 0
    state = managed_state(org)
    for dn, values in state.items():
        first_in = users[0].dn.lower() in values
        assert first_in == (users[0].dn.lower() in before[dn])
        assert (users[1].dn.lower() in values) == (users[1].dn.lower() in after[dn])


def test_rollback_conflict_leaves_user_alone_unless_forced(ready, tmp_path):
    org = ready
    user = candidates(org, 1)[0]
    before = managed_state(org)
    assert org.run("migrate", "apply", plan_file(org, tmp_path, [user]), "--yes").code == 0
    grant = next(g for g in org.sample.groups if g.cn == sorted(user.direct_grants)[0])
    org.slapd.ldapmodify(f"dn: {grant.dn}\nchangetype: modify\nadd: member\nmember: {user.dn}\n\n")
    meddled = managed_state(org)
    result = org.run("rollback", "1", "--yes", "--format", "json")
    assert result.code == 4
    outcome = json.loads(result.out)[0]["outcome"]
    assert outcome.startswith("conflict:") and grant.dn in outcome
    assert managed_state(org) == meddled  # untouched
    forced = org.run("rollback", "1", "--yes", "--force")
    assert forced.code == 0, forced.err
    assert managed_state(org) == before


def test_apply_refuses_drift_naming_entry_and_value(ready, tmp_path):
    org = ready
    user = candidates(org, 1)[0]
    plan = plan_file(org, tmp_path, [user])
    grant = next(g for g in org.sample.groups if g.cn == sorted(user.direct_grants)[0])
    org.slapd.ldapmodify(f"dn: {grant.dn}\nchangetype: modify\ndelete: member\nmember: {user.dn}\n\n")
    state = managed_state(org)
    result = org.run("migrate", "apply", plan, "--yes")
    line = assert_one_line_error(
        result, "the directory changed since the plan", f"{user.uid}: the role would add access", grant.cn
    )
    assert "Traceback" not in line
    assert managed_state(org) == state
    assert org.run("batches", "list", "--format", "json").out.strip() == "[]"


def test_user_recreated_under_same_dn_is_drift(ready, tmp_path):
    org = ready
    user = candidates(org, 1)[0]
    plan = plan_file(org, tmp_path, [user])
    org.slapd.ldapdelete(user.dn)
    org.slapd.ldapadd(f"dn: {user.dn}\nobjectClass: inetOrgPerson\nuid: {user.uid}\ncn: {user.uid}\nsn: Person\n\n")
    result = org.run("migrate", "apply", plan, "--yes")
    assert_one_line_error(result, f"{user.dn} is not the entry the", "deleted and re-created")


def test_plan_refuses_gain_unless_approved(ready):
    org = ready
    outsider = next(u for u in org.sample.users if not u.leaver and not u.roles and u.department != "Finance")
    result = org.run("migrate", "plan", "--role", ROLE, "--users", outsider.uid)
    assert_one_line_error(result, f"{outsider.uid}: the role would add access", f"--allow-gain {outsider.uid}")
    ok = org.run(
        "migrate", "plan", "--role", ROLE, "--users", outsider.uid, "--allow-gain", outsider.uid, "--format", "json"
    )
    assert ok.code == 0
    subject = json.loads(ok.out)["units"][0]["subjects"][0]
    assert set(subject["after"]) - set(subject["before"])


def test_guard_rails(ready, tmp_path):
    org = ready
    users = candidates(org, 3)
    names = ",".join(u.uid for u in users)
    result = org.run("--set", "max_batch_size=2", "migrate", "plan", "--role", ROLE, "--users", names)
    assert_one_line_error(result, "exceed max_batch_size 2")
    result = org.run("--set", f"protected_accounts={users[0].uid}", "migrate", "plan", "--role", ROLE, "--users", names)
    assert_one_line_error(result, f"{users[0].uid} is a protected account")
    result = org.run("--set", "max_removals_per_run=3", "migrate", "plan", "--role", ROLE, "--users", names)
    assert_one_line_error(result, "more than max_removals_per_run 3")
    plan_path = plan_file(org, tmp_path, users[:1])
    plan = json.loads(open(plan_path).read())
    plan["units"][0]["edits"][-1]["group"]["dn"] = "cn=admins," + org.sample.base_dn
    open(plan_path, "w").write(json.dumps(plan))
    result = org.run("migrate", "apply", plan_path, "--yes")
    assert_one_line_error(result, "is not a plan this store wrote, or it was edited since")
    leaver = next(u for u in org.sample.users if u.leaver)
    assert_one_line_error(org.run("migrate", "plan", "--role", ROLE, "--users", leaver.uid), "is disabled")


def test_plan_formats_and_verify_after_ldapmodify(ready, tmp_path):
    org = ready
    users = candidates(org, 2)
    plan = plan_file(org, tmp_path, users)
    table = org.run("migrate", "plan", "--role", ROLE, "--users", ",".join(u.uid for u in users)).out
    assert "delete" in table and "add" in table
    ldif = org.run("migrate", "plan", "--role", ROLE, "--users", ",".join(u.uid for u in users), "--format", "ldif").out
    assert "replace:" not in ldif and "add: member" in ldif and "delete: member" in ldif
    org.slapd.ldapmodify(ldif)
    result = org.run("migrate", "verify", plan)
    assert result.code == 0, result.out + result.err
    assert "access is as planned" in result.err


def test_batch_size_picks_safe_candidates(ready):
    org = ready
    result = org.run("migrate", "plan", "--role", ROLE, "--batch-size", "2", "--format", "json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert len(plan["units"]) == 2
    assert all(s["before"] == s["after"] for u in plan["units"] for s in u["subjects"])


def test_status_and_batches_show(ready, tmp_path):
    org = ready
    assert org.run("migrate", "apply", plan_file(org, tmp_path, candidates(org, 2)), "--yes").code == 0
    rows = json.loads(org.run("migrate", "status", "--format", "json").out)
    row = next(r for r in rows if r["role"] == ROLE)
    assert row["migrated"] == 2 and row["batches"] == 1
    shown = json.loads(org.run("batches", "show", "1", "--format", "json").out)
    assert {s["step_state"] for s in shown} == {"applied"}
    assert {s["user_state"] for s in shown} == {"verified"}


def test_writes_need_confirmation_without_a_terminal(ready, tmp_path):
    org = ready
    plan = plan_file(org, tmp_path, candidates(org, 1))
    assert_one_line_error(org.run("migrate", "apply", plan), "add --yes", code=2)
    assert org.run("batches", "list", "--format", "json").out.strip() == "[]"


def test_unrelated_concurrent_changes_survive_apply_and_rollback(ready, tmp_path):
    """Value-level writes only: values someone else adds meanwhile are never swept away."""
    org = ready
    user = candidates(org, 1)[0]
    plan = plan_file(org, tmp_path, [user])
    role_dn = next(g.dn for g in org.sample.groups if g.cn == ROLE)
    grant_dn = next(g.dn for g in org.sample.groups if g.cn == sorted(user.direct_grants)[0])
    # An existing account: AD refuses member values that name no entry.
    taken = {m for g in org.sample.groups if g.dn in (role_dn, grant_dn) for m in g.members}
    stranger = next(u.dn for u in org.sample.users if u.dn not in taken).lower()
    for dn in (role_dn, grant_dn):
        org.slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\nadd: member\nmember: {stranger}\n\n")
    assert org.run("migrate", "apply", plan, "--yes").code == 0
    assert stranger in members(org, role_dn) and stranger in members(org, grant_dn)
    assert org.run("rollback", "1", "--yes").code == 0
    assert stranger in members(org, role_dn) and stranger in members(org, grant_dn)


def test_rollback_point_is_written_before_the_first_write(ready, tmp_path):
    from tests.test_interruption import apply_in_subprocess

    org = ready
    users = candidates(org, 2)
    plan = plan_file(org, tmp_path, users)
    state = managed_state(org)
    killed = apply_in_subprocess(org, plan, 1)  # SIGKILL just before the first LDAP write
    assert killed.returncode == -9
    assert managed_state(org) == state
    batch = open_store(org.store_url).batch(1)
    assert [u.user_dn for u in batch.users] == [u.dn for u in users]
    assert all(u.before_access for u in batch.users)
    planned = json.loads(open(plan).read())
    assert len(batch.steps) == sum(len(u["edits"]) for u in planned["units"])
    assert {s.state for s in batch.steps} <= {"pending", "inflight"}


def _on_terminal(org, answer: str, *args: str):
    """Run the CLI with a real terminal on stdin/stderr; answer its question; return (code, screen)."""
    import os
    import pty
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")}
    env.update(org.env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rbac_migrate", *args], stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in screen and time.monotonic() < deadline:
        screen += os.read(master, 4096)
    os.write(master, answer.encode() + b"\n")
    code = proc.wait(timeout=60)
    os.close(master)
    return code, screen.decode()


def test_apply_on_a_terminal_shows_the_changes_and_asks(ready, tmp_path):
    org = ready
    user = candidates(org, 1)[0]
    plan = plan_file(org, tmp_path, [user])
    state = managed_state(org)
    code, screen = _on_terminal(org, "n", "migrate", "apply", plan)
    assert code != 0 and "delete" in screen and user.uid in screen and "Move 1 users onto" in screen
    assert managed_state(org) == state
    code, screen = _on_terminal(org, "y", "migrate", "apply", plan)
    assert code == 0
    assert managed_state(org) != state
    code, screen = _on_terminal(org, "y", "rollback", "1")
    assert code == 0 and "would restore" in screen
    assert managed_state(org) == state


def test_unknown_batch_is_one_line(ready):
    assert_one_line_error(ready.run("rollback", "99", "--yes"), "no batch 99")
    assert_one_line_error(ready.run("migrate", "resume", "99", "--yes"), "no batch 99")
    assert_one_line_error(ready.run("batches", "show", "99"), "no batch 99")
