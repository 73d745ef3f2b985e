"""Onboarding you can trust: stored proposals, roles already held, roles that do not fit the joiner's job."""

from __future__ import annotations

import json
from collections import Counter

from tests.support.cli import assert_one_line_error
from tests.test_roles import reached, role_dn, values

ROLE = "role-fin-accountant"


def _newbie(org, dept: str, title: str, uid: str = "newbie") -> str:
    dn = f"uid={uid},{org.sample.people_dn}"
    org.slapd.ldapadd(
        f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: New Bie\nsn: Bie\n"
        f"departmentNumber: {dept}\ntitle: {title}\n"
    )
    return dn


def _model(org):
    """An enabled user of a big job who holds no role: their grants make a --like request."""
    counts = Counter((u.department, u.title) for u in org.sample.users if not u.leaver)
    return next(
        u
        for u in org.sample.users
        if not u.leaver and not u.roles and u.direct_grants and counts[(u.department, u.title)] >= 4
    )


def test_onboard_carries_out_the_proposal_as_it_was_shown(org):
    model = _model(org)
    dn = _newbie(org, model.department, model.title)
    assert org.run("snapshot", "take").code == 0
    from_peers = json.loads(org.run("joiner", "propose", "newbie", "--format", "json").out)["proposals"]
    shown = org.run("joiner", "propose", "newbie", "--like", model.uid, "--min-share", "0.01", "--format", "json")
    assert shown.code == 0, shown.err
    proposal = json.loads(shown.out)["proposals"][-1]
    assert proposal["kind"] == "new role"
    # Proposed from the model; recomputing from the peers (no --like) would propose other access.
    assert [p["grants"] for p in from_peers if p["number"] == proposal["number"]] not in ([], [proposal["grants"]])
    result = org.run("joiner", "onboard", "newbie", "--proposal", str(proposal["number"]), "--yes")
    assert result.code == 0, result.err
    created = {
        line.split(": ", 1)[1]
        for line in org.slapd.ldapsearch(
            org.sample.grant_base, f"(member={role_dn(org, proposal['new_role'])})", "cn"
        ).splitlines()
        if line.startswith("cn: ")
    }
    assert created == set(proposal["grants"])
    assert dn.lower() in values(org, role_dn(org, proposal["new_role"]), "member")


def test_onboard_refuses_a_proposal_whose_role_changed_since(org):
    dept, title = org.sample.role_profiles[ROLE]
    dn = _newbie(org, dept, title)
    assert org.run("snapshot", "take").code == 0
    shown = json.loads(org.run("joiner", "propose", "newbie", "--format", "json").out)
    first = shown["proposals"][0]
    assert first["roles"] == [ROLE] and not first["already_held"]
    extra = sorted(g.cn for g in org.sample.groups if g.kind == "grant" and g.cn not in first["gives"])[0]
    assert org.run("role", "add-grant", ROLE, extra, "--yes").code == 0
    result = org.run("joiner", "onboard", "newbie", "--proposal", "1", "--yes")
    assert_one_line_error(result, "the directory changed since proposal 1 was shown", f"now also gives {extra}")
    assert dn.lower() not in values(org, role_dn(org, ROLE), "member")
    never = org.run("joiner", "onboard", org.sample.users[0].uid, "--proposal", "1", "--yes")
    assert_one_line_error(never, "no proposals were shown for", "joiner propose")


def test_propose_says_the_joiner_already_holds_the_role(org):
    holder = next(u for u in org.sample.users if ROLE in u.roles and not u.leaver)
    assert org.run("snapshot", "take").code == 0
    shown = org.run("joiner", "propose", holder.uid, "--format", "json")
    assert shown.code == 0, shown.err
    first = json.loads(shown.out)["proposals"][0]
    assert first["roles"] == [ROLE] and first["already_held"] is True
    assert f"{holder.uid} already holds {ROLE} (proposal 1)" in shown.err


def test_onboarding_onto_a_role_of_another_job_asks_for_confirmation(org):
    dept, _ = org.sample.role_profiles[ROLE]
    other = next(u for u in org.sample.users if not u.leaver and not u.roles and u.department != dept)
    refused = org.run("joiner", "onboard", other.uid, "--role", ROLE, "--yes")
    assert_one_line_error(
        refused,
        f"{other.uid} ({other.department} / {other.title}) shares no peer attribute",
        f"holders of {ROLE}",
        "--confirm-mismatch",
    )
    assert other.dn.lower() not in values(org, role_dn(org, ROLE), "member")
    done = org.run("joiner", "onboard", other.uid, "--role", ROLE, "--confirm-mismatch", "--yes")
    assert done.code == 0, done.err
    assert ROLE in reached(org, other.dn)
