"""Many random plan/apply/crash/resume/rollback cycles: access never changes, rollback is exact."""

from __future__ import annotations

import json
import random

from rbac_migrate import snapshot
from rbac_migrate.access import AccessGraph
from rbac_migrate.config import load_settings
from rbac_migrate.model import USER
from rbac_migrate.store import open_store
from tests.test_interruption import apply_in_subprocess
from tests.test_migration import managed_state


def effective_access(org) -> dict[str, frozenset[str]]:
    """Every user's effective grants, from a fresh snapshot of the live directory."""
    settings = load_settings(config=str(org.config), environ=org.env)
    snap = snapshot.take_snapshot(settings, open_store(org.store_url), prompt=lambda _text: org.slapd.admin_password)
    graph = AccessGraph(snap)
    return {
        e.name: frozenset(graph.by_idx[g].name for g in graph.effective_grants(e.idx))
        for e in snap.entries
        if e.kind == USER
    }


def test_random_cycles_keep_access_and_roll_back_exactly(org, tmp_path):
    rng = random.Random(20261122)
    original = managed_state(org)
    baseline = effective_access(org)
    roles = sorted(org.sample.role_profiles)
    live_batches: list[int] = []
    store = open_store(org.store_url)
    performed: set[str] = set()
    for cycle in range(30):
        action = rng.choice(["apply", "apply", "crash-then-resume", "crash-then-rollback", "rollback"])
        if action == "rollback" and live_batches:
            batch = live_batches.pop(rng.randrange(len(live_batches)))
            assert org.run("rollback", str(batch), "--yes").code == 0, cycle
            performed.add(action)
        elif action != "rollback":
            plan = tmp_path / f"plan{cycle}.json"
            size = rng.randint(1, 3)
            result = org.run("migrate", "plan", "--role", rng.choice(roles), "--batch-size", str(size), "-o", str(plan))
            if result.code != 0:
                assert "no user to migrate" in result.err, result.err
                continue
            points = 2 * len(json.loads(plan.read_text())["units"])
            kill_at = None if action == "apply" else rng.randint(1, points)
            done = apply_in_subprocess(org, str(plan), kill_at)
            batch = store.batches()[-1].id
            if kill_at is None:
                assert done.returncode == 0, done.stderr
            else:
                assert done.returncode == -9, done.stderr
                verb = ["migrate", "resume"] if action == "crash-then-resume" else ["rollback"]
                assert org.run(*verb, str(batch), "--yes").code == 0, (cycle, action)
            if action != "crash-then-rollback":
                live_batches.append(batch)
            performed.add(action)
        assert effective_access(org) == baseline, (cycle, action)
    assert performed == {"apply", "crash-then-resume", "crash-then-rollback", "rollback"}
    for batch in reversed(live_batches):
        assert org.run("rollback", str(batch), "--yes").code == 0
    assert managed_state(org) == original
    assert effective_access(org) == baseline
    assert all(b.status in ("rolled_back", "applied") for b in store.batches())
