"""Role catalogue, joiner onboarding, candidates and mining against a real slapd and real stores."""

from __future__ import annotations

import json

import pytest
import yaml

from rbac_migrate import audit
from rbac_migrate.config import load_settings
from rbac_migrate.errors import RbacMigrateError
from rbac_migrate.roles import commands as roles_api
from rbac_migrate.store import open_store
from tests.support.cli import assert_one_line_error, run


def values(org, dn: str, attribute: str) -> list[str]:
    """An attribute's values read back over LDAP, lower-cased ('member:' alone is the empty DN)."""
    text = org.slapd.ldapsearch(dn, "(objectClass=*)", attribute, scope="base")
    prefix = attribute.lower() + ":"
    return sorted(
        line.split(":", 1)[1].strip().lower() for line in text.splitlines() if line.lower().startswith(prefix)
    )


def store_of(org):
    return open_store(yaml.safe_load(org.config.read_text())["store"])


def grant_dn(org, cn: str) -> str:
    return f"cn={cn},{org.sample.grant_base}"


def role_dn(org, cn: str) -> str:
    return f"cn={cn},{org.sample.role_base}"


def newcomer(org) -> tuple:
    """An enabled user without a role, and two grants they do not reach (in sorted order)."""
    user = next(u for u in org.sample.users if not u.leaver and not u.roles and u.department == "Finance")
    held = org.sample.effective_grants(user.uid)
    spare = sorted(g.cn for g in org.sample.groups if g.kind == "grant" and g.cn not in held and g.members)
    return user, spare[:2]


def reached(org, user_dn: str) -> set[str]:
    """Grant and role cns the user reaches, from the server's nested memberOf (dynlist)."""
    return {dn.split(",", 1)[0].split("=", 1)[1] for dn in values(org, user_dn, "memberOf")}


def test_create_nests_the_role_and_onboard_gives_its_access(org):
    user, (g1, g2) = newcomer(org)
    result = org.run("role", "create", "role-x", "--grant", g1, "--grant", g2, "--description", "X team", "--yes")
    assert result.code == 0, result.err
    assert "created role role-x (batch 1; 'rbac-migrate rollback 1' undoes it)" in result.err
    dn = role_dn(org, "role-x")
    assert values(org, dn, "objectClass") == ["groupofnames", "top"]
    assert values(org, dn, "member") == [""]  # the placeholder: nobody holds it yet
    for grant in (g1, g2):
        assert dn.lower() in values(org, grant_dn(org, grant), "member")
    assert not {g1, g2} & reached(org, user.dn)

    result = org.run("joiner", "onboard", user.uid, "--role", "role-x", "--ticket", "HR-1", "--yes")
    assert result.code == 0, result.err
    assert values(org, dn, "member") == sorted(["", user.dn.lower()])
    assert {"role-x", g1, g2} <= reached(org, user.dn)


def nested_into(org, dn: str) -> set[str]:
    """cns of the grant groups that list dn as a member, read over LDAP."""
    text = org.slapd.ldapsearch(org.sample.grant_base, f"(member={dn})", "cn")
    return {line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("cn: ")}


def test_create_from_a_user_copies_their_direct_and_role_grants(org):
    holder = next(u for u in org.sample.users if u.roles and u.direct_grants and not u.leaver)
    role_grants = {g for r in holder.roles for g in nested_into(org, role_dn(org, r))}
    result = org.run("role", "create", "role-copy", "--from-user", holder.uid, "--yes")
    assert result.code == 0, result.err
    assert nested_into(org, role_dn(org, "role-copy")) == set(holder.direct_grants) | role_grants
    both = org.run("role", "create", "role-copy2", "--from-user", holder.uid, "--grant", "email", "--yes")
    assert_one_line_error(both, "--grant G (repeatable), or --from-user USER", code=2)


def test_onboard_twice_changes_nothing_the_second_time(org):
    user, (g1, g2) = newcomer(org)
    args = ("joiner", "onboard", user.uid, "--new-role", "role-y", "--grant", g1, "--grant", g2, "--yes")
    assert org.run(*args).code == 0
    store = store_of(org)
    audited = len(store.audit_records())
    state = {dn: values(org, dn, "member") for dn in (role_dn(org, "role-y"), grant_dn(org, g1), grant_dn(org, g2))}
    again = org.run(*args)
    assert again.code == 0, again.err
    assert again.err_lines == [f"nothing to do: {user.uid} already holds role-y"]
    assert {dn: values(org, dn, "member") for dn in state} == state
    assert len(store.audit_records()) == audited
    other = org.run("joiner", "onboard", user.uid, "--new-role", "role-y", "--grant", g1, "--yes")
    assert_one_line_error(other, "role role-y already exists with other grants", "use --role role-y")


def test_onboard_refuses_unknown_disabled_and_protected_users(org):
    _, (g1, _) = newcomer(org)
    assert org.run("role", "create", "role-z", "--grant", g1, "--yes").code == 0
    unknown = org.run("joiner", "onboard", "no-such-person", "--role", "role-z", "--yes")
    assert_one_line_error(unknown, "no user 'no-such-person' under")
    leaver = next(u for u in org.sample.users if u.leaver)
    disabled = org.run("joiner", "onboard", leaver.uid, "--role", "role-z", "--yes")
    assert_one_line_error(disabled, f"user {leaver.uid} is disabled")
    user, _ = newcomer(org)
    protected = org.run("--set", f"protected_accounts={user.uid}", "joiner", "onboard", user.uid, "--role", "role-z")
    assert_one_line_error(protected, f"{user.dn} is a protected account")
    assert values(org, role_dn(org, "role-z"), "member") == [""]


def test_without_a_terminal_a_write_needs_yes(org):
    _, (g1, _) = newcomer(org)
    result = org.run("role", "create", "role-q", "--grant", g1)
    assert_one_line_error(result, "Create role role-q?", "add --yes", code=2)
    assert not org.slapd.exists(role_dn(org, "role-q"))
    assert store_of(org).audit_records() == []


def test_a_new_joiner_is_onboarded_by_proposal(org):
    assert org.run("snapshot", "take").code == 0
    roled = set(org.sample.role_profiles.values())
    (dept, title), profile = next(
        (p, grants)
        for p, grants in org.sample.profiles.items()
        if p not in roled and sum(1 for u in org.sample.users if (u.department, u.title) == p and not u.leaver) >= 3
    )
    # An account made after the snapshot: proposals find it in the directory.
    dn = f"uid=newbie,{org.sample.people_dn}"
    org.slapd.ldapadd(
        f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: newbie\ncn: New Bie\nsn: Bie\n"
        f"departmentNumber: {dept}\ntitle: {title}\n"
    )
    shown = org.run("joiner", "propose", "newbie", "--format", "json")
    assert shown.code == 0, shown.err
    proposals = json.loads(shown.out)["proposals"]
    name = "role-" + "-".join(w for w in f"{dept} {title}".lower().replace("/", " ").split())
    assert (proposals[-1]["kind"], proposals[-1]["new_role"]) == ("new role", name)
    number = proposals[-1]["number"]
    result = org.run("joiner", "onboard", "newbie", "--proposal", str(number), "--ticket", "HR-9", "--yes")
    assert result.code == 0, result.err
    assert {name, *profile} <= reached(org, dn)
    again = org.run("joiner", "propose", "newbie", "--format", "json")
    first = json.loads(again.out)["proposals"][0]
    assert (first["kind"], first["roles"]) == ("existing role", [name])
    repeat = org.run("joiner", "onboard", "newbie", "--proposal", "1", "--yes")
    assert repeat.err_lines == [f"nothing to do: newbie already holds {name}"]


def test_add_and_remove_grant_change_what_every_holder_reaches(org):
    user, (g1, g2) = newcomer(org)
    assert org.run("joiner", "onboard", user.uid, "--new-role", "role-w", "--grant", g1, "--yes").code == 0
    refused = org.run("role", "add-grant", "role-w", g2)
    assert_one_line_error(refused, "add --yes", code=2)
    added = org.run("role", "add-grant", "role-w", g2, "--ticket", "CHG-2", "--yes")
    assert added.code == 0, added.err
    assert f"holders who will gain it (1): {user.uid}" in added.err
    assert g2 in reached(org, user.dn)
    removed = org.run("role", "remove-grant", "role-w", g2, "--yes")
    assert removed.code == 0, removed.err
    assert f"holders who will lose it unless they hold it another way (1): {user.uid}" in removed.err
    assert role_dn(org, "role-w").lower() not in values(org, grant_dn(org, g2), "member")
    assert g2 not in reached(org, user.dn) and g1 in reached(org, user.dn)
    assert org.run("role", "remove-grant", "role-w", g2, "--yes").err_lines[0].startswith("nothing to do")


def test_removing_a_groups_last_member_leaves_the_placeholder(org):
    _, (g1, _) = newcomer(org)
    assert org.run("role", "create", "role-v", "--grant", g1, "--yes").code == 0
    solo = grant_dn(org, "solo-app")
    org.slapd.ldapadd(f"dn: {solo}\nobjectClass: groupOfNames\ncn: solo-app\nmember: {role_dn(org, 'role-v')}\n")
    assert org.run("role", "add-grant", "role-v", "solo-app", "--yes").err_lines[0].startswith("nothing to do")
    result = org.run("role", "remove-grant", "role-v", "solo-app", "--yes")
    assert result.code == 0, result.err
    assert values(org, solo, "member") == [""]


def test_delete_only_a_role_nobody_holds(org):
    user, (g1, g2) = newcomer(org)
    assert (
        org.run("joiner", "onboard", user.uid, "--new-role", "role-u", "--grant", g1, "--grant", g2, "--yes").code == 0
    )
    assert org.run("snapshot", "take").code == 0
    refused = org.run("role", "delete", "role-u", "--yes")
    assert_one_line_error(refused, "role role-u still has 1 holders", user.uid)
    org.slapd.ldapmodify(f"dn: {role_dn(org, 'role-u')}\nchangetype: modify\ndelete: member\nmember: {user.dn}\n")
    result = org.run("role", "delete", "role-u", "--ticket", "CHG-3", "--yes")
    assert result.code == 0, result.err
    assert not org.slapd.exists(role_dn(org, "role-u"))
    for grant in (g1, g2):
        assert role_dn(org, "role-u").lower() not in values(org, grant_dn(org, grant), "member")
    shown = json.loads(org.run("role", "show", "role-u", "--format", "json").out)
    assert shown["deleted"] is True
    assert [(h["action"], h["ticket"]) for h in shown["history"]][-1] == ("deleted", "CHG-3")
    assert "role-u" not in {r["name"] for r in json.loads(org.run("role", "list", "--format", "json").out)}


def test_every_change_is_audited_with_a_rollback_point(org):
    user, (g1, g2) = newcomer(org)
    before = {g: values(org, grant_dn(org, g), "member") for g in (g1, g2)}
    assert org.run("role", "create", "role-t", "--grant", g1, "--grant", g2, "--ticket", "CHG-4", "--yes").code == 0
    assert org.run("joiner", "onboard", user.uid, "--role", "role-t", "--ticket", "HR-4", "--yes").code == 0
    store = store_of(org)
    records = store.audit_records()
    assert audit.verify(records, store.audit_head()) == []
    assert [(r.action, r.ticket) for r in records] == [
        ("role-create.start", "CHG-4"),
        ("role-create.unit", "CHG-4"),
        ("batch.applied", "CHG-4"),
        ("onboard.start", "HR-4"),
        ("onboard.unit", "HR-4"),
        ("batch.applied", "HR-4"),
    ]
    created = records[1].details["changes"]
    assert [(c["op"], c["group"].lower(), c["value"].lower()) for c in created] == [
        ("create", role_dn(org, "role-t").lower(), ""),
        ("add", grant_dn(org, g1).lower(), role_dn(org, "role-t").lower()),
        ("add", grant_dn(org, g2).lower(), role_dn(org, "role-t").lower()),
    ]
    assert all((c["before"], c["after"]) == ("absent", "present") for c in created)
    onboarded = records[4].details
    assert [(c["group"].lower(), c["value"]) for c in onboarded["changes"]] == [
        (role_dn(org, "role-t").lower(), user.dn)
    ]
    assert onboarded["access"] == {user.dn: "verified"}
    batches = store.batches()
    assert [(b.id, b.kind, b.status) for b in batches] == [(1, "role-create", "applied"), (2, "onboard", "applied")]
    journaled = store.batch(1).steps
    assert [s.op for s in journaled] == ["create", "add", "add"] and journaled[0].group_uuid
    after = {g: values(org, grant_dn(org, g), "member") for g in (g1, g2)}
    assert {g: sorted(set(after[g]) - set(before[g])) for g in (g1, g2)} == {
        g: [role_dn(org, "role-t").lower()] for g in (g1, g2)
    }
    history = json.loads(org.run("role", "show", "role-t", "--format", "json").out)["history"]
    assert [(h["action"], h["ticket"]) for h in history] == [("created", "CHG-4"), ("holder added", "HR-4")]


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_a_refused_write_leaves_nothing_half_written(org, monkeypatch, transactions):
    _, (g1, g2) = newcomer(org)
    monkeypatch.setenv("RBAC_MIGRATE_BIND_PASSWORD", org.slapd.admin_password)
    settings = load_settings({"transactions": transactions}, str(org.config), environ={})
    store = store_of(org)

    def ask(_plan):  # someone deletes a grant group between the confirmation and the writes
        org.slapd.ldapdelete(grant_dn(org, g2))

    with pytest.raises(RbacMigrateError, match="does not exist in the directory"):
        roles_api.role_create(settings, store, "role-s", [g1, g2], ask=ask)
    assert not org.slapd.exists(role_dn(org, "role-s"))
    assert role_dn(org, "role-s").lower() not in values(org, grant_dn(org, g1), "member")
    assert store.batches() == []
    assert store.audit_records() == []


def test_writes_stay_inside_the_managed_bases(org):
    outside = f"cn=elsewhere,{org.sample.base_dn}"
    result = org.run("role", "create", "role-r", "--grant", outside, "--yes")
    assert_one_line_error(result, f"grant {outside} is not under grant_base", code=2)
    bad_name = org.run("role", "create", " bad,name", "--grant", "email", "--yes")
    assert_one_line_error(bad_name, "role name ' bad,name' is not valid", code=2)
    role = next(iter(org.sample.role_profiles))
    as_grant = org.run("role", "add-grant", role, role_dn(org, role), "--yes")
    assert_one_line_error(as_grant, "is not under grant_base", code=2)


def test_role_list_and_show_merge_the_snapshot_and_the_catalogue(org):
    assert org.run("snapshot", "take").code == 0
    _, (g1, _) = newcomer(org)
    assert org.run("role", "create", "role-p", "--grant", g1, "--description", "Pilot", "--yes").code == 0
    listed = {r["name"]: r for r in json.loads(org.run("role", "list", "--format", "json").out)}
    assert set(org.sample.role_profiles) | {"role-p"} == set(listed)
    assert (listed["role-p"]["managed"], listed["role-p"]["holders"], listed["role-p"]["grants"]) == (True, None, [g1])
    planted = next(iter(org.sample.role_profiles))
    holders = {u.uid for u in org.sample.users if planted in u.roles}
    assert listed[planted]["holders"] == len(holders) and listed[planted]["managed"] is False
    (unused,) = org.sample.planted["unused_role"]  # its only member value names no entry
    assert listed[unused]["holders"] == 0
    shown = json.loads(org.run("role", "show", planted, "--format", "json").out)
    assert set(shown["holders"]) == holders
    assert set(shown["grants"]) == set(org.sample.profiles[org.sample.role_profiles[planted]])
    # After a new snapshot the created role's empty placeholder is not a holder.
    assert org.run("snapshot", "take").code == 0
    listed = {r["name"]: r for r in json.loads(org.run("role", "list", "--format", "json").out)}
    assert listed["role-p"]["holders"] == 0


def test_candidates_match_the_generators_ground_truth(org):
    assert org.run("snapshot", "take").code == 0
    role = sorted(org.sample.role_profiles)[0]
    result = org.run("role", "candidates", role, "--format", "json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    wanted = set(found["grants"])
    expected = {
        u.uid
        for u in org.sample.users
        if not u.leaver and role not in u.roles and wanted <= org.sample.effective_grants(u.uid)
    }
    assert {c["user"] for c in found["candidates"]} == expected
    shares = [c["explained"] / c["direct"] for c in found["candidates"]]
    assert shares == sorted(shares, reverse=True)
    for near in found["near_misses"]:
        uid = near["user"]
        assert set(near["lacks"]) == wanted - org.sample.effective_grants(uid) and len(near["lacks"]) == 1


def test_mine_reproduces_direct_access_exactly(org):
    assert org.run("snapshot", "take").code == 0
    result = org.run("role", "mine", "--exact", "--min-holders", "2", "--format", "json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    got: dict[str, set[str]] = {}
    for role in found["roles"]:
        assert role["name"].startswith("role-")
        for holder in role["holders"]:
            got.setdefault(holder, set()).update(role["grants"])
    for user, grants in found["exceptions"].items():
        got.setdefault(user, set()).update(grants)
    expected = {u.uid: set(u.direct_grants) for u in org.sample.users if not u.leaver and u.direct_grants}
    assert got == expected
    assert len({r["name"] for r in found["roles"]}) == len(found["roles"])


def test_mine_from_pairs_needs_no_directory_and_no_config(tmp_path):
    pairs = tmp_path / "export.txt"
    pairs.write_text("ann mail\nann vpn\nbob,mail\nbob,vpn\nbob,crm\ncid crm\n")
    result = run(["role", "mine", "--from-pairs", str(pairs), "--format", "json"], {"HOME": str(tmp_path)})
    assert result.code == 0, result.err
    roles = json.loads(result.out)["roles"]
    assert sorted((r["grants"], r["holders"]) for r in roles) == [
        (["crm"], ["bob", "cid"]),
        (["mail", "vpn"], ["ann", "bob"]),
    ]
    pairs.write_text("ann mail\nbroken line here\n")
    bad = run(["role", "mine", "--from-pairs", str(pairs)], {"HOME": str(tmp_path)})
    assert_one_line_error(bad, "line 2: expected 'user permission'", code=2)
    missing = run(["role", "mine", "--from-pairs", str(tmp_path / "nope.txt")], {"HOME": str(tmp_path)})
    assert_one_line_error(missing, "cannot read", code=2)


def test_catalogue_and_proposals_on_each_store(org_on_store):
    org = org_on_store
    assert org.run("snapshot", "take").code == 0
    user = next(u for u in org.sample.users if not u.leaver and not u.roles)
    shown = org.run("joiner", "propose", user.uid, "--format", "json")
    assert shown.code == 0, shown.err
    document = json.loads(shown.out)
    peers = [u for u in org.sample.users if (u.department, u.title) == (user.department, user.title)]
    assert document["peers"] == sum(1 for u in peers if not u.leaver and u.uid != user.uid)
    grants = [e["grant"] for e in document["evidence"]]
    args = [arg for g in grants for arg in ("--grant", g)]
    result = org.run("joiner", "onboard", user.uid, "--new-role", "role-store", *args, "--yes")
    assert result.code == 0, result.err
    store = store_of(org)
    (definition,) = [d for d in store.roles.definitions() if d.name == "role-store"]
    assert sorted(g.split(",")[0][3:] for g in definition.grants) == sorted(grants)
    assert [e.action for e in store.roles.history(definition.id)] == ["created", "holder added"]


def test_proposals_follow_the_catalogue_between_snapshots(org):
    assert org.run("snapshot", "take").code == 0
    roled = set(org.sample.role_profiles.values())
    user = next(u for u in org.sample.users if not u.leaver and not u.roles and (u.department, u.title) not in roled)

    def first_proposal() -> dict:
        result = org.run("joiner", "propose", user.uid, "--format", "json")
        assert result.code == 0, result.err
        return json.loads(result.out)["proposals"][0]

    new = first_proposal()
    assert new["kind"] == "new role"
    args = [arg for grant in new["grants"] for arg in ("--grant", grant)]
    assert org.run("role", "create", new["new_role"], *args, "--yes").code == 0
    assert (first_proposal()["kind"], first_proposal()["roles"]) == ("existing role", [new["new_role"]])
    assert org.run("snapshot", "take").code == 0
    assert first_proposal()["roles"] == [new["new_role"]]
    assert org.run("role", "delete", new["new_role"], "--yes").code == 0
    assert first_proposal() == new


def test_create_onboard_and_delete_on_active_directory(ad_org):
    org = ad_org
    user, (g1, g2) = newcomer(org)
    assert org.run("role", "create", "role-ad", "--grant", g1, "--grant", g2, "--yes").code == 0
    dn = role_dn(org, "role-ad")
    assert values(org, dn, "sAMAccountName") == ["role-ad"]
    assert values(org, dn, "member") == []  # AD groups may be empty: no placeholder there
    for grant in (g1, g2):
        assert dn.lower() in values(org, grant_dn(org, grant), "member")
    assert org.run("joiner", "onboard", user.uid, "--role", "role-ad", "--yes").code == 0
    assert values(org, dn, "member") == [user.dn.lower()]
    again = org.run("joiner", "onboard", user.uid, "--role", "role-ad", "--yes")
    assert again.err_lines == [f"nothing to do: {user.uid} already holds role-ad"]
    org.slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\ndelete: member\nmember: {user.dn}\n")
    assert org.run("role", "delete", "role-ad", "--yes").code == 0
    assert "role-ad" not in org.slapd.ldapsearch(org.sample.role_base, "(cn=role-ad)", "cn")
    for grant in (g1, g2):
        assert dn.lower() not in values(org, grant_dn(org, grant), "member")
