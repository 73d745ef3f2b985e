"""Promise 6 and concurrency: a batch killed at any write point, a dropped connection, two operators."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rbac_migrate.store import journal, open_store
from tests.support.cli import assert_one_line_error
from tests.test_migration import candidates, managed_state, plan_file


def apply_in_subprocess(org, plan: str, kill_at: int | None, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")}
    env.update(org.env)
    if kill_at is not None:
        env["RBAC_MIGRATE_FAULT_KILL_AT"] = str(kill_at)
    argv = [sys.executable, "-m", "rbac_migrate", *extra, "migrate", "apply", plan, "--yes"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_killed_at_every_write_point_then_resumed_or_rolled_back(org, tmp_path, transactions):
    kill_at_write_points(org, tmp_path, transactions)


def kill_at_write_points(org, tmp_path, transactions: str, every: int = 1) -> None:
    """Kill apply at every ``every``-th write point and the last, resuming or rolling back each time."""
    flag = ("--set", f"transactions={transactions}")
    assert org.run("snapshot", "take").code == 0
    plan = plan_file(org, tmp_path, candidates(org, 2))
    before = managed_state(org)
    clean = apply_in_subprocess(org, plan, None, *flag)
    assert clean.returncode == 0, clean.stderr
    after = managed_state(org)
    assert org.run(*flag, "rollback", "1", "--yes").code == 0
    assert managed_state(org) == before
    writes = sum(len(u["edits"]) for u in json.loads(open(plan).read())["units"])
    points = 2 * (2 if transactions == "auto" else writes)
    chosen = sorted({*range(1, points + 1, every), points})
    for batch, kill_at in enumerate(chosen, start=2):
        killed = apply_in_subprocess(org, plan, kill_at, *flag)
        assert killed.returncode == -9, (kill_at, killed.stderr)
        refused = org.run(*flag, "migrate", "apply", plan, "--yes")
        assert_one_line_error(refused, f"batch {batch} was interrupted", "migrate resume", "rollback")
        if kill_at % 2:
            result = org.run(*flag, "migrate", "resume", str(batch), "--yes")
            assert result.code == 0, (kill_at, result.err)
            assert managed_state(org) == after, kill_at
            assert org.run(*flag, "rollback", str(batch), "--yes").code == 0
        else:
            result = org.run(*flag, "rollback", str(batch), "--yes")
            assert result.code == 0, (kill_at, result.err)
        assert managed_state(org) == before, kill_at
    steps = open_store(org.store_url).batch(len(chosen) + 1).steps
    assert {s.state for s in steps} <= {"undone", "pending"}  # nothing left unknown


def test_slapd_restarted_mid_batch_then_resume(org, tmp_path, monkeypatch):
    assert org.run("snapshot", "take").code == 0
    users = candidates(org, 3)
    plan = plan_file(org, tmp_path, users)
    before = managed_state(org)
    from rbac_migrate.migration import engine

    original = engine.Engine.apply_user
    calls = []

    def apply_then_drop(self, batch, user):
        calls.append(user.user_dn)
        if len(calls) == 2:
            org.slapd.restart()  # the server restarts under the second user's writes
        return original(self, batch, user)

    monkeypatch.setattr(engine.Engine, "apply_user", apply_then_drop)
    result = org.run("migrate", "apply", plan, "--yes")
    assert result.code == 1
    assert "interrupted" in result.err and "migrate resume 1" in result.err
    monkeypatch.setattr(engine.Engine, "apply_user", original)
    store = open_store(org.store_url)
    assert store.batch(1).status == "running"
    resumed = org.run("migrate", "resume", "1", "--yes")
    assert resumed.code == 0, resumed.err
    assert store.batch(1).status == "applied"
    assert org.run("rollback", "1", "--yes").code == 0
    assert managed_state(org) == before


def _hold_lock(store_url: str) -> subprocess.Popen:
    """A live process whose pid holds the migration lock, as a concurrent operator would."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    store = open_store(store_url)
    with store.begin() as conn:
        journal.acquire_lock(conn, "migration", f"{journal.socket.gethostname()}:{sleeper.pid}")
    return sleeper


def test_second_operator_is_refused_while_one_applies(org_on_store, tmp_path):
    org = org_on_store
    assert org.run("snapshot", "take").code == 0
    plan = plan_file(org, tmp_path, candidates(org, 1))
    state = managed_state(org)
    sleeper = _hold_lock(org.store_url)
    try:
        result = org.run("migrate", "apply", plan, "--yes")
        assert_one_line_error(result, "another operator", "wait for it to finish")
        assert managed_state(org) == state
    finally:
        sleeper.kill()
        sleeper.wait()
    # The holder died without releasing: the lock is taken over, not stuck forever.
    assert org.run("migrate", "apply", plan, "--yes").code == 0


def test_two_operators_racing_one_wins(org_on_store, tmp_path):
    org = org_on_store
    assert org.run("snapshot", "take").code == 0
    plan = plan_file(org, tmp_path, candidates(org, 2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")}
    env.update(org.env)
    argv = [sys.executable, "-m", "rbac_migrate", "migrate", "apply", plan, "--yes"]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    loser = next(err for code, err in outcomes if code == 1)
    assert any(
        m in loser for m in ("another operator", "the directory changed since the plan", "already applied as batch")
    )
    assert [b.status for b in open_store(org.store_url).batches()] == ["applied"]
