"""Snapshot benchmark: ``rbac-migrate snapshot take`` against ``ldapsearch`` on a generated org.

Loads a synthetic organisation into a throwaway slapd, then alternates an ldapsearch
reference (the same searches, entries and attributes a snapshot reads) with
``rbac-migrate snapshot take`` into a fresh store, and reports the median wall time of each,
their ratio and each child's own peak RSS.  ``rbac-migrate access show`` is then timed
against the store the last snapshot wrote.

    python tests/benchmarks/bench_snapshot.py [--users N] [--seed S] [--repeat R] [--keep]

Targets: snapshot take <= 2x ldapsearch and <= 1 GiB peak RSS; access show < 0.5 s.
Exit status: 0 when every step ran (whether or not the targets were met), 1 when one
failed to run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rbac_migrate.config import FLAVOUR_DEFAULTS, PASSWORD_ENV  # noqa: E402
from rbac_migrate.sampleorg import SampleOrg, generate  # noqa: E402
from rbac_migrate.sandbox import SandboxError, Slapd, find_binary  # noqa: E402
from rbac_migrate.snapshot import GROUP_FILTER  # noqa: E402

SNAPSHOT_RATIO_TARGET = 2.0
RSS_TARGET_MIB = 1024
ACCESS_TARGET_SECONDS = 0.5
USER_ATTRIBUTES = ("entryUUID", "uid", "departmentNumber", "title")
GROUP_ATTRIBUTES = ("entryUUID", "cn", "member")
STDERR_TAIL = 400


class BenchError(Exception):
    """A step of the benchmark failed to run."""


@dataclass(frozen=True)
class Run:
    """Wall time and peak resident set size of one measured step."""

    seconds: float
    rss_kib: int


@dataclass(frozen=True)
class Search:
    """One ldapsearch of the reference pass."""

    name: str
    base: str
    filterstr: str
    attributes: tuple[str, ...]


@dataclass
class Bench:
    """Everything the measured steps share."""

    org: SampleOrg
    server: Slapd
    tmp: Path
    config: Path
    password_file: Path
    cli: str
    env: dict[str, str]

    @property
    def store_path(self) -> Path:
        return self.tmp / "state.db"


def reference_searches(org: SampleOrg) -> list[Search]:
    """The reads ``snapshot take`` makes for the openldap flavour, in its order."""
    defaults = FLAVOUR_DEFAULTS["openldap"]
    users, disabled = defaults["user_filter"], defaults["disabled_filter"]
    return [
        Search("disabled", org.people_dn, f"(&{users}{disabled})", ("1.1",)),
        Search("users", org.people_dn, users, USER_ATTRIBUTES),
        Search("roles", org.role_base, GROUP_FILTER, GROUP_ATTRIBUTES),
        Search("grants", org.grant_base, GROUP_FILTER, GROUP_ATTRIBUTES),
    ]


def run_child(argv: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> Run:
    """Run a command to completion; return its wall time and its own peak RSS."""
    rss_file = stderr.with_suffix(".rss")
    timer = gnu_time()
    wrapped = [timer, "-f", "%M", "-o", str(rss_file), *argv] if timer else argv
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        try:
            # wait4 gives this one child's rusage; RUSAGE_CHILDREN's ru_maxrss is a max over all of them.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[:4])} … exited with {proc.returncode}: {_tail(stderr)}")
    return Run(seconds, _last_int(rss_file) if timer else usage.ru_maxrss)


@functools.cache
def gnu_time() -> str | None:
    """GNU time, when installed, to read a child's peak RSS from a small parent.

    Linux carries the RSS high-water mark across fork and exec, so a child spawned
    straight from this process (which holds the whole generated org) reports at least
    this process's size; time(1) forks from a process of a few MiB.
    """
    path = shutil.which("time") or "/usr/bin/time"
    probe = [path, "-f", "%M", "-o", os.devnull, "true"]
    try:
        works = subprocess.run(probe, capture_output=True, check=False).returncode == 0
    except OSError:
        works = False
    return path if works else None


def _last_int(path: Path) -> int:
    # A failing command puts a status line before the figure.
    return int(path.read_text(encoding="utf-8").split()[-1])


def _tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    return " | ".join(text[-STDERR_TAIL:].splitlines()) or "(no output)"


def ldapsearch_argv(bench: Bench, search: Search) -> list[str]:
    """Paged admin search over TCP, the password read from a private file."""
    binary = find_binary("ldapsearch")
    auth = ["-x", "-LLL", "-E", "pr=1000/noprompt", "-H", bench.server.url]
    auth += ["-D", bench.server.admin_dn, "-y", str(bench.password_file)]
    return [binary, *auth, "-b", search.base, "-s", "sub", search.filterstr, *search.attributes]


def ldapsearch_pass(bench: Bench) -> Run:
    """All reference searches one after the other, each writing its LDIF to a file."""
    started = time.perf_counter()
    peak = 0
    for search in reference_searches(bench.org):
        out = bench.tmp / f"ldapsearch-{search.name}.ldif"
        run = run_child(ldapsearch_argv(bench, search), bench.env, out, bench.tmp / "ldapsearch.err")
        peak = max(peak, run.rss_kib)
    return Run(time.perf_counter() - started, peak)


def snapshot_take(bench: Bench) -> Run:
    """One ``snapshot take`` into a store that does not exist yet."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{bench.store_path}{suffix}").unlink(missing_ok=True)
    argv = [bench.cli, "--config", str(bench.config), "snapshot", "take"]
    return run_child(argv, bench.env, bench.tmp / "snapshot.out", bench.tmp / "snapshot.err")


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


def count_entries(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.startswith(b"dn:"))


def cli_path() -> str:
    """The rbac-migrate script of the interpreter running this benchmark."""
    sibling = Path(sys.executable).parent / "rbac-migrate"
    found = str(sibling) if sibling.is_file() else shutil.which("rbac-migrate")
    if not found:
        raise BenchError("rbac-migrate is not installed next to this Python nor on PATH (pip install -e .)")
    return found


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_config(path: Path, org: SampleOrg, server: Slapd, store: Path) -> None:
    settings = {
        "url": server.url,
        "bind_dn": server.admin_dn,
        "tls": "none",
        "user_base": org.people_dn,
        "grant_base": org.grant_base,
        "role_base": org.role_base,
        "store": f"sqlite:///{store}",
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


def child_env(password: str) -> dict[str, str]:
    """The caller's environment without RBAC_MIGRATE_* overrides, so the config file decides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RBAC_MIGRATE_")}
    env[PASSWORD_ENV] = password
    # Keeps ~/.ldaprc and /etc/ldap/ldap.conf from changing either side's behaviour.
    env["LDAPNOINIT"] = "1"
    return env


def prepare(args: argparse.Namespace, tmp: Path) -> tuple[SampleOrg, Path]:
    """Generate the org and write its LDIF, reporting how long that took."""
    started = time.perf_counter()
    org = generate(args.users, args.seed)
    ldif = tmp / "org.ldif"
    org.write_ldif(ldif)
    size = ldif.stat().st_size / 2**20
    print(
        f"org: {len(org.users):,} users, {len(org.groups):,} groups (seed {args.seed}); "
        f"LDIF {size:.1f} MiB generated in {time.perf_counter() - started:.1f} s"
    )
    return org, ldif


def start_server(server: Slapd, ldif: Path) -> None:
    started = time.perf_counter()
    server.start([ldif])
    print(f"slapd: slapadd + start in {time.perf_counter() - started:.1f} s at {server.url}")


def warm_up(bench: Bench) -> None:
    """One untimed reference pass so both contenders meet an equally warm server cache."""
    run = ldapsearch_pass(bench)
    counts = {s.name: count_entries(bench.tmp / f"ldapsearch-{s.name}.ldif") for s in reference_searches(bench.org)}
    listed = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    print(f"warm-up: one ldapsearch pass in {run.seconds:.2f} s ({listed} entries)")


def measure(bench: Bench, repeat: int) -> tuple[list[Run], list[Run]]:
    """Alternate the reference and the snapshot so drift affects both alike."""
    searches, snapshots = [], []
    for _ in range(repeat):
        searches.append(ldapsearch_pass(bench))
        snapshots.append(snapshot_take(bench))
    return searches, snapshots


def median(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def peak_mib(runs: list[Run]) -> float:
    return max(run.rss_kib for run in runs) / 1024


def render(rows: list[tuple[str, ...]]) -> str:
    header = ("step", "median s", "vs ldapsearch", "peak RSS MiB", "target", "met")
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i in (0, 4) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "-" * max(len(line) for line in text))
    return "\n".join(line.rstrip() for line in text)


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
    return render(rows)


def runs_line(name: str, runs: list[Run]) -> str:
    return f"  {name}: " + " ".join(f"{run.seconds:.2f}" for run in runs)


def benchmark(args: argparse.Namespace, tmp: Path, server: Slapd) -> None:
    cli = cli_path()
    org, ldif = prepare(args, tmp)
    start_server(server, ldif)
    env = child_env(server.admin_password)
    bench = Bench(org, server, tmp, tmp / "rbac-migrate.yml", tmp / "admin.pw", cli, env)
    write_private(bench.password_file, server.admin_password)
    write_config(bench.config, org, server, bench.store_path)
    warm_up(bench)
    searches, snapshots = measure(bench, args.repeat)
    uid = pick_user(org)
    accesses = [access_show(bench, uid) for _ in range(args.repeat)]
    print(f"snapshot: {_tail(tmp / 'snapshot.err').rsplit(' | ', 1)[-1]}")
    print(f"runs ({args.repeat} each, seconds):")
    for name, runs in (("ldapsearch", searches), ("snapshot take", snapshots), ("access show", accesses)):
        print(runs_line(name, runs))
    print(table(searches, snapshots, accesses, uid))
    print(rss_note())


def rss_note() -> str:
    if gnu_time():
        return "peak RSS: each child's own high-water mark (GNU time %M)"
    return "peak RSS: os.wait4 per child; without GNU time it includes this script's size at spawn (an upper bound)"


def keep_running(server: Slapd, tmp: Path) -> None:
    """Hand the server over to a detached slapd so it outlives this process."""
    try:
        pidfile = server.detach()
    except SandboxError as exc:
        print(f"kept files in {tmp}; {exc}", file=sys.stderr)
        return
    print(f"kept: files in {tmp}, slapd at {server.url} (stop it with: kill $(cat {pidfile}))", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users in the generated org (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each step (default 3)")
    parser.add_argument("--keep", action="store_true", help="leave the server running and the files in place")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    server = Slapd(workdir=tmp / "slapd")
    status = 0
    try:
        benchmark(args, tmp, server)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except (BenchError, SandboxError, ValueError, OSError) as exc:
        print(f"bench_snapshot: {exc}", file=sys.stderr)
        status = 1
    finally:
        if args.keep and server.config_dir.exists():
            keep_running(server, tmp)
        else:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
