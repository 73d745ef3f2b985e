"""Promise 9 for resume and rollback: every change they make is in the audit log, with its ticket.

Read through ``audit log --format json`` only, and on content (batch id, ticket, each member value
before and after) rather than on action names, which may change.
"""

from __future__ import annotations

import json

import pytest

from tests.support.reader import normalise_dn
from tests.test_interruption import cli_in_subprocess
from tests.test_migration import candidates, plan_file

TICKET = "CHG-4711"


def audit_log(org) -> list[dict]:
    shown = org.run("audit", "log", "--format", "json")
    assert shown.code == 0, shown.err
    return json.loads(shown.out)


def changes_in(value) -> dict[tuple[str, str], tuple[str, str]]:
    """Every member change recorded anywhere in a record's details: (group, value) -> (before, after)."""
    found = {}
    if isinstance(value, dict):
        group, member = value.get("group") or value.get("group_dn"), value.get("value") or value.get("member")
        if group and member and "before" in value and "after" in value:
            found[(normalise_dn(group), normalise_dn(member))] = (value["before"], value["after"])
        for inner in value.values():
            found |= changes_in(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= changes_in(inner)
    return found


def recorded(records: list[dict]) -> dict[tuple[str, str], tuple[str, str]]:
    found = {}
    for record in records:
        found |= changes_in(record["details"])
    return found


def planned_changes(plan: str) -> list[set[tuple[str, str]]]:
    """Per planned user, the (group, value) pairs the batch changes."""
    units = json.loads(open(plan).read())["units"]
    return [{(normalise_dn(e["group"]["dn"]), normalise_dn(e["member"]["dn"])) for e in u["edits"]} for u in units]


def records_since(org, last: int, batch: int) -> list[dict]:
    """The records written after record ``last``; each must name the batch and carry its ticket."""
    new = [r for r in audit_log(org) if r["id"] > last]
    assert new, "nothing was recorded"
    assert {(r["details"].get("batch"), r["ticket"]) for r in new} == {(batch, TICKET)}, new
    return new


def last_id(org) -> int:
    return max((r["id"] for r in audit_log(org)), default=0)


@pytest.fixture
def plan(org, tmp_path) -> str:
    assert org.run("snapshot", "take").code == 0
    return plan_file(org, tmp_path, candidates(org, 2))


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_resume_records_what_it_wrote_with_the_batch_and_ticket(org, plan, transactions):
    org.env["RBAC_MIGRATE_TRANSACTIONS"] = transactions
    killed = cli_in_subprocess(org, 3, "migrate", "apply", plan, "--yes", "--ticket", TICKET)
    assert killed.returncode == -9, killed.stderr
    last = last_id(org)
    resumed = org.run("migrate", "resume", "1", "--yes")
    assert resumed.code == 0, resumed.err
    assert planned_changes(plan)[-1] <= set(recorded(records_since(org, last, 1)))  # what resume finished
    everything = recorded([r for r in audit_log(org) if r["details"].get("batch") == 1])
    assert set(everything) == set().union(*planned_changes(plan))  # every change of the batch, once
    assert all(before != after for before, after in everything.values())
    assert org.run("audit", "verify").code == 0


def test_rollback_is_recorded_with_the_batch_and_ticket(org, plan):
    assert org.run("migrate", "apply", plan, "--yes", "--ticket", TICKET).code == 0
    last = last_id(org)
    assert org.run("rollback", "1", "--yes").code == 0
    records_since(org, last, 1)
    assert org.run("audit", "verify").code == 0


def test_rollback_records_each_value_before_and_after(org, plan):
    assert org.run("migrate", "apply", plan, "--yes", "--ticket", TICKET).code == 0
    applied = recorded(audit_log(org))
    last = last_id(org)
    assert org.run("rollback", "1", "--yes").code == 0
    undone = recorded(records_since(org, last, 1))
    assert set(undone) == set().union(*planned_changes(plan))
    assert undone == {key: (after, before) for key, (before, after) in applied.items()}
