"""Alternate two versions of ``snapshot take`` on one generated organisation, round by round.

A change worth a tenth of a second cannot be told apart in two separate runs of
``bench_snapshot.py`` on a machine whose speed drifts by more than that. This script loads one
org into a throwaway slapd and, R times, runs both versions in turn (which one goes first
alternates): a first snapshot into an empty store and a repeat after 100 member changes, each
over the ldapsearch pass made just before it, with the CPU seconds each used. A version is a
source tree put first on PYTHONPATH: ``--base`` (say, a git worktree of the previous commit)
against this repository.

    git worktree add /tmp/base HEAD~1
    python tests/benchmarks/bench_alternate.py --base /tmp/base [--users N] [--repeat R] [--postgres]

Exit status: 0 when every step ran, 1 when one failed to run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_snapshot import CHANGES, member_changes, use_postgres  # noqa: E402
from common import (  # noqa: E402
    REPO,
    Bench,
    ldapsearch_pass,
    new_parser,
    prepare_store,
    render,
    run_benchmark,
    setup,
    snapshot_take,
    warm_up,
)

from rbac_migrate.demo.sandbox import Slapd  # noqa: E402


def versions(bench: Bench, base: Path) -> dict[str, Bench]:
    """The benchmark as each version runs it: its source tree first on PYTHONPATH, byte-compiled."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(base / "rbac_migrate")], check=True)
    trees = {"base": base, "this": REPO}
    return {name: replace(bench, env={**bench.env, "PYTHONPATH": str(tree)}) for name, tree in trees.items()}


def measure(runs: dict[str, Bench], repeat: int) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(ratio to the ldapsearch just before, CPU seconds) per version and step."""
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    members = {g.dn: list(g.members) for g in next(iter(runs.values())).org.groups}
    for number in range(repeat):
        order = list(runs) if number % 2 == 0 else list(runs)[::-1]
        for name in order:
            bench = runs[name]
            prepare_store(bench)
            reference = ldapsearch_pass(bench)
            first = snapshot_take(bench)
            member_changes(bench, CHANGES, number * 2 + order.index(name), members)
            again_reference = ldapsearch_pass(bench)
            again = snapshot_take(bench)
            for step, run, ref in (("first snapshot", first, reference), ("repeat snapshot", again, again_reference)):
                found.setdefault((name, step), []).append((run.seconds / ref.seconds, run.cpu_seconds))
        print(f"  round {number + 1} of {repeat} done ({' then '.join(order)})", flush=True)
    return found


def benchmark(args: argparse.Namespace, tmp: Path, server: Slapd) -> None:
    bench = setup(args, tmp, server, Bench)
    if args.postgres:
        use_postgres(bench, tmp)
    warm_up(bench)
    found = measure(versions(bench, Path(args.base).resolve()), args.repeat)
    rows = []
    for step in ("first snapshot", "repeat snapshot"):
        for name in ("base", "this"):
            pairs = found[(name, step)]
            ratios = " ".join(f"{ratio:.2f}" for ratio, _cpu in pairs)
            median_ratio = statistics.median(ratio for ratio, _cpu in pairs)
            median_cpu = statistics.median(cpu for _ratio, cpu in pairs)
            rows.append((step, name, f"{median_ratio:.3f}x", f"{median_cpu:.2f}", ratios))
    print(render(("step", "version", "median vs ldapsearch", "median CPU s", "each round"), rows))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; return the exit status."""
    parser = new_parser(__doc__, 100_000)
    parser.add_argument("--base", required=True, help="source tree of the version to compare against")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--repeat", type=int, default=6, help="rounds, each running both versions (default 6)")
    parser.add_argument("--postgres", action="store_true", help="store in a throwaway PostgreSQL")
    parser.add_argument("--keep", action="store_true", help="leave the server running and the files in place")
    args = parser.parse_args(argv)
    if not (Path(args.base) / "rbac_migrate").is_dir():
        parser.error(f"--base {args.base} holds no rbac_migrate source tree")
    return run_benchmark(args, "bench_alternate", benchmark)


if __name__ == "__main__":
    sys.exit(main())
