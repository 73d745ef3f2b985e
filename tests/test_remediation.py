"""Remediation: findings removed in small batches through the write engine, and rolled back exactly."""

from __future__ import annotations

import json

from tests.support.cli import assert_one_line_error
from tests.test_engine import batches, groups_state
from tests.test_roles import store_of


def leaver_values(org, state) -> set[tuple[str, str]]:
    """(group, member) pairs held by leavers, read independently from the directory."""
    leavers = {u.dn.lower() for u in org.sample.users if u.leaver}
    managed = {g.dn.lower() for g in org.sample.groups}
    return {(g, m) for g, values in state.items() if g in managed for m in values if m in leavers}


def test_every_leaver_grant_is_removed_in_small_batches_touching_nothing_else(org, tmp_path):
    start = groups_state(org)
    pending = leaver_values(org, start)
    assert len({m for _, m in pending}) >= 2, "the sample organisation should have several leavers with grants"
    states = [start]
    rounds = 0
    while leaver_values(org, states[-1]):
        assert org.run("snapshot", "take").code == 0
        plan = tmp_path / f"leavers-{rounds}.json"
        made = org.run("remediate", "plan", "--category", "leaver-grant", "--batch-size", "1", "-o", str(plan))
        assert made.code == 0, made.err
        assert len(json.loads(plan.read_text())["units"]) == 1
        applied = org.run("apply", str(plan), "--ticket", f"AUD-{rounds}", "--yes")
        assert applied.code == 0, applied.err
        now = groups_state(org)
        removed = {(g, m) for g, values in states[-1].items() for m in values if m not in now.get(g, [])}
        added = {(g, m) for g, values in now.items() for m in values if m not in states[-1].get(g, [])}
        assert removed and removed <= leaver_values(org, states[-1]), "only leaver values are removed"
        assert added <= {(g, "") for g, _ in removed}, "nothing is added but a group's placeholder"
        states.append(now)
        rounds += 1
        assert rounds < 20
    assert rounds >= 2  # small batches
    kinds = [(b["kind"], b["status"]) for b in batches(org)]
    assert kinds == [("remediate", "applied")] * rounds
    rolled = org.run("rollback", *[str(n) for n in range(1, rounds + 1)], "--yes")
    assert rolled.code == 0, rolled.err
    assert groups_state(org) == start


def test_dangling_members_are_deleted_and_restored(org, tmp_path):
    assert org.run("snapshot", "take").code == 0
    start = groups_state(org)
    plan = tmp_path / "dangling.json"
    made = org.run("remediate", "plan", "--category", "dangling-member", "-o", str(plan))
    assert made.code == 0, made.err
    values = {e["member"]["dn"].lower() for u in json.loads(plan.read_text())["units"] for e in u["edits"]}
    assert values and all(not org.slapd.exists(v) for v in values if v)
    assert org.run("apply", str(plan), "--yes").code == 0
    after = groups_state(org)
    assert not any(v in members for members in after.values() for v in values if v)
    assert org.run("rollback", "1", "--yes").code == 0
    assert groups_state(org) == start


def test_a_dangling_value_that_names_an_entry_again_is_not_deleted_as_dangling(org, tmp_path):
    assert org.run("snapshot", "take").code == 0
    plan = tmp_path / "dangling.json"
    assert org.run("remediate", "plan", "--category", "dangling-member", "-o", str(plan)).code == 0
    value = next(
        e["member"]["dn"] for u in json.loads(plan.read_text())["units"] for e in u["edits"] if e["member"]["dn"]
    )
    rdn = value.split(",", 1)[0]
    org.slapd.ldapadd(f"dn: {value}\nobjectClass: inetOrgPerson\n{rdn.replace('=', ': ', 1)}\ncn: back\nsn: Back\n\n")
    state = groups_state(org)
    result = org.run("apply", str(plan), "--yes")
    assert_one_line_error(result, f"{value} is not a dangling member value")
    assert groups_state(org) == state


def test_only_removable_categories_are_planned(org):
    assert org.run("snapshot", "take").code == 0
    result = org.run("remediate", "plan", "--category", "unexplained-grant")
    assert result.code == 2 and "Traceback" not in result.err


def test_accepted_exceptions_are_skipped_and_fixed_findings_name_their_batch(org, tmp_path):
    assert org.run("snapshot", "take").code == 0
    report = json.loads(org.run("report", "orphans", "--format", "json").out)
    leaver_rows = [f for f in report["findings"] if f["category"] == "leaver-grant"]
    user = leaver_rows[0]["user_id"]
    kept, *others = [f for f in leaver_rows if f["user_id"] == user]
    assert others, "the leaver should hold several grants"
    accepted = org.run(
        "exception", "add", user, kept["group"], "--owner", "legal", "--reason", "hold", "--expires", "2099-12-31"
    )
    assert accepted.code == 0, accepted.err
    plan = tmp_path / "one.json"
    made = org.run("remediate", "plan", "--category", "leaver-grant", "--user", user, "-o", str(plan))
    assert made.code == 0, made.err
    planned = {e["group"]["dn"].lower() for u in json.loads(plan.read_text())["units"] for e in u["edits"]}
    assert kept["group_dn"].lower() not in planned
    assert {f["group_dn"].lower() for f in others} <= planned
    assert org.run("apply", str(plan), "--yes").code == 0
    held = groups_state(org)
    user_dn = kept["user_dn"].lower()
    assert user_dn in held[kept["group_dn"].lower()]
    assert not any(user_dn in held[f["group_dn"].lower()] for f in others)
    register = {f.key: f for f in store_of(org).findings.register()}
    fixed = [f for f in register.values() if f.status == "remediated" and f.fixed_batch == 1]
    assert {f.key for f in fixed} == {f["key"] for f in others}
