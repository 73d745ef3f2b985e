"""Accepted exceptions: a finding leaves the report until the exception expires; every change is audited."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import yaml
from sqlalchemy import update

from rbac_migrate.store import open_store
from rbac_migrate.store.schema import finding_exceptions
from tests.support.cli import assert_one_line_error

NEXT_YEAR = (datetime.now(timezone.utc) + timedelta(days=365)).date().isoformat()


def report(org) -> dict:
    result = org.run("report", "orphans", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def pairs(findings: list[dict]) -> set[tuple[str, str, str]]:
    return {(f["category"], f["user_id"], f["group"]) for f in findings}


def test_an_accepted_finding_leaves_the_report_until_it_expires(org):
    assert org.run("snapshot", "take").code == 0
    before = report(org)
    leaver = next(f for f in before["findings"] if f["category"] == "leaver-grant")
    added = org.run(
        "exception", "add", leaver["user_id"], leaver["group"], "--owner", "legal",
        "--reason", "legal hold", "--expires", NEXT_YEAR, "--ticket", "RISK-1",
    )  # fmt: skip
    assert added.code == 0, added.err
    exception_id = int(added.out)
    after = report(org)
    key = ("leaver-grant", leaver["user_id"], leaver["group"])
    assert key not in pairs(after["findings"])
    assert pairs(after["accepted"]) == {key}
    assert after["accepted"][0]["owner"] == "legal" and after["accepted"][0]["exception"] == exception_id
    assert after["accepted_count"] == 1
    assert after["summary"]["leaver-grant"] == before["summary"]["leaver-grant"] - 1
    assert pairs(after["findings"]) | {key} == pairs(before["findings"])
    listed = json.loads(org.run("exception", "list", "--format", "json").out)
    assert [(e["id"], e["user"], e["group"], e["state"]) for e in listed] == [
        (exception_id, leaver["user_id"], leaver["group"], "active")
    ]
    # Time passes: the exception expires and the finding is back.
    store = open_store(yaml.safe_load(org.config.read_text())["store"])
    with store.engine.begin() as conn:
        yesterday = datetime.now(timezone.utc) - timedelta(days=1)
        conn.execute(update(finding_exceptions).values(expires=yesterday))
    expired = report(org)
    assert key in pairs(expired["findings"]) and expired["accepted"] == []
    assert json.loads(org.run("exception", "list", "--format", "json").out)[0]["state"] == "expired"


def test_exception_changes_are_audited_and_removal_brings_the_finding_back(org):
    assert org.run("snapshot", "take").code == 0
    leaver = next(f for f in report(org)["findings"] if f["category"] == "leaver-grant")
    added = org.run(
        "exception", "add", leaver["user_dn"], leaver["group_dn"], "--owner", "ciso",
        "--reason", "audit sample", "--expires", NEXT_YEAR,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert leaver["group"] not in {f["group"] for f in report(org)["findings"] if f["user_id"] == leaver["user_id"]}
    removed = org.run("exception", "remove", added.out.strip(), "--ticket", "RISK-2")
    assert removed.code == 0, removed.err
    assert ("leaver-grant", leaver["user_id"], leaver["group"]) in pairs(report(org)["findings"])
    log = json.loads(org.run("audit", "log", "--format", "json").out)
    actions = [(r["action"], r["target"], r["ticket"]) for r in log]
    assert actions == [("exception.add", leaver["user_dn"], None), ("exception.remove", leaver["user_dn"], "RISK-2")]
    assert log[0]["details"]["after"]["reason"] == "audit sample"
    assert log[0]["details"]["user_key"] == leaver["user_key"]
    assert org.run("audit", "verify").code == 0
    assert org.run("exception", "list").out.strip() == "(none)"


def test_bad_exception_input_is_one_line(org):
    assert org.run("snapshot", "take").code == 0
    user = org.sample.users[0]
    group = sorted(user.direct_grants)[0]
    base = ["exception", "add", user.uid, group, "--owner", "x", "--reason", "y"]
    assert_one_line_error(org.run(*base, "--expires", "2020-01-01"), "is in the past", code=2)
    assert_one_line_error(org.run(*base, "--expires", "soon"), "is not a date", code=2)
    assert_one_line_error(
        org.run("exception", "add", "nobody", group, "--owner", "x", "--reason", "y", "--expires", NEXT_YEAR),
        "no user 'nobody'",
    )
    assert_one_line_error(org.run("exception", "remove", "42"), "no exception 42")
