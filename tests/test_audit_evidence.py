"""audit log --user finds every record touching a person by identity; the table summarises each record."""

from __future__ import annotations

import json

import yaml

from rbac_migrate.audit import new_record
from rbac_migrate.store import open_store


def test_log_finds_records_touching_a_user_by_identity_not_dn(org):
    store = open_store(yaml.safe_load(org.config.read_text())["store"])
    user = next(u for u in org.sample.users if not u.leaver and u.direct_grants)
    role = next(g for g in org.sample.groups if g.kind == "role")
    assert org.run("snapshot", "take").code == 0
    # The old account, onboarded onto a role: its DN is only a member value inside the details.
    store.audit(new_record("role.add-member", role.dn, "CHG-1", before={"member": []}, after={"member": [user.dn]}))
    # The account is deleted and re-created under the same DN: a different person from now on.
    org.slapd.ldapdelete(user.dn)
    org.slapd.ldapadd(f"dn: {user.dn}\nobjectClass: inetOrgPerson\nuid: {user.uid}\ncn: New\nsn: New\n")
    assert org.run("snapshot", "take").code == 0
    store.audit(new_record("joiner.onboard", role.dn, "CHG-2", op="modify", after={"member": [user.dn.upper()]}))
    store.audit(new_record("migrate.start", role.dn, "CHG-3", users=[f"cn=someone else,{org.sample.people_dn}"]))
    result = org.run("audit", "log", "--user", user.uid, "--format", "json")
    assert result.code == 0, result.err
    assert [r["ticket"] for r in json.loads(result.out)] == ["CHG-2"]
    by_dn = json.loads(org.run("audit", "log", "--user", user.dn, "--format", "json").out)
    assert [r["ticket"] for r in by_dn] == ["CHG-2"]


def test_table_summarises_before_and_after_and_json_keeps_everything(org):
    store = open_store(yaml.safe_load(org.config.read_text())["store"])
    members = [f"uid=user{i},{org.sample.people_dn}" for i in range(300)]
    changes = [{"group": "cn=g", "value": m, "before": "absent", "after": "present"} for m in members]
    store.audit(new_record("migrate.user", members[0], "CHG-9", batch=4, changes=changes + changes[:1]))
    store.audit(new_record("role.create", "cn=r", None, before=None, after={"member": members}))
    table = org.run("audit", "log")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split() == ["id", "at", "operator", "action", "target", "ticket", "summary"]
    assert "301 member values added, 0 removed; batch=4" in lines[2]
    assert "before none → after 300 member values" in lines[3]
    assert max(len(line) for line in lines) < 300
    document = json.loads(org.run("audit", "log", "--format", "json").out)
    assert len(document[0]["details"]["changes"]) == 301 and document[1]["details"]["after"]["member"] == members
