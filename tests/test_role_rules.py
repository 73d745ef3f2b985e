"""Mined roles into the catalogue as one change set, and rule-based (birthright) roles synced in batches."""

from __future__ import annotations

import json
from collections import Counter

from tests.support.cli import assert_one_line_error
from tests.test_roles import reached, role_dn, store_of, values


def _mined(org, tmp_path):
    assert org.run("snapshot", "take").code == 0
    path = tmp_path / "roles.json"
    result = org.run("role", "mine", "-o", str(path))
    assert result.code == 0, result.err
    return path, json.loads(path.read_text())["roles"]


def test_mined_roles_are_created_and_rolled_back_as_one_change_set(org, tmp_path):
    path, mined = _mined(org, tmp_path)
    assert len(mined) >= 2
    created = org.run("role", "create", "--from-file", str(path), "--ticket", "CHG-20", "--yes")
    assert created.code == 0, created.err
    assert f"created {len(mined)} roles from {path} (batch 1;" in created.err
    for role in mined:
        nested = {g.lower() for g in role["grants"]}
        assert all(role_dn(org, role["name"]).lower() in values(org, g, "member") for g in nested), role["name"]
    batches = store_of(org).batches()
    assert [(b.id, b.kind, len(b.plan["units"])) for b in batches] == [(1, "role-create", len(mined))]
    listed = {r["name"]: r["managed"] for r in json.loads(org.run("role", "list", "--format", "json").out)}
    assert all(listed[r["name"]] for r in mined)

    undone = org.run("rollback", "1", "--ticket", "CHG-21", "--yes")
    assert undone.code == 0, undone.err
    assert not any(org.slapd.exists(role_dn(org, r["name"])) for r in mined)
    assert not {r["name"] for r in mined} & {
        r["name"] for r in json.loads(org.run("role", "list", "--format", "json").out)
    }


def test_mined_roles_as_a_reviewed_plan_file(org, tmp_path):
    path, mined = _mined(org, tmp_path)
    plan = tmp_path / "create.json"
    written = org.run("role", "create", "--from-file", str(path), "-o", str(plan))
    assert written.code == 0, written.err
    assert not org.slapd.exists(role_dn(org, mined[0]["name"]))
    assert json.loads(plan.read_text())["kind"] == "role-create"
    applied = org.run("apply", str(plan), "--yes")
    assert applied.code == 0, applied.err
    assert all(org.slapd.exists(role_dn(org, r["name"])) for r in mined)
    shown = json.loads(org.run("role", "show", mined[0]["name"], "--format", "json").out)
    assert shown["managed"] is True and shown["history"][0]["action"] == "applied from a plan file"
    again = org.run("role", "create", "--from-file", str(path), "--yes")
    assert again.code == 0 and again.err_lines[0].startswith("nothing to do:"), again.err


def test_a_roles_file_naming_a_missing_grant_creates_nothing(org, tmp_path):
    path, mined = _mined(org, tmp_path)
    document = json.loads(path.read_text())
    document["roles"][-1]["grants"].append(f"cn=no-such-grant,{org.sample.grant_base}")
    path.write_text(json.dumps(document))
    result = org.run("role", "create", "--from-file", str(path), "--yes")
    assert_one_line_error(result, "no-such-grant")
    assert not any(org.slapd.exists(role_dn(org, r["name"])) for r in mined)
    assert store_of(org).batches() == []


def _job(org, size: int = 4):
    """A (department, title) held by at least ``size`` enabled users, and those users."""
    counts = Counter((u.department, u.title) for u in org.sample.users if not u.leaver)
    (dept, title), _ = next(item for item in counts.most_common() if item[1] >= size)
    people = sorted((u for u in org.sample.users if (u.department, u.title) == (dept, title)), key=lambda u: u.uid)
    return dept, title, people


def test_a_rule_based_role_is_synced_to_matching_users_in_batches(org):
    dept, title, people = _job(org)
    enabled = [u for u in people if not u.leaver]
    g = sorted(org.sample.profiles[(dept, title)])[0]
    assert org.run("role", "create", "role-birth", "--grant", g, "--yes").code == 0
    unset = org.run("role", "sync", "role-birth", "--yes")
    assert_one_line_error(unset, "role role-birth has no assignment rule", "role rule set role-birth")
    wrong = org.run("role", "rule", "set", "role-birth", "shoeSize=42")
    assert_one_line_error(wrong, "'shoeSize' is not a peer attribute", code=2)
    ruled = org.run("role", "rule", "set", "role-birth", f"departmentNumber={dept}", f"title={title}")
    assert ruled.code == 0, ruled.err
    shown = json.loads(org.run("role", "show", "role-birth", "--format", "json").out)
    assert shown["rule"] == {"departmentNumber": dept, "title": title}

    first = org.run("role", "sync", "role-birth", "--batch-size", "2", "--ticket", "CHG-30", "--yes")
    assert first.code == 0, first.err
    members = set(values(org, role_dn(org, "role-birth"), "member")) - {""}
    assert members == {u.dn.lower() for u in enabled[:2]}
    assert all("role-birth" in reached(org, u.dn) for u in enabled[:2])
    assert f"{len(enabled) - 2} left for later batches" in first.err
    while (rest := org.run("role", "sync", "role-birth", "--ticket", "CHG-31", "--yes")).code == 0:
        if "nothing to do" in rest.err:
            break
    assert rest.code == 0, rest.err
    members = set(values(org, role_dn(org, "role-birth"), "member")) - {""}
    assert members == {u.dn.lower() for u in enabled}
    left = len(enabled) - 2
    sizes = [2] + [min(10, left - n) for n in range(0, left, 10)]  # max_batch_size 10
    assert [(b.kind, len(b.plan["units"])) for b in store_of(org).batches()][1:] == [("role-sync", n) for n in sizes]
    done = org.run("role", "sync", "role-birth", "--yes")
    assert done.code == 0 and "nothing to do" in done.err
    for u in people:
        if u.leaver:
            assert u.dn.lower() not in members


def test_sync_lists_movers_and_leaves_them_alone(org, tmp_path):
    dept, title, people = _job(org)
    enabled = [u for u in people if not u.leaver]
    g = sorted(org.sample.profiles[(dept, title)])[0]
    assert org.run("role", "create", "role-mv", "--grant", g, "--yes").code == 0
    assert org.run("role", "rule", "set", "role-mv", f"departmentNumber={dept}", f"title={title}").code == 0
    assert org.run("role", "sync", "role-mv", "--batch-size", "1", "--yes").code == 0
    mover = enabled[0]
    org.slapd.ldapmodify(f"dn: {mover.dn}\nchangetype: modify\nreplace: title\ntitle: Astronaut\n")
    plan = tmp_path / "sync.json"
    result = org.run("role", "sync", "role-mv", "--batch-size", "2", "-o", str(plan), "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert {"user": mover.uid, "change": "review: no longer matches"}.items() <= next(
        r for r in rows if r["user"] == mover.uid
    ).items()
    assert [r["user"] for r in rows if r["change"] == "add"] == [u.uid for u in enabled[1:3]]
    assert mover.dn.lower() in values(org, role_dn(org, "role-mv"), "member")
    applied = org.run("apply", str(plan), "--yes")
    assert applied.code == 0, applied.err
    members = set(values(org, role_dn(org, "role-mv"), "member")) - {""}
    assert members == {u.dn.lower() for u in enabled[:3]}


def test_joiner_propose_puts_a_matching_rule_first(org):
    dept, title, people = _job(org)
    g = sorted(org.sample.profiles[(dept, title)])[0]
    assert org.run("role", "create", "role-rule-first", "--grant", g, "--yes").code == 0
    assert org.run("role", "rule", "set", "role-rule-first", f"departmentNumber={dept}", f"title={title}").code == 0
    assert org.run("snapshot", "take").code == 0
    joiner = next(u for u in people if not u.leaver)
    shown = org.run("joiner", "propose", joiner.uid, "--format", "json")
    assert shown.code == 0, shown.err
    first = json.loads(shown.out)["proposals"][0]
    assert (first["kind"], first["roles"]) == ("rule", ["role-rule-first"])
