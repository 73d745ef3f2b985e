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
