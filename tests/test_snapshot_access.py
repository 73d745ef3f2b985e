"""snapshot take/list/show/diff and access show/explain against a real slapd."""

from __future__ import annotations

import json
import random

from rbac_migrate.store import open_store


def test_snapshot_matches_generated_org(org):
    result = org.run("snapshot", "take")
    assert result.code == 0, result.err
    snap = open_store(org.store_url).load_snapshot()
    users = {e.name: e for e in snap.entries if e.kind == "user"}
    assert set(users) == {u.uid for u in org.sample.users}
    assert all(e.uuid and len(e.uuid) == 36 for e in users.values())
    leavers = {u.uid for u in org.sample.users if u.leaver}
    assert {name for name, e in users.items() if not e.enabled} == leavers
    sample_user = org.sample.users[0]
    assert users[sample_user.uid].attrs == {"departmentNumber": sample_user.department, "title": sample_user.title}
    dangling = {e.dn.lower() for e in snap.entries if e.kind == "dangling"}
    assert dangling == {dn.lower() for _group, dn in org.sample.planted["dangling"]}


def test_access_show_agrees_with_generator(org):
    assert org.run("snapshot", "take").code == 0
    rng = random.Random(3)
    for user in rng.sample(org.sample.users, 25):
        result = org.run("access", "show", user.uid, "--format", "json")
        assert result.code == 0, result.err
        shown = json.loads(result.out)
        assert {g["grant"] for g in shown["grants"]} == set(org.sample.effective_grants(user.uid)), user.uid
        assert set(shown["roles"]) == set(user.roles)


def test_access_show_names_each_source(org):
    assert org.run("snapshot", "take").code == 0
    holder = next(u for u in org.sample.users if u.roles and u.direct_grants)
    shown = json.loads(org.run("access", "show", holder.uid, "--format", "json").out)
    sources = {g["grant"]: g["sources"] for g in shown["grants"]}
    role = sorted(holder.roles)[0]
    assert any(s == f"role: {role}" for ss in sources.values() for s in ss)
    for grant in holder.direct_grants:
        assert "direct" in sources[grant]
    parent, child = org.sample.planted["nested"][0]
    nested_user = next(
        u for u in org.sample.users if child in u.direct_grants and parent not in u.direct_grants and not u.roles
    )
    shown = json.loads(org.run("access", "show", nested_user.uid, "--format", "json").out)
    by_grant = {g["grant"]: g["sources"] for g in shown["grants"]}
    assert any(s.startswith("nested: ") and child in s for s in by_grant[parent])


def test_access_explain_paths_and_no_access(org):
    assert org.run("snapshot", "take").code == 0
    holder = next(u for u in org.sample.users if u.roles and not u.leaver)
    role = sorted(holder.roles)[0]
    grant = sorted(org.sample.effective_grants(holder.uid) - holder.direct_grants)[0]
    result = org.run("access", "explain", holder.uid, grant, "--format", "json")
    assert result.code == 0
    paths = json.loads(result.out)["paths"]
    assert paths and paths[0]["path"].startswith(f"{holder.uid} → {role}")
    outside = sorted({g.cn for g in org.sample.groups if g.kind == "grant"} - org.sample.effective_grants(holder.uid))[
        0
    ]
    result = org.run("access", "explain", holder.uid, outside)
    assert result.code == 3
    assert "no access" in result.err


def test_listings_in_every_format(org):
    assert org.run("snapshot", "take").code == 0
    user = org.sample.users[1].uid
    csv_out = org.run("access", "show", user, "--format", "csv").out.splitlines()
    assert csv_out[0] == "grant,source,dn"
    assert len(csv_out) == 1 + len(org.sample.effective_grants(user))
    table = org.run("access", "show", user).out
    assert "grant" in table.splitlines()[0]
    listing = json.loads(org.run("snapshot", "list", "--format", "json").out)
    assert listing[0]["users"] == len(org.sample.users)
    shown = org.run("snapshot", "show", "--kind", "grant", "--format", "csv").out.splitlines()
    assert len(shown) - 1 == sum(1 for g in org.sample.groups if g.kind == "grant")


def test_diff_lists_changes_keyed_by_identity(org):
    assert org.run("snapshot", "take").code == 0
    sample = org.sample
    user = next(u for u in sample.users if not u.leaver and not u.roles)
    grant = next(g for g in sample.groups if g.kind == "grant" and user.dn not in g.members)
    victim = next(u for u in sample.users if u.uid != user.uid and not u.leaver)
    org.slapd.ldapmodify(
        f"dn: {grant.dn}\nchangetype: modify\nadd: member\nmember: {user.dn}\n\n"
        f"dn: {user.dn}\nchangetype: modify\nreplace: employeeType\nemployeeType: leaver\n\n"
    )
    # Deleted and re-created under the same DN: a different person (new entryUUID).
    org.slapd.ldapdelete(victim.dn)
    org.slapd.ldapadd(f"dn: {victim.dn}\nobjectClass: inetOrgPerson\nuid: {victim.uid}\ncn: Someone Else\nsn: Else\n\n")
    assert org.run("snapshot", "take").code == 0
    found = json.loads(org.run("snapshot", "diff", "--format", "json").out)
    pairs = {(c["change"], c["subject"], c["group"]) for c in found}
    assert ("member added", user.uid, grant.cn) in pairs
    assert ("user disabled", user.uid, "") in pairs
    assert ("user added", victim.uid, "") in pairs and ("user removed", victim.uid, "") in pairs


def test_snapshot_on_both_stores(org_on_store):
    org = org_on_store
    assert org.run("snapshot", "take").code == 0
    assert org.run("snapshot", "take").code == 0
    listing = json.loads(org.run("snapshot", "list", "--format", "json").out)
    assert [s["id"] for s in listing] == [1, 2]
    assert json.loads(org.run("snapshot", "diff", "1", "2", "--format", "json").out) == []
    user = org.sample.users[5]
    shown = json.loads(org.run("access", "show", user.uid, "--format", "json").out)
    assert {g["grant"] for g in shown["grants"]} == set(org.sample.effective_grants(user.uid))


def test_empty_placeholder_member_is_not_a_member(org):
    role_dn = f"cn=role-empty,{org.sample.role_base}"
    org.slapd.ldapadd(f"dn: {role_dn}\nobjectClass: groupOfNames\ncn: role-empty\nmember:\n\n")
    assert org.run("snapshot", "take").code == 0
    snap = open_store(org.store_url).load_snapshot()
    role = next(e for e in snap.entries if e.name == "role-empty")
    assert snap.members[role.idx] == ()
    assert not any(e.dn == "" for e in snap.entries)


def test_check_counts_and_capabilities(org):
    result = org.run("check", "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    sample = org.sample
    assert report["users"] == len(sample.users)
    assert report["disabled users"] == sum(1 for u in sample.users if u.leaver)
    assert report["grant groups"] == sum(1 for g in sample.groups if g.kind == "grant")
    assert report["roles"] == sum(1 for g in sample.groups if g.kind == "role")
    assert report["paged results"] is True and report["LDAP transactions"] is True
    assert report["nested memberOf"] is True and report["TLS"] == "none"
    assert report["bound as"] == org.slapd.admin_dn


def test_snapshot_show_carries_peer_attributes(org):
    assert org.run("snapshot", "take").code == 0
    shown = json.loads(org.run("snapshot", "show", "--kind", "user", "--format", "json").out)
    user = org.sample.users[0]
    row = next(r for r in shown if r["name"] == user.uid)
    assert row["attributes"] == {"departmentNumber": user.department, "title": user.title}
    csv_header = org.run("snapshot", "show", "--kind", "user", "--format", "csv").out.splitlines()[0]
    assert csv_header.endswith(",attributes")
