"""Snapshot benchmark: ``rbac-migrate snapshot take`` against ``ldapsearch`` on a generated org.

Loads a synthetic organisation into a throwaway slapd (with syncprov, as the sandbox has), then
R times: an ldapsearch reference (the same searches, entries and attributes a snapshot reads),
a first, full ``snapshot take`` into an empty store whose schema is in place, 100 member changes
made with ldapmodify (untimed), the reference again, and a repeat ``snapshot take`` (incremental:
RFC 4533 Content Sync).  Reports median wall times, the median ratio of each snapshot to the
reference pass made just before it (so a machine whose speed drifts slows both alike), each child's own
peak RSS and how much the repeat snapshot grew the store.  ``rbac-migrate access show`` is then
timed against the store.  ``--postgres`` puts the store in a throwaway PostgreSQL instead of SQLite.

    python tests/benchmarks/bench_snapshot.py [--users N] [--seed S] [--repeat R] [--postgres] [--keep]

Targets: full snapshot <= 2x ldapsearch; repeat snapshot <= 0.25x ldapsearch, growing the store
by <= 5 MiB; <= 1 GiB peak RSS; access show < 0.5 s.
Exit status: 0 when every step ran (whether or not the targets were met), 1 when one
failed to run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
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
    pg_connection,
    prepare_store,
    render,
    run_benchmark,
    run_child,
    setup,
    snapshot_take,
    warm_up,
    write_config,
)

from rbac_migrate.demo.sampleorg import SampleOrg  # noqa: E402
from rbac_migrate.demo.sandbox import Slapd  # noqa: E402

SNAPSHOT_RATIO_TARGET = 2.0
REPEAT_RATIO_TARGET = 0.25
GROWTH_TARGET_MIB = 5.0
CHANGES = 100
RSS_TARGET_MIB = 1024
ACCESS_TARGET_SECONDS = 0.5


def access_show(bench: Bench, uid: str) -> Run:
    """One ``access show`` read from the store."""
    argv = [bench.cli, "--config", str(bench.config), "access", "show", uid]
    return run_child(argv, bench.env, bench.tmp / "access.out", bench.tmp / "access.err")


def start_up(bench: Bench) -> Run:
    """``rbac-migrate --version``: the interpreter and the command line alone, what every command pays."""
    return run_child([bench.cli, "--version"], bench.env, bench.tmp / "version.out", bench.tmp / "version.err")


def pick_user(org: SampleOrg) -> str:
    """An enabled user from the middle of the org, holding a role when one does."""
    middle = org.users[len(org.users) // 2 :] + org.users[: len(org.users) // 2]
    enabled = [user for user in middle if not user.leaver]
    with_role = [user for user in enabled if user.roles]
    return (with_role or enabled or middle)[0].uid


def member_changes(bench: Bench, count: int, seed: int, members: dict[str, list[str]]) -> None:
    """``count`` single member values added or deleted with ldapmodify, half each (untimed).

    ``members`` holds each group's values as earlier rounds left them, and is kept up to date.
    """
    rng = random.Random(seed)
    groups = [dn for dn, values in members.items() if len(values) > 1]
    users = [u.dn for u in bench.org.users]
    ldif = []
    for number in range(count):
        group = rng.choice(groups)
        if number % 2:
            op, value = "delete", rng.choice(members[group])
            members[group].remove(value)
            groups.remove(group)  # one delete per group, so a value is never deleted twice
        else:
            op, value = "add", next(dn for dn in iter(lambda: rng.choice(users), None) if dn not in members[group])
            members[group].append(value)
        ldif.append(f"dn: {group}\nchangetype: modify\n{op}: member\nmember: {value}\n-\n")
    path = bench.tmp / "changes.ldif"
    path.write_text("\n".join(ldif), encoding="utf-8")
    argv = bench.ldap_tool("ldapmodify", "-c", "-f", str(path))
    run_child(argv, bench.env, bench.tmp / "ldapmodify.out", bench.tmp / "ldapmodify.err")


def how_read(bench: Bench) -> str:
    """The line in which ``snapshot take`` says how it read the directory."""
    lines = (bench.tmp / "snapshot.err").read_text(encoding="utf-8").splitlines()
    return next((line for line in lines if line.startswith(("incremental", "full read"))), "(not said)")


def store_bytes(bench: Bench) -> int:
    """The store's size on disk: the SQLite file after a WAL checkpoint, or the PostgreSQL database."""
    if bench.store_url:
        with pg_connection(bench.store_url) as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    with sqlite3.connect(bench.store_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return bench.store_path.stat().st_size


def measure(bench: Bench, repeat: int) -> dict[str, list]:
    """Per round: reference, first snapshot, 100 changes, reference, repeat snapshot."""
    found: dict[str, list] = {"ldapsearch": [], "first snapshot": [], "repeat snapshot": [], "growth": []}
    members = {g.dn: list(g.members) for g in bench.org.groups}
    for number in range(repeat):
        prepare_store(bench)
        found["ldapsearch"].append(ldapsearch_pass(bench))
        found["first snapshot"].append(snapshot_take(bench))
        before = store_bytes(bench)
        member_changes(bench, CHANGES, number, members)
        found["ldapsearch"].append(ldapsearch_pass(bench))
        found["repeat snapshot"].append(snapshot_take(bench))
        print(f"  repeat snapshot {number + 1}: {how_read(bench)}")
        found["growth"].append((store_bytes(bench) - before) / 2**20)
    return found


def paired(found: dict[str, list], runs: list[Run]) -> list[float]:
    """Each run over the ldapsearch pass made just before it: a machine whose speed drifts from one
    minute to the next slows both sides of a pair alike."""
    first = runs is found["first snapshot"]
    references = found["ldapsearch"][0 if first else 1 :: 2]
    return [run.seconds / reference.seconds for run, reference in zip(runs, references, strict=True)]


def median(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def peak_mib(runs: list[Run]) -> float:
    return max(run.rss_kib for run in runs) / 1024


def table(found: dict[str, list], accesses: list[Run], uid: str) -> str:
    reference = median(found["ldapsearch"])
    first, again = found["first snapshot"], found["repeat snapshot"]
    growth = max(found["growth"])
    rows = [
        (
            "ldapsearch (4 searches)",
            f"{reference:.2f}",
            "1.00x",
            f"{peak_mib(found['ldapsearch']):.0f}",
            "reference",
            "-",
        )
    ]
    for name, runs, target in (
        ("first snapshot (full)", first, SNAPSHOT_RATIO_TARGET),
        (f"repeat after {CHANGES} changes", again, REPEAT_RATIO_TARGET),
    ):
        ratio = statistics.median(paired(found, runs))
        met = ratio <= target and peak_mib(runs) <= RSS_TARGET_MIB
        rows.append(
            (
                name,
                f"{median(runs):.2f}",
                f"{ratio:.2f}x",
                f"{peak_mib(runs):.0f}",
                f"<= {target:g}x, <= {RSS_TARGET_MIB} MiB",
                "yes" if met else "NO",
            )
        )
    rows.append(
        (
            "store growth of the repeat",
            f"{growth:.2f} MiB",
            "-",
            "-",
            f"<= {GROWTH_TARGET_MIB:g} MiB",
            "yes" if growth <= GROWTH_TARGET_MIB else "NO",
        )
    )
    access_met = median(accesses) < ACCESS_TARGET_SECONDS and peak_mib(accesses) <= RSS_TARGET_MIB
    rows.append(
        (
            f"access show {uid}",
            f"{median(accesses):.2f}",
            "-",
            f"{peak_mib(accesses):.0f}",
            f"< {ACCESS_TARGET_SECONDS:g} s",
            "yes" if access_met else "NO",
        )
    )
    return render(("step", "median s", "vs ldapsearch", "peak RSS MiB", "target", "met"), rows)


def runs_line(name: str, runs: list[Run]) -> str:
    return f"  {name}: " + " ".join(f"{run.seconds:.2f}" for run in runs)


def benchmark(args: argparse.Namespace, tmp: Path, server: Slapd) -> None:
    bench = setup(args, tmp, server, Bench)
    if args.postgres:
        use_postgres(bench, tmp)
    warm_up(bench)
    found = measure(bench, args.repeat)
    uid = pick_user(bench.org)
    accesses = [access_show(bench, uid) for _ in range(args.repeat)]
    starts = [start_up(bench) for _ in range(3)]
    print(f"store: {bench.store_url or bench.store_path}")
    print(f"runs ({args.repeat} each, seconds):")
    for name in ("ldapsearch", "first snapshot", "repeat snapshot"):
        print(runs_line(name, found[name]))
    for name in ("first snapshot", "repeat snapshot"):
        ratios = " ".join(f"{r:.2f}x" for r in paired(found, found[name]))
        print(f"  {name} over the ldapsearch just before it: {ratios}")
    print(runs_line("access show", accesses))
    print(runs_line("rbac-migrate --version (start-up)", starts))
    print(table(found, accesses, uid))
    print(rss_note())


def use_postgres(bench: Bench, tmp: Path) -> None:
    """Point the benchmark's config at a database in a throwaway PostgreSQL, stopped at exit."""
    import atexit

    from tests.support.pgserver import PostgresServer

    server = PostgresServer()
    server.start()
    atexit.register(server.stop)
    # As the README spells a store URL, which versions of rbac-migrate compared here all take.
    url = server.create_database("bench_snapshot")
    bench.store_url = "postgresql://" + url.split("://", 1)[1]
    write_config(bench.config, bench.org, bench.server, bench.store_url)


def rss_note() -> str:
    if gnu_time():
        return "peak RSS: each child's own high-water mark (GNU time %M)"
    return "peak RSS: os.wait4 per child; without GNU time it includes this script's size at spawn (an upper bound)"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_repeat_args(argv, __doc__, repeat=3, extra=[("--postgres", "store in a throwaway PostgreSQL")])
    return run_benchmark(args, "bench_snapshot", benchmark)


if __name__ == "__main__":
    sys.exit(main())
