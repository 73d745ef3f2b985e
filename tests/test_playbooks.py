"""Playbooks: validation with line numbers, waves with gates, resumption by another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbac_migrate import playbooks
from rbac_migrate.store import open_store
from tests.support.cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[1]
WAVES = str(ROOT / "playbooks" / "migrate-role-in-waves.yml")
ROLE = "role-fin-accountant"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "playbooks").glob("*.yml")))
def test_shipped_playbooks_are_valid(name):
    book = playbooks.load(ROOT / "playbooks" / name)
    assert book.steps and book.name == name.removesuffix(".yml")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("steps:\n  - run: check\n  - rum: check\n", ("line 3", "unknown key 'rum'")),
        ("steps:\n  - id: a\n    gate: {wait: soon}\n", ("line 3", "not a duration")),
        ("steps:\n  - run: access show {user}\n", ("line 2", "'{user}' is not a declared variable")),
        ("name: x\n", ("needs a non-empty list of steps",)),
        ("steps:\n  - run: check\n    gate: {confirm: ok}\n", ("line 2", "exactly one of 'run' or 'gate'")),
        ("steps:\n  - id: a\n    run: check\n  - id: a\n    run: check\n", ("line 4", "used twice")),
        ("steps: [\n", ("line",)),
    ],
)
def test_invalid_playbooks_name_the_line(tmp_path, text, fragments):
    book = tmp_path / "bad.yml"
    book.write_text(text)
    result = run(["playbook", "run", str(book), "--dry-run"], {"HOME": str(tmp_path)})
    assert_one_line_error(result, f"playbook {book}", *fragments)


def test_dry_run_lists_resolved_steps(tmp_path):
    result = run(["playbook", "run", WAVES, "--dry-run", "--var", f"role={ROLE}", "--var", "ticket=CHG-9"], {})
    assert result.code == 0, result.err
    assert f"wave-1: rbac-migrate migrate apply --role {ROLE} --batch-size 1 --ticket CHG-9 --yes" in result.out
    missing = run(["playbook", "run", WAVES, "--dry-run", "--var", f"role={ROLE}"], {})
    assert_one_line_error(missing, "needs --var ticket=")
    unknown = run(["playbook", "run", WAVES, "--dry-run", "--var", "rol=x"], {})
    assert_one_line_error(unknown, "has no variable 'rol'")


def _waves(org, *extra: str):
    return org.run("playbook", "run", WAVES, "--var", f"role={ROLE}", "--var", "ticket=CHG-9", *extra)


def test_waves_run_to_the_end_with_gates_confirmed(org):
    result = _waves(org, "--var", "soak=0s", "--yes")
    assert result.code == 0, result.err
    batches = open_store(org.store_url).batches()
    assert [len(b.plan["units"]) for b in batches] == [1, 3, 3]  # 1 → 3 → the 3 candidates left
    assert all(b.status == "applied" and b.ticket == "CHG-9" for b in batches)
    rows = json.loads(org.run("playbook", "status", "--format", "json").out)
    assert rows[0]["state"] == "finished" and rows[0]["playbook"] == "migrate-role-in-waves"
    again = _waves(org, "--var", "soak=0s", "--yes")
    assert again.code == 0 and "already finished" in again.err


def test_gate_waits_then_a_second_process_resumes(org):
    first = _waves(org, "--var", "soak=2s", "--yes")
    assert first.code == 5, first.err
    assert "gate 'gate-1' opens at" in first.err
    assert [len(b.plan["units"]) for b in open_store(org.store_url).batches()] == [1]
    time.sleep(2.2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")} | org.env
    argv = [
        sys.executable,
        "-m",
        "rbac_migrate",
        "playbook",
        "run",
        WAVES,
        "--var",
        f"role={ROLE}",
        "--var",
        "ticket=CHG-9",
        "--var",
        "soak=2s",
        "--yes",
    ]
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 5, second.stderr
    assert "gate 'gate-2' opens at" in second.stderr
    assert [len(b.plan["units"]) for b in open_store(org.store_url).batches()] == [1, 3]


def test_gate_without_confirmation_waits(org):
    result = _waves(org, "--var", "soak=0s")  # no terminal, no --yes: nobody confirmed
    assert result.code == 5
    assert "waiting for confirmation" in result.err
    assert len(open_store(org.store_url).batches()) == 1


def test_gate_closes_after_a_rollback(org):
    assert _waves(org, "--var", "soak=0s").code == 5
    assert org.run("rollback", "1", "--yes").code == 0
    result = _waves(org, "--var", "soak=0s", "--yes")
    assert result.code == 1
    assert "gate 'gate-1' is closed: batch 1 was rolled back" in result.err
    actions = [r.action for r in open_store(org.store_url).audit_records()]
    assert actions.count("playbook.step") == 2 and "playbook.start" in actions


def test_new_joiner_playbook_end_to_end(org):
    dept, title = org.sample.role_profiles[ROLE]
    dn = f"uid=newbie,{org.sample.people_dn}"
    org.slapd.ldapadd(
        f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: newbie\ncn: New Bie\nsn: Bie\n"
        f"departmentNumber: {dept}\ntitle: {title}\n\n"
    )
    book = str(ROOT / "playbooks" / "new-joiner.yml")
    args = ["playbook", "run", book, "--var", "user=newbie", "--var", f"role={ROLE}", "--var", "ticket=HR-12"]
    waiting = org.run(*args)
    assert waiting.code == 5 and "waiting for confirmation" in waiting.err  # nobody confirmed yet
    done = org.run(*args, "--yes")
    assert done.code == 0, done.err
    role_dn = next(g.dn for g in org.sample.groups if g.cn == ROLE)
    listing = org.slapd.ldapsearch(role_dn, "(objectClass=*)", "member", scope="base").lower()
    assert dn.lower() in listing
    shown = json.loads(org.run("access", "show", "newbie", "--format", "json").out)
    assert shown["roles"] == [ROLE]
    assert {g["grant"] for g in shown["grants"]} == set(org.sample.profiles[(dept, title)])


def test_orphan_audit_playbook_writes_reports_and_verifies(org, tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    book = str(ROOT / "playbooks" / "orphan-audit.yml")
    result = org.run("playbook", "run", book, "--var", f"out={out}")
    assert result.code == 0, result.err
    summary = json.loads((out / "orphans.json").read_text())["summary"]
    assert summary["leaver-grant"] > 0 and summary["dangling-member"] > 0
    assert "<html" in (out / "orphans.html").read_text().lower()
    assert (out / "orphans.csv").read_text().splitlines()[0].startswith("category")
    assert "intact" in result.err + result.out


def test_dry_run_fills_variables_into_gates(tmp_path):
    result = run(["playbook", "run", WAVES, "--dry-run", "--var", f"role={ROLE}", "--var", "ticket=CHG-9"], {})
    assert result.code == 0, result.err
    assert f"gate-1: gate: confirm 'Wave 1 of {ROLE} is done." in result.out and "wait 1d" in result.out
    assert "{" not in result.out


def test_an_open_runs_gate_holds_against_other_variables(org):
    first = _waves(org, "--var", "soak=1h", "--yes")
    assert first.code == 5, first.err
    bypass = _waves(org, "--var", "soak=0s", "--yes")
    run_id = json.loads(org.run("playbook", "status", "--format", "json").out)[0]["run"]
    assert_one_line_error(bypass, f"run {run_id} of migrate-role-in-waves is still open", "--var soak=1h", "cancel")
    other_ticket = org.run("playbook", "run", WAVES, "--var", f"role={ROLE}", "--var", "ticket=X", "--yes")
    assert other_ticket.code == 1 and "still open" in other_ticket.err
    assert [len(b.plan["units"]) for b in open_store(org.store_url).batches()] == [1]
    again = _waves(org, "--var", "soak=1h", "--yes")  # the same call resumes and still waits
    assert again.code == 5 and "gate 'gate-1' opens at" in again.err

    assert_one_line_error(org.run("playbook", "cancel", "nope", "--reason", "x"), "there is no playbook run 'nope'")
    cancelled = org.run("playbook", "cancel", run_id, "--reason", "plan changed", "--ticket", "CHG-10")
    assert cancelled.code == 0, cancelled.err
    records = open_store(org.store_url).audit_records()
    assert [(r.details.get("reason"), r.ticket) for r in records if r.action == "playbook.cancel"] == [
        ("plan changed", "CHG-10")
    ]
    rows = json.loads(org.run("playbook", "status", "--format", "json").out)
    assert rows[0]["state"] == "cancelled"
    fresh = _waves(org, "--var", "soak=0s", "--yes")
    assert fresh.code == 0, fresh.err


def test_another_playbook_cannot_work_on_a_role_while_a_run_is_open_there(org, tmp_path):
    """A copy of the waves playbook under another name would otherwise start a run of its own on
    the role and skip the open run's gates."""
    copy = tmp_path / "faster-waves.yml"
    copy.write_text(Path(WAVES).read_text().replace("name: migrate-role-in-waves", "name: faster-waves", 1))
    first = _waves(org, "--var", "soak=1h", "--yes")
    assert first.code == 5, first.err
    run_id = json.loads(org.run("playbook", "status", "--format", "json").out)[0]["run"]
    args = ["playbook", "run", str(copy), "--var", "ticket=CHG-11", "--var", "soak=0s", "--yes"]
    refused = org.run(*args, "--var", f"role={ROLE.upper()}")
    assert_one_line_error(refused, f"run {run_id} of migrate-role-in-waves is still open on role", "cancel")
    assert [len(b.plan["units"]) for b in open_store(org.store_url).batches()] == [1]  # nothing more moved
    assert org.run("playbook", "cancel", run_id, "--reason", "switching playbook").code == 0
    after = org.run(*args, "--var", f"role={ROLE}")
    assert after.code == 0, after.err


def test_override_gate_opens_one_wait_early_and_is_audited(org):
    assert _waves(org, "--var", "soak=1h", "--yes").code == 5
    opened = _waves(org, "--var", "soak=1h", "--yes", "--override-gate", "first user checked by phone")
    assert opened.code == 5, opened.err
    assert "gate 'gate-2' opens at" in opened.err  # gate-1 opened early, gate-2 waits again
    assert [len(b.plan["units"]) for b in open_store(org.store_url).batches()] == [1, 3]
    records = open_store(org.store_url).audit_records()
    assert [(r.details["step"], r.details["reason"]) for r in records if r.action == "playbook.override"] == [
        ("gate-1", "first user checked by phone")
    ]
