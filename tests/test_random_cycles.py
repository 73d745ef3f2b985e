"""Random plan/apply/hand-change/rollback cycles: nobody's access changes, rollback is exact.

Every run draws its own seed (set RBAC_MIGRATE_TEST_SEED to replay one; every assertion message
names it). The sample organisation, the roles, the users, the crashes and the hand changes all
come from that seed. The directory is judged by tests/support/reader.py, which shares no code with
rbac_migrate: a bug in the product's own access graph cannot hide itself here.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.conftest import Org
from tests.support.reader import DirectoryReader, access_changes, normalise_dn
from tests.test_interruption import apply_in_subprocess

SEED_ENV = "RBAC_MIGRATE_TEST_SEED"
CYCLES = 6


def draw_seed() -> int:
    """The seed to replay from the environment, else a fresh one."""
    raw = os.environ.get(SEED_ENV, "").strip()
    return int(raw) if raw else random.SystemRandom().randrange(10**6)


class Cycles:
    """One run of random cycles against one org; ``ctx`` goes into every assertion message."""

    def __init__(self, org: Org, rng: random.Random, seed: int, mode: str, tmp_path: Path):
        self.org, self.rng, self.tmp_path = org, rng, tmp_path
        self.reader = DirectoryReader.for_org(org)
        self.seed, self.mode = seed, mode
        self.live: dict[int, tuple[set[str], dict[str, list[str]]]] = {}  # batch -> (users, members before)
        self.expected_end = self.reader.members()  # the start plus every hand change
        self.step = ""

    @property
    def ctx(self) -> str:
        return f"{SEED_ENV}={self.seed} transactions={self.mode} at {self.step}"

    def ok(self, *args: str):
        result = self.org.run(*args)
        assert result.code == 0, (self.ctx, args, result.err)
        return result

    def plan(self, cycle: int) -> tuple[str, set[str]] | None:
        """A plan for a random role and a random few of its safe candidates outside live batches."""
        self.ok("snapshot", "take")
        role = self.rng.choice(sorted(self.org.sample.role_profiles))
        shown = json.loads(self.ok("role", "candidates", role, "--format", "json").out)
        busy = set().union(*(users for users, _ in self.live.values()))
        free = [c for c in shown["candidates"] if normalise_dn(c["dn"]) not in busy]
        if not free:
            return None
        chosen = self.rng.sample(free, self.rng.randint(1, min(3, len(free))))
        path = self.tmp_path / f"plan{cycle}.json"
        self.ok("migrate", "plan", "--role", role, "--users", ",".join(c["user"] for c in chosen), "-o", str(path))
        return str(path), {normalise_dn(c["dn"]) for c in chosen}

    def apply(self, plan: str, users: set[str]) -> None:
        """Apply, sometimes killed at a random write point and then resumed or rolled back."""
        members, access = self.reader.members(), self.reader.access()
        kill_at = self.rng.choice([None, None, self.rng.randint(1, 8)])
        done = apply_in_subprocess(self.org, plan, kill_at)
        batch = json.loads(self.ok("batches", "list", "--format", "json").out)[-1]["id"]
        self.step += f" batch {batch} (kill at {kill_at})"
        assert done.returncode in (0, -9), (self.ctx, done.stderr)
        if done.returncode == -9 and self.rng.random() < 0.5:
            self.ok("rollback", str(batch), "--yes")
            assert self.reader.members() == members, self.ctx
        else:
            if done.returncode == -9:
                self.ok("migrate", "resume", str(batch), "--yes")
            self.live[batch] = (users, members)
        assert access_changes(access, self.reader.access()) == {}, self.ctx

    def hand_changes(self) -> None:
        """Someone else adds and removes member values of users no live batch touches."""
        busy = set().union(*(users for users, _ in self.live.values()))
        people = [u.dn for u in self.org.sample.users if normalise_dn(u.dn) not in busy]
        groups = sorted(self.reader.members().items())
        # Only people's values: unnesting a group would change the access of a batch's users too.
        untouchable = busy | {g for g, _ in groups}
        for _ in range(self.rng.randint(1, 3)):
            group, values = self.rng.choice(groups)
            theirs = [v for v in values if normalise_dn(v) not in untouchable]
            present = {normalise_dn(v) for v in values}
            if self.rng.random() < 0.5 and len(values) > 1 and theirs:
                op, value = "delete", self.rng.choice(theirs)
            else:
                op, value = "add", self.rng.choice([p for p in people if normalise_dn(p) not in present])
            self.org.slapd.ldapmodify(f"dn: {group}\nchangetype: modify\n{op}: member\nmember: {value}\n\n")
            values = sorted(set(values) | {value}) if op == "add" else sorted(set(values) - {value})
            groups = [(g, values if g == group else v) for g, v in groups]
            kept = [v for v in self.expected_end[group] if normalise_dn(v) != normalise_dn(value)]
            self.expected_end[group] = sorted(kept + [value]) if op == "add" else kept
            self.step += f" {op} {value} in {group};"

    def rollback(self, batch: int) -> None:
        """Roll back: the batch's users exactly as before it, everyone else's values untouched."""
        users, before = self.live.pop(batch)
        now, access = self.reader.members(), self.reader.access()
        self.step += f" rollback {batch}"
        result = self.ok("rollback", str(batch), "--yes", "--format", "json")
        assert {r["outcome"] for r in json.loads(result.out)} == {"restored"}, (self.ctx, result.out)
        after = self.reader.members()
        for group in sorted(set(now) | set(after)):
            others = [v for v in now.get(group, []) if normalise_dn(v) not in users]
            restored = [v for v in before.get(group, []) if normalise_dn(v) in users]
            # A groupOfNames cannot be empty: the empty DN (naming nobody) then holds it open.
            assert after.get(group) == (sorted(others + restored) or [""]), (self.ctx, group)
        assert access_changes(access, self.reader.access()) == {}, self.ctx


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_random_cycles_keep_access_and_roll_back_exactly(slapd, ldap_base, tmp_path, transactions):
    seed = draw_seed()
    print(f"{SEED_ENV}={seed}")  # shown with the captured output of a failing run
    rng = random.Random(seed)
    org = Org(slapd, ldap_base, tmp_path, users=100, seed=seed)
    org.env["RBAC_MIGRATE_TRANSACTIONS"] = transactions
    run = Cycles(org, rng, seed, transactions, tmp_path)
    applied = 0
    for cycle in range(CYCLES):
        run.step = f"cycle {cycle}:"
        planned = run.plan(cycle)
        if planned is not None:
            run.apply(*planned)
            applied += 1
        run.hand_changes()
        if run.live and rng.random() < 0.6:
            run.rollback(rng.choice(sorted(run.live)))
    run.step = "end:"
    for batch in rng.sample(sorted(run.live), len(run.live)):
        run.rollback(batch)
    assert applied >= CYCLES // 2, run.ctx
    # A group the hand changes and rollbacks left without members is held open by the empty DN.
    assert run.reader.members() == {g: values or [""] for g, values in run.expected_end.items()}, run.ctx
