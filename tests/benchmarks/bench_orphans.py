"""Orphan-report benchmark: ``rbac-migrate report orphans`` from the store against ``ldapsearch``.

Loads a synthetic organisation into a throwaway slapd and takes one snapshot.  Then, in the
same run, alternates an ldapsearch pass re-reading the directory (the searches a snapshot
makes) with ``report orphans --format json`` from the store, and prints the median of each
and their ratio.  Finally it writes the HTML report, prints its size, and times headless
chromium opening it (the page records when its findings table was drawn).

With ``--history`` it then changes the directory a little (new direct grants, people moving
job) and takes four more snapshots, and measures the report over the five in the same way:
every stored snapshot counts toward the trend and the first sightings.

    python tests/benchmarks/bench_orphans.py [--users N] [--seed S] [--repeat R] [--history] [--keep]

Target: report orphans faster than ldapsearch (ratio < 1).  Exit status: 0 when every step
ran (whether or not the target was met), 1 when one failed to run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# common also puts the repository on sys.path, so rbac_migrate imports after it.
from common import (  # noqa: E402
    Bench,
    BenchError,
    Run,
    ldapsearch_pass,
    parse_repeat_args,
    run_benchmark,
    run_child,
    setup,
    snapshot_take,
    tail,
    warm_up,
)

from rbac_migrate.demo.sandbox import Slapd  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)  # fmt: skip


def report(bench: Bench, name: str, *args: str) -> Run:
    """One ``report orphans`` read from the store."""
    argv = [bench.cli, "--config", str(bench.config), "report", "orphans", *args]
    return run_child(argv, bench.env, bench.tmp / f"{name}.out", bench.tmp / f"{name}.err")


def measure(bench: Bench, repeat: int) -> tuple[list[Run], list[Run]]:
    """Alternate the two so drift in the machine's load affects both alike."""
    searches, reports = [], []
    for _ in range(repeat):
        searches.append(ldapsearch_pass(bench))
        reports.append(report(bench, "orphans-json", "--format", "json"))
    return searches, reports


def compare(label: str, searches: list[Run], reports: list[Run]) -> None:
    """Each contender's runs, their medians and the ratio."""
    print(f"runs ({len(reports)} each, seconds):")
    print("  ldapsearch:     " + " ".join(f"{r.seconds:.2f}" for r in searches))
    print("  report orphans: " + " ".join(f"{r.seconds:.2f}" for r in reports))
    reference = statistics.median(r.seconds for r in searches)
    ours = statistics.median(r.seconds for r in reports)
    peak = max(r.rss_kib for r in reports) / 1024
    verdict = "met" if ours < reference else "NOT met"
    print(
        f"report orphans{label} {ours:.2f} s vs ldapsearch {reference:.2f} s: ratio {ours / reference:.2f} "
        f"(target < 1: {verdict}); report peak RSS {peak:.0f} MiB"
    )


def checked_snapshot(bench: Bench, users: int) -> str:
    """The summary line of the snapshot just taken, which must hold every user of the org."""
    line = tail(bench.tmp / "snapshot.err").rsplit(" | ", 1)[-1]
    found = re.search(r"snapshot \d+: (\d+) users", line)
    if found is None or int(found.group(1)) != users:
        raise BenchError(
            f"snapshot take did not read all {users:,} users, so a report would judge part of the org: {line}"
        )
    return line


def change_directory(bench: Bench, round_: int) -> None:
    """A day's changes: 20 people gain a direct grant, 20 move to another job's title."""
    rng = random.Random(round_)
    people = rng.sample(bench.org.users, 40)
    grants = [g for g in bench.org.groups if g.dn.endswith(bench.org.grant_base)]
    titles = sorted({user.title for user in bench.org.users})
    records = []
    for user in people[:20]:
        group = rng.choice([g for g in grants if g.cn not in user.direct_grants and user.dn not in g.members])
        records.append(f"dn: {group.dn}\nchangetype: modify\nadd: member\nmember: {user.dn}\n")
    for user in people[20:]:
        records.append(f"dn: {user.dn}\nchangetype: modify\nreplace: title\ntitle: {rng.choice(titles)}\n")
    changes = bench.tmp / f"changes-{round_}.ldif"
    changes.write_text("\n".join(records), encoding="utf-8")
    run_child(
        bench.ldap_tool("ldapmodify", "-f", str(changes)),
        bench.env,
        bench.tmp / "ldapmodify.out",
        bench.tmp / "ldapmodify.err",
    )


def history_step(bench: Bench, args: argparse.Namespace) -> None:
    """Four more snapshots after small changes, then the report over all five."""
    for round_ in range(1, 5):
        change_directory(bench, round_)
        snapshot_take(bench)
        checked_snapshot(bench, args.users)
    searches, reports = measure(bench, args.repeat)
    print(f"history: 5 snapshots; report: {summary_line(bench.tmp / 'orphans-json.out')}")
    compare(" over 5 snapshots", searches, reports)


def open_in_chromium(page: Path, tmp: Path) -> tuple[float, int | None]:
    """Wall time of headless chromium dumping the rendered page, and the page's own draw time."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
    argv = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - started
    shutil.rmtree(profile, ignore_errors=True)
    if done.returncode != 0 or 'data-ready="true"' not in done.stdout:
        raise BenchError(f"chromium did not render {page.name}: {done.stderr.strip()[-400:]}")
    drawn = re.search(r'data-render-ms="(\d+)"', done.stdout)
    return seconds, int(drawn.group(1)) if drawn else None


def html_step(bench: Bench) -> None:
    page = bench.tmp / "orphans.html"
    run = report(bench, "orphans-html", "--format", "html", "-o", str(page))
    size = page.stat().st_size
    print(f"html: report orphans --format html in {run.seconds:.2f} s; file {size:,} bytes ({size / 2**20:.1f} MiB)")
    if not CHROMIUM.exists():
        print(f"html: {CHROMIUM} not installed, render time not measured")
        return
    blank = bench.tmp / "blank.html"
    blank.write_text('<!DOCTYPE html><html><body data-ready="true"></body></html>', encoding="utf-8")
    baseline, _ = open_in_chromium(blank, bench.tmp)
    seconds, drawn = open_in_chromium(page, bench.tmp)
    print(
        f"html: headless chromium opened it in {seconds:.2f} s wall ({baseline:.2f} s for an empty page); "
        f"findings table drawn {drawn} ms after navigation started"
    )


def summary_line(path: Path) -> str:
    document = json.loads(path.read_text(encoding="utf-8"))
    counts = ", ".join(f"{category} {count:,}" for category, count in document["summary"].items())
    return f"{len(document['findings']):,} findings: {counts}"


def benchmark(args: argparse.Namespace, tmp: Path, server: Slapd) -> None:
    bench = setup(args, tmp, server, Bench)
    warm_up(bench)
    taken = snapshot_take(bench)
    print(f"snapshot take (once): {taken.seconds:.2f} s; {checked_snapshot(bench, args.users)}")
    searches, reports = measure(bench, args.repeat)
    print(f"report: {summary_line(tmp / 'orphans-json.out')}")
    compare("", searches, reports)
    html_step(bench)
    if args.history:
        history_step(bench, args)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_repeat_args(
        argv, __doc__, repeat=3, extra=[("--history", "also measure the report over five snapshots")]
    )
    # open_in_chromium gives up on a chromium that hangs: a step that failed to run.
    return run_benchmark(args, "bench_orphans", benchmark, errors=(subprocess.TimeoutExpired,))


if __name__ == "__main__":
    sys.exit(main())
