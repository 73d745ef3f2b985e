"""Mining by job on a generated noisy organisation, against the minimum exact cover of the same access.

A 3,000-person organisation in 62 jobs (department + title), where 30% hold one to three personal
extras, 5% lack one right of their job and 5% moved and kept their old job's rights. Prints, per
seed: jobs recovered exactly (the role equals the job's true profile), roles per job, grants left
direct, and the time, next to the exact cover's role count and time (the reference).

    python tests/benchmarks/bench_jobmining.py [--people N] [--jobs N] [--seeds N] [--baseline-share S]

Exit status: 0 when at least 90% of jobs are recovered with at most 1.5 roles per job, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rbac_migrate.mining import mine_roles  # noqa: E402
from rbac_migrate.mining.jobs import EXTRA, MISSING, OLD_JOB, mine_jobs  # noqa: E402
from tests.support.noisyorg import generate  # noqa: E402


def measure(people: int, jobs: int, seed: int, baseline_share: float | None) -> tuple[str, bool]:
    org = generate(people=people, jobs=jobs, seed=seed)
    started = time.perf_counter()
    result = mine_jobs(org.access, org.attrs(), baseline_share=baseline_share)
    seconds = time.perf_counter() - started
    base = result.baseline.grants if result.baseline else frozenset()
    exact = sum(
        1
        for role in result.roles
        if len(role.jobs) == 1 and role.grants | base == org.profiles[tuple(v for _a, v in role.jobs[0])]
    )
    started = time.perf_counter()
    cover = mine_roles(org.access)
    reference = time.perf_counter() - started
    ok = exact >= 0.9 * len(org.profiles) and result.roles_per_job <= 1.5
    line = (
        f"| {seed} | {people:,} | {exact} of {len(org.profiles)} | {len(result.all_roles())} "
        f"({result.roles_per_job:.2f} per job) | {result.left_direct():,} ({result.left_direct(EXTRA):,} extra, "
        f"{result.left_direct(OLD_JOB):,} old job) | {result.left_direct(MISSING):,} | {seconds:.2f} s "
        f"| {cover.role_count} in {reference:.1f} s | {seconds / reference:.3f} |"
    )
    return line, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=62)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baseline-share", type=float, default=None)
    args = parser.parse_args(argv)
    print(
        "| seed | people | jobs recovered exactly | roles | grants left direct | rights lacked | time "
        "| exact cover (reference) | time ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for seed in range(1, args.seeds + 1):
        line, ok = measure(args.people, args.jobs, seed, args.baseline_share)
        print(line, flush=True)
        verdicts.append(ok)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
