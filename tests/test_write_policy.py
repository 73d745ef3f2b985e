"""Store-wide write policy (require_ticket, require_approval) and migrate status agreeing with report progress."""

from __future__ import annotations

import json

from tests.support.cli import assert_one_line_error
from tests.test_migration import ROLE, candidates, members, plan_file
from tests.test_onboarding import _newbie
from tests.test_roles import role_dn, store_of


def test_migrate_status_counts_what_report_progress_counts(org, tmp_path):
    assert org.run("snapshot", "take").code == 0
    assert org.run("migrate", "apply", plan_file(org, tmp_path, candidates(org, 2)), "--yes").code == 0
    assert org.run("snapshot", "take").code == 0
    status = org.run("migrate", "status", "--format", "json")
    assert status.code == 0, status.err
    assert "still_direct: holders who still hold a grant the role gives directly" in status.err
    progress = json.loads(org.run("report", "progress", "--format", "json").out)["roles"]
    keys = ("holders", "still_direct", "migrated", "batches")
    mine = {r["role"]: tuple(r[k] for k in keys) for r in json.loads(status.out)}
    theirs = {r["role"]: tuple(r[k] for k in keys) for r in progress}
    assert mine == theirs
    assert mine[ROLE][2:] == (2, 1)


def test_require_ticket_makes_every_write_ask_for_one(org, tmp_path):
    g = sorted(g.cn for g in org.sample.groups if g.kind == "grant")[0]
    strict = ("--set", "require_ticket=true")
    user = candidates(org, 1)[0]
    for args in (
        ("role", "create", "role-tk", "--grant", g, "--yes"),
        ("role", "add-grant", ROLE, g, "--yes"),
        ("role", "remove-grant", ROLE, g, "--yes"),
        ("role", "delete", ROLE, "--yes"),
        ("role", "sync", ROLE, "--yes"),
        ("joiner", "onboard", user.uid, "--role", ROLE, "--yes"),
        ("migrate", "apply", "--role", ROLE, "--batch-size", "1", "--yes"),
    ):
        result = org.run(*strict, *args)
        assert_one_line_error(result, "requires --ticket REF for every write", code=2)
    assert not org.slapd.exists(role_dn(org, "role-tk"))
    assert store_of(org).batches() == []
    done = org.run(*strict, "role", "create", "role-tk", "--grant", g, "--ticket", "CHG-1", "--yes")
    assert done.code == 0, done.err
    assert_one_line_error(org.run(*strict, "rollback", "1", "--yes"), "requires --ticket REF", code=2)
    assert org.slapd.exists(role_dn(org, "role-tk"))


def test_require_approval_needs_a_second_operator(org, tmp_path):
    assert org.run("snapshot", "take").code == 0
    users = candidates(org, 1)
    path = plan_file(org, tmp_path, users)
    strict = ("--set", "require_approval=true")
    role = next(g.dn for g in org.sample.groups if g.cn == ROLE)
    before = members(org, role)

    unapproved = org.run(*strict, "migrate", "apply", path, "--yes")
    assert_one_line_error(unapproved, f"{path} is not approved", "migrate approve", code=2)
    direct = org.run(*strict, "migrate", "apply", "--role", ROLE, "--batch-size", "1", "--yes")
    assert_one_line_error(direct, "requires approval (require_approval: true)", code=2)
    assert members(org, role) == before

    own = org.run(*strict, "migrate", "approve", path)
    assert_one_line_error(own, "another operator must approve it (four eyes)", code=2)
    org.env["RBAC_MIGRATE_OPERATOR"] = "second-pair-of-eyes"
    approved = org.run(*strict, "migrate", "approve", path, "--ticket", "CHG-5")
    assert approved.code == 0, approved.err
    records = store_of(org).audit_records()
    assert [(r.action, r.operator.split("@")[0], r.ticket) for r in records] == [
        ("plan.approve", "second-pair-of-eyes", "CHG-5")
    ]
    applied = org.run(*strict, "migrate", "apply", path, "--yes")
    assert applied.code == 0, applied.err
    assert users[0].dn.lower() in members(org, role)


def test_role_changes_under_require_approval_go_through_a_plan_another_operator_approved(org, tmp_path):
    """Four eyes cover the role commands and onboarding too: each writes a plan file with -o
    instead, which is applied only once a second operator approved it; a direct change is refused
    and writes nothing."""
    strict = ("--set", "require_approval=true")
    grants = {g.cn: g.dn for g in org.sample.groups if g.kind == "grant"}
    role = role_dn(org, ROLE)
    held = sorted(cn for cn, dn in grants.items() if role.lower() in members(org, dn))
    extra = sorted(cn for cn, dn in grants.items() if role.lower() not in members(org, dn))[0]
    for args in (
        ("role", "create", "role-ap", "--grant", extra, "--yes"),
        ("role", "add-grant", ROLE, extra, "--yes"),
        ("role", "remove-grant", ROLE, held[0], "--yes"),
        ("role", "delete", ROLE, "--yes"),
    ):
        assert_one_line_error(org.run(*strict, *args), "requires approval (require_approval: true)", code=2)
    assert store_of(org).batches() == [] and not org.slapd.exists(role_dn(org, "role-ap"))
    assert role.lower() not in members(org, grants[extra])

    def approved(args: tuple, name: str) -> str:
        """The plan file a first operator writes and a second approves."""
        path = str(tmp_path / f"{name}.json")
        org.env.pop("RBAC_MIGRATE_OPERATOR", None)
        wrote = org.run(*strict, *args, "-o", path)
        assert wrote.code == 0 and f"wrote {path}" in wrote.err, wrote.err
        assert_one_line_error(org.run(*strict, "apply", path, "--yes"), f"{path} is not approved", code=2)
        org.env["RBAC_MIGRATE_OPERATOR"] = "second-pair-of-eyes"
        assert org.run(*strict, "migrate", "approve", path).code == 0
        return path

    path = approved(("role", "add-grant", ROLE, extra), "add")
    assert role.lower() not in members(org, grants[extra])  # nothing written before the apply
    applied = org.run(*strict, "apply", path, "--yes")
    assert applied.code == 0, applied.err
    assert role.lower() in members(org, grants[extra])
    assert grants[extra].lower() in {g.lower() for g in store_of(org).roles.find(ROLE).grants}
    path = approved(("role", "remove-grant", ROLE, extra), "remove")
    assert org.run(*strict, "apply", path, "--yes").code == 0
    assert role.lower() not in members(org, grants[extra])
    path = approved(("role", "create", "role-ap", "--grant", extra), "create")
    assert org.run(*strict, "apply", path, "--yes").code == 0
    assert role_dn(org, "role-ap").lower() in members(org, grants[extra])
    path = approved(("role", "delete", "role-ap"), "delete")
    assert org.run(*strict, "apply", path, "--yes").code == 0
    assert not org.slapd.exists(role_dn(org, "role-ap"))
    assert store_of(org).roles.find("role-ap") is None
    # Onboarding: onto an existing role, and onto a new one the plan creates.
    joiner = _newbie(org, *org.sample.role_profiles[ROLE])
    assert_one_line_error(
        org.run(*strict, "joiner", "onboard", "newbie", "--role", ROLE, "--yes"), "requires approval", code=2
    )
    path = approved(("joiner", "onboard", "newbie", "--role", ROLE), "onboard")
    assert joiner.lower() not in members(org, role)
    assert org.run(*strict, "apply", path, "--yes").code == 0
    assert joiner.lower() in members(org, role)
    path = approved(("joiner", "onboard", "newbie", "--new-role", "role-newbie", "--grant", extra), "onboard-new")
    assert org.run(*strict, "apply", path, "--yes").code == 0
    assert joiner.lower() in members(org, role_dn(org, "role-newbie"))
    assert role_dn(org, "role-newbie").lower() in members(org, grants[extra])
    assert store_of(org).roles.find("role-newbie") is not None
    kinds = ["role-add-grant", "role-remove-grant", "role-create", "role-delete", "onboard", "onboard"]
    assert [b.kind for b in store_of(org).batches()] == kinds


def test_grants_are_repeatable_or_comma_separated_alike(org):
    first, second = sorted(g.cn for g in org.sample.groups if g.kind == "grant")[:2]
    assert org.run("role", "create", "role-rep", "--grant", first, "--grant", second, "--yes").code == 0
    assert org.run("role", "create", "role-comma", "--grant", f"{first},{second}", "--yes").code == 0
    nested = [
        {g.cn for g in org.sample.groups if g.kind == "grant" and role_dn(org, r).lower() in members(org, g.dn)}
        for r in ("role-rep", "role-comma")
    ]
    assert nested == [{first, second}, {first, second}]
