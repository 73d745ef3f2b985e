"""snapshot prune keeps what reports need: the date each finding was first seen survives its snapshot."""

from __future__ import annotations

import json

from sqlalchemy import text

from rbac_migrate.store import open_store


def leaver_findings(org) -> dict[tuple[str, str], str]:
    result = org.run("report", "orphans", "--format", "json")
    assert result.code == 0, result.err
    return {
        (f["user_id"], f["group"]): f["first_seen"]
        for f in json.loads(result.out)["findings"]
        if f["category"] == "leaver-grant"
    }


def test_first_seen_dates_survive_pruning_the_snapshots_that_showed_them(org):
    assert org.run("snapshot", "take").code == 0
    with open_store(org.store_url).begin() as conn:  # the first snapshot was taken a month ago
        conn.execute(text("UPDATE snapshots SET taken_at = '2026-11-01 09:00:00' WHERE id = 1"))
    assert org.run("snapshot", "take").code == 0
    before = leaver_findings(org)
    assert before and set(before.values()) == {"2026-11-01T09:00:00+00:00"}
    assert org.run("snapshot", "take").code == 0
    pruned = org.run("snapshot", "prune", "--keep", "1")
    assert pruned.code == 0, pruned.err
    assert pruned.out.split() == ["1", "2"]
    assert leaver_findings(org) == before


def _trends(org) -> tuple[list[dict], list[dict], list[dict]]:
    """report progress's points, its findings over time, and report orphans' trend, as JSON."""
    progress = org.run("report", "progress", "--format", "json")
    orphans = org.run("report", "orphans", "--format", "json")
    assert progress.code == 0 and orphans.code == 0, progress.err + orphans.err
    document = json.loads(progress.out)
    return document["over_time"], document["findings"]["over_time"], json.loads(orphans.out)["trend"]


def test_trends_still_start_at_the_first_snapshot_after_pruning(org_on_store):
    """Each snapshot prune removes leaves its progress and findings counts behind: both reports'
    trends read the same before and after, through two prunes, and go on from there."""
    from tests.test_migration import ROLE, candidates

    assert org_on_store.run("snapshot", "take").code == 0
    user = next(u for u in org_on_store.sample.users if not u.leaver)
    org_on_store.slapd.ldapmodify(f"dn: {user.dn}\nchangetype: modify\nreplace: employeeType\nemployeeType: leaver\n\n")
    assert org_on_store.run("snapshot", "take").code == 0
    moved = candidates(org_on_store, 1)[0]
    applied = org_on_store.run("migrate", "apply", "--role", ROLE, "--users", moved.uid, "--yes")
    assert applied.code == 0, applied.err
    assert org_on_store.run("snapshot", "take").code == 0
    before = _trends(org_on_store)
    assert [p["snapshot"] for p in before[0]] == [1, 2, 3] == [p["snapshot"] for p in before[2]]
    # A leaver changed the findings of snapshot 2; the migrated user changed the progress of snapshot 3.
    assert before[2][0]["summary"] != before[2][1]["summary"]
    assert before[0][1]["direct_grants"] != before[0][2]["direct_grants"]

    assert org_on_store.run("snapshot", "prune", "--keep", "2").code == 0
    assert [s.id for s in open_store(org_on_store.store_url).snapshots()] == [2, 3]
    assert _trends(org_on_store) == before
    assert org_on_store.run("snapshot", "prune", "--keep", "1").code == 0
    assert _trends(org_on_store) == before

    assert org_on_store.run("snapshot", "take").code == 0  # nothing changed: the same counts once more
    progress, findings, trend = _trends(org_on_store)
    assert [p["snapshot"] for p in progress] == [1, 2, 3, 4] == [p["snapshot"] for p in trend]
    assert progress[:3] == before[0] and trend[:3] == before[2] and findings[:3] == before[1]
    assert {k: v for k, v in progress[3].items() if k not in ("snapshot", "taken_at")} == {
        k: v for k, v in progress[2].items() if k not in ("snapshot", "taken_at")
    }
