"""Snapshot benchmark: ``rbac-migrate snapshot take`` against ``ldapsearch`` on a generated org.

Loads a synthetic organisation into a throwaway slapd, then alternates an ldapsearch
reference (the same searches, entries and attributes a snapshot reads) with
``rbac-migrate snapshot take`` into a store whose schema is in place (each run adds one
snapshot, as a team's store grows), and reports the median wall time of each,
their ratio and each child's own peak RSS.  ``rbac-migrate access show`` is then timed
against the store the last snapshot wrote.

    python tests/benchmarks/bench_snapshot.py [--users N] [--seed S] [--repeat R] [--keep]

Targets: snapshot take <= 2x ldapsearch and <= 1 GiB peak RSS; access show < 0.5 s.
Exit status: 0 when every step ran (whether or not the targets were met), 1 when one
failed to run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# common also puts the repository on sys.path, so rbac_migrate imports after it.
from common import (  # noqa: E402
    Bench,
    Run,
    gnu_time,
    ldapsearch_pass,
    parse_repeat_args,
    prepare_store,
    render,
    run_benchmark,
    run_child,
    setup,
    snapshot_take,
    tail,
    warm_up,
)

from rbac_migrate.demo.sampleorg import SampleOrg  # noqa: E402
from rbac_migrate.demo.sandbox import Slapd  # noqa: E402

SNAPSHOT_RATIO_TARGET = 2.0
RSS_TARGET_MIB = 1024
ACCESS_TARGET_SECONDS = 0.5


def access_show(bench: Bench, uid: str) -> Run:
    """One ``access show`` read from the store."""
    argv = [bench.cli, "--config", str(bench.config), "access", "show", uid]
    return run_child(argv, bench.env, bench.tmp / "access.out", bench.tmp / "access.err")


def pick_user(org: SampleOrg) -> str:
    """An enabled user from the middle of the org, holding a role when one does."""
    middle = org.users[len(org.users) // 2 :] + org.users[: len(org.users) // 2]
    enabled = [user for user in middle if not user.leaver]
    with_role = [user for user in enabled if user.roles]
    return (with_role or enabled or middle)[0].uid


def measure(bench: Bench, repeat: int) -> tuple[list[Run], list[Run]]:
    """Alternate the reference and the snapshot so drift affects both alike."""
    searches, snapshots = [], []
    prepare_store(bench)
    for _ in range(repeat):
        searches.append(ldapsearch_pass(bench))
        snapshots.append(snapshot_take(bench))
    return searches, snapshots


def median(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def peak_mib(runs: list[Run]) -> float:
    return max(run.rss_kib for run in runs) / 1024


def table(searches: list[Run], snapshots: list[Run], accesses: list[Run], uid: str) -> str:
    reference = median(searches)
    ratio = median(snapshots) / reference
    snap_met = ratio <= SNAPSHOT_RATIO_TARGET and peak_mib(snapshots) <= RSS_TARGET_MIB
    access_met = median(accesses) < ACCESS_TARGET_SECONDS and peak_mib(accesses) <= RSS_TARGET_MIB
    rows = [
        ("ldapsearch (4 searches)", f"{reference:.2f}", "1.00x", f"{peak_mib(searches):.0f}", "reference", "-"),
        (
            "snapshot take",
            f"{median(snapshots):.2f}",
            f"{ratio:.2f}x",
            f"{peak_mib(snapshots):.0f}",
            f"<= {SNAPSHOT_RATIO_TARGET:g}x, <= {RSS_TARGET_MIB} MiB",
            "yes" if snap_met else "NO",
        ),
        (
            f"access show {uid}",
            f"{median(accesses):.2f}",
            "-",
            f"{peak_mib(accesses):.0f}",
            f"< {ACCESS_TARGET_SECONDS:g} s",
            "yes" if access_met else "NO",
        ),
    ]
    return render(("step", "median s", "vs ldapsearch", "peak RSS MiB", "target", "met"), rows)


def runs_line(name: str, runs: list[Run]) -> str:
    return f"  {name}: " + " ".join(f"{run.seconds:.2f}" for run in runs)


def benchmark(args: argparse.Namespace, tmp: Path, server: Slapd) -> None:
    bench = setup(args, tmp, server, Bench)
    warm_up(bench)
    searches, snapshots = measure(bench, args.repeat)
    uid = pick_user(bench.org)
    accesses = [access_show(bench, uid) for _ in range(args.repeat)]
    print(f"snapshot: {tail(tmp / 'snapshot.err').rsplit(' | ', 1)[-1]}")
    print(f"runs ({args.repeat} each, seconds):")
    for name, runs in (("ldapsearch", searches), ("snapshot take", snapshots), ("access show", accesses)):
        print(runs_line(name, runs))
    print(table(searches, snapshots, accesses, uid))
    print(rss_note())


def rss_note() -> str:
    if gnu_time():
        return "peak RSS: each child's own high-water mark (GNU time %M)"
    return "peak RSS: os.wait4 per child; without GNU time it includes this script's size at spawn (an upper bound)"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    return run_benchmark(parse_repeat_args(argv, __doc__, repeat=3), "bench_snapshot", benchmark)


if __name__ == "__main__":
    sys.exit(main())
