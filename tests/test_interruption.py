"""Promise 6 and concurrency: a batch killed at any write point, a dropped connection, two operators."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from rbac_migrate.store import journal, open_store
from tests.support.cli import assert_one_line_error
from tests.support.reader import DirectoryReader, access_changes
from tests.test_migration import candidates, managed_state, plan_file

FAULT_ENV = "RBAC_MIGRATE_FAULT_KILL_AT"  # SIGKILL at the Nth write point (just before and after each write)
MAX_WRITE_POINTS = 200


def cli_in_subprocess(org, kill_at: int | None, *args: str) -> subprocess.CompletedProcess:
    """``rbac-migrate ARGS`` in a process of its own, SIGKILLed at write point ``kill_at`` if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBAC_MIGRATE_")}
    env.update(org.env)
    if kill_at is not None:
        env[FAULT_ENV] = str(kill_at)
    argv = [sys.executable, "-m", "rbac_migrate", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def apply_in_subprocess(org, plan: str, kill_at: int | None, *extra: str) -> subprocess.CompletedProcess:
    return cli_in_subprocess(org, kill_at, *extra, "migrate", "apply", plan, "--yes")


def kill_points(run_killed: Callable[[int], subprocess.CompletedProcess]) -> Iterator[int]:
    """Kill a run at write point 1, 2, 3 ... yielding each point it died at, until one runs through.

    Nothing here knows how many write points a batch has: the run that is not killed ends the loop.
    """
    for kill_at in itertools.count(1):
        assert kill_at <= MAX_WRITE_POINTS, "the run never finished without being killed"
        done = run_killed(kill_at)
        if done.returncode == 0:
            assert kill_at > 1, "the run was never killed: no write point was reached"
            return
        assert done.returncode == -9, (kill_at, done.returncode, done.stderr)
        yield kill_at


def step_states(org, batch: int) -> list[str]:
    """Each step's state as ``batches show`` reports it."""
    shown = org.run("batches", "show", str(batch), "--format", "json")
    assert shown.code == 0, shown.err
    return [row["step_state"] for row in json.loads(shown.out)]


def batch_status(org, batch: int) -> str:
    listing = json.loads(org.run("batches", "list", "--format", "json").out)
    return next(row["status"] for row in listing if row["id"] == batch)


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_killed_at_every_write_point_then_resumed_or_rolled_back(org, tmp_path, transactions):
    kill_at_write_points(org, tmp_path, transactions)


def kill_at_write_points(org, tmp_path, transactions: str) -> None:
    """Kill apply at every write point, resuming or rolling back each time; the states are a clean run's."""
    flag = ("--set", f"transactions={transactions}")
    assert org.run("snapshot", "take").code == 0
    plan = plan_file(org, tmp_path, candidates(org, 2))
    before = managed_state(org)
    clean = apply_in_subprocess(org, plan, None, *flag)
    assert clean.returncode == 0, clean.stderr
    after, applied_states = managed_state(org), step_states(org, 1)
    assert org.run(*flag, "rollback", "1", "--yes").code == 0
    assert managed_state(org) == before
    undone_states = step_states(org, 1)
    batch = 1

    def killed_apply(kill_at: int) -> subprocess.CompletedProcess:
        nonlocal batch
        batch += 1
        return apply_in_subprocess(org, plan, kill_at, *flag)

    for kill_at in kill_points(killed_apply):
        if kill_at == 1:
            untouched = step_states(org, batch)[-1]  # the state of a step nothing has written yet
        refused = org.run(*flag, "migrate", "apply", plan, "--yes")
        assert_one_line_error(refused, f"batch {batch} was interrupted", "migrate resume", "rollback")
        if kill_at % 2:
            result = org.run(*flag, "migrate", "resume", str(batch), "--yes")
            assert result.code == 0, (kill_at, result.err)
            assert managed_state(org) == after, kill_at
            assert step_states(org, batch) == applied_states, kill_at  # nothing left unknown
            assert org.run(*flag, "rollback", str(batch), "--yes").code == 0
        else:
            result = org.run(*flag, "rollback", str(batch), "--yes")
            assert result.code == 0, (kill_at, result.err)
        assert managed_state(org) == before, kill_at
        assert set(step_states(org, batch)) <= {*undone_states, untouched}, kill_at  # nothing left unknown
    assert managed_state(org) == after  # the last run went through untouched
    assert org.run(*flag, "rollback", str(batch), "--yes").code == 0
    assert managed_state(org) == before


def small_role(org, tmp_path, users: int) -> str:
    """A new role granting two common grants, and a plan moving ``users`` people onto it.

    Each person costs three writes (the role added, two grants deleted): every write point of a
    rollback or a resume can be killed in turn in a few seconds.
    """
    sample = org.sample
    common = sorted({"chat", "email"} & {g.cn for g in sample.groups})
    chosen = [u for u in sample.users if not u.leaver and not u.roles and set(common) <= u.direct_grants][:users]
    holder = next(u for u in sample.users if u not in chosen)
    role = f"cn=role-small,{sample.role_base}"
    org.slapd.ldapadd(f"dn: {role}\nobjectClass: groupOfNames\ncn: role-small\nmember: {holder.dn}\n\n")
    for grant in common:
        org.slapd.ldapmodify(f"dn: cn={grant},{sample.grant_base}\nchangetype: modify\nadd: member\nmember: {role}\n\n")
    assert org.run("snapshot", "take").code == 0
    path = tmp_path / "small.json"
    made = org.run("migrate", "plan", "--role", "role-small", "--users", ",".join(u.uid for u in chosen), "-o", path)
    assert made.code == 0, made.err
    return str(path)


@dataclass
class SmallBatch:
    """A small plan, the directory before it, and what an uninterrupted apply and rollback leave."""

    plan: str
    reader: DirectoryReader
    before: dict[str, list[str]]
    access: dict[str, frozenset[str]]
    planned: dict[str, list[str]]
    applied: list[str]
    undone: list[str]


def small_batch(org, tmp_path, transactions: str, users: int) -> SmallBatch:
    """Plan a small batch, then apply and roll back batch 1 untouched, as the reference run."""
    org.env["RBAC_MIGRATE_TRANSACTIONS"] = transactions
    plan = small_role(org, tmp_path, users)
    reader = DirectoryReader.for_org(org)
    before, access = reader.members(), reader.access()
    assert org.run("migrate", "apply", plan, "--yes").code == 0
    planned, applied = reader.members(), step_states(org, 1)
    assert org.run("rollback", "1", "--yes").code == 0
    assert reader.members() == before
    return SmallBatch(plan, reader, before, access, planned, applied, step_states(org, 1))


# 2 users with transactions (2 write units), 1 without (3 units): every point is killed in seconds.
MODES = [("auto", 2), ("off", 1)]


@pytest.mark.parametrize(("transactions", "users"), MODES)
def test_rollback_killed_at_every_write_point_then_finished(org, tmp_path, transactions, users):
    ref = small_batch(org, tmp_path, transactions, users)
    reader, plan, before = ref.reader, ref.plan, ref.before
    batch = 1

    def killed_rollback(kill_at: int) -> subprocess.CompletedProcess:
        nonlocal batch
        batch += 1
        assert org.run("migrate", "apply", plan, "--yes").code == 0
        return cli_in_subprocess(org, kill_at, "rollback", str(batch), "--yes")

    for kill_at in kill_points(killed_rollback):
        finished = org.run("rollback", str(batch), "--yes", "--format", "json")
        assert finished.code == 0, (kill_at, finished.err)
        assert reader.members() == before, kill_at  # exactly as before the batch, every value
        assert access_changes(ref.access, reader.access()) == {}, kill_at
        assert step_states(org, batch) == ref.undone, kill_at  # nothing left unknown
        assert batch_status(org, batch) == batch_status(org, 1), kill_at
    assert reader.members() == before  # the last rollback went through untouched
    assert step_states(org, batch) == ref.undone


@pytest.mark.parametrize(("transactions", "users"), MODES)
def test_resume_killed_at_every_write_point_then_finished(org, tmp_path, transactions, users):
    ref = small_batch(org, tmp_path, transactions, users)
    reader, plan, before, planned = ref.reader, ref.plan, ref.before, ref.planned
    batch = 1

    def killed_resume(kill_at: int) -> subprocess.CompletedProcess:
        nonlocal batch
        if batch > 1:
            assert org.run("rollback", str(batch), "--yes").code == 0
            assert reader.members() == before
        batch += 1
        # Killed after the first unit is written and journaled, just before the second is sent.
        assert apply_in_subprocess(org, plan, 3).returncode == -9
        return cli_in_subprocess(org, kill_at, "migrate", "resume", str(batch), "--yes")

    for kill_at in kill_points(killed_resume):
        refused = org.run("migrate", "apply", plan, "--yes")
        assert_one_line_error(refused, f"batch {batch}", "resume", "rollback")
        finished = org.run("migrate", "resume", str(batch), "--yes")
        assert finished.code == 0, (kill_at, finished.err)
        assert reader.members() == planned, kill_at  # exactly as planned, every value
        assert access_changes(ref.access, reader.access()) == {}, kill_at
        assert step_states(org, batch) == ref.applied, kill_at  # nothing left unknown
        assert batch_status(org, batch) == "applied", kill_at
    assert reader.members() == planned  # the last resume went through untouched
    assert step_states(org, batch) == ref.applied


def test_killed_rollback_is_found_by_the_next_run(org, tmp_path):
    plan = small_role(org, tmp_path, 1)
    assert org.run("migrate", "apply", plan, "--yes").code == 0
    applied = batch_status(org, 1)
    assert cli_in_subprocess(org, 2, "rollback", "1", "--yes").returncode == -9  # one value restored
    assert batch_status(org, 1) != applied
    assert "batch 1" in org.run("migrate", "status").err


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
