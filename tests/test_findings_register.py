"""The findings register: first seen as a time, a status, when and by which batch a finding was fixed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import yaml

from rbac_migrate.model import OPEN, RegisteredFinding
from rbac_migrate.store import open_store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def finding(key: str, first: datetime = T0, status: str = OPEN) -> RegisteredFinding:
    return RegisteredFinding(key, "leaver-grant", "u-" + key, key, "g-1", "g", "", first, first, status, first)


def test_register_keeps_dates_statuses_and_the_fixing_batch(store_url):
    register = open_store(store_url).findings
    assert register.sync(1, T0, [finding("a"), finding("b"), finding("c")])
    day = timedelta(days=1)
    assert register.mark_remediated(["a"], batch_id=7, at=T0 + 2 * day) == 1
    # Snapshot 2, three days on: a is gone (the batch fixed it), b is gone (fixed by hand), c stays.
    assert register.sync(2, T0 + 3 * day, [finding("c")])
    rows = {f.key: f for f in register.register()}
    assert (rows["a"].status, rows["a"].fixed_batch, rows["a"].fixed_at) == ("remediated", 7, T0 + 2 * day)
    assert (rows["b"].status, rows["b"].fixed_batch, rows["b"].fixed_at) == ("remediated", None, T0 + 3 * day)
    assert (rows["c"].status, rows["c"].first_seen, rows["c"].last_seen) == ("open", T0, T0 + 3 * day)
    assert [f.key for f in register.open_findings()] == ["c"]
    # b comes back in snapshot 3; a report of an older snapshot changes nothing.
    assert register.sync(3, T0 + 4 * day, [finding("b"), finding("c", status="accepted")])
    assert not register.sync(2, T0 + 3 * day, [])
    rows = {f.key: f for f in register.register()}
    assert (rows["b"].status, rows["b"].first_seen) == ("reappeared", T0)
    assert rows["c"].status == "accepted"
    assert [f.key for f in register.open_findings()] == ["b"]


def test_progress_shows_open_findings_over_time_and_time_to_remediate(org):
    assert org.run("snapshot", "take").code == 0
    first = json.loads(org.run("report", "orphans", "--format", "json").out)
    leaver = next(f for f in first["findings"] if f["category"] == "leaver-grant")
    assert datetime.fromisoformat(leaver["first_seen"]) == datetime.fromisoformat(first["snapshot"]["taken_at"])
    assert leaver["status"] == "open"
    group = next(g for g in org.sample.groups if g.cn == leaver["group"])
    org.slapd.ldapmodify(f"dn: {group.dn}\nchangetype: modify\ndelete: member\nmember: {leaver['user_dn']}\n")
    assert org.run("snapshot", "take").code == 0
    result = org.run("report", "progress", "--format", "json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)["findings"]
    over_time = metrics["over_time"]
    assert [p["snapshot"] for p in over_time] == [1, 2]
    assert over_time[1]["open"] == over_time[0]["open"] - 1
    assert metrics["statuses"]["remediated"] == 1 and metrics["remediated"] == 1
    assert metrics["mean_days_to_remediate"] is not None and 0 <= metrics["mean_days_to_remediate"] < 1
    store = open_store(yaml.safe_load(org.config.read_text())["store"])
    fixed = [f for f in store.findings.register() if f.status == "remediated"]
    assert [(f.user_name, f.group_name) for f in fixed] == [(leaver["user_id"], leaver["group"])]
    table = org.run("report", "progress")
    assert "open findings" in table.out.splitlines()[0] and "mean time to remediate" in table.err
    html = org.run("report", "progress", "--format", "html")
    assert 'id="findings-register"' in html.out and "mean time to remediate" in html.out
