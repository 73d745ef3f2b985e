"""What the slapd benchmarks share: a generated org in a throwaway slapd, measured child processes.

Each ``bench_*.py`` script generates a synthetic organisation, loads it into a :class:`Slapd`,
writes an ``rbac-migrate`` config and a password file next to it, and times whole commands
run as children with a clean environment.  The scripts put this folder on ``sys.path`` and
import this module, which in turn puts the repository there for ``rbac_migrate``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rbac_migrate.config import FLAVOUR_DEFAULTS, PASSWORD_ENV  # noqa: E402
from rbac_migrate.demo.sampleorg import SampleOrg, generate  # noqa: E402
from rbac_migrate.demo.sandbox import SandboxError, Slapd, find_binary  # noqa: E402
from rbac_migrate.directory.sync import Search  # noqa: E402
from rbac_migrate.snapshot import GROUP_FILTER  # noqa: E402

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
    cpu_seconds: float = 0.0  # user and system time of the child and what it waited for


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
    store_url: str | None = None  # a PostgreSQL store; None: the SQLite file at store_path

    @property
    def store_path(self) -> Path:
        return self.tmp / "state.db"

    def ldap_tool(self, name: str, *args: str) -> list[str]:
        """An ldap-utils command bound as the admin over TCP, the password read from a private file."""
        auth = ["-x", "-H", self.server.url, "-D", self.server.admin_dn, "-y", str(self.password_file)]
        return [find_binary(name), *auth, *args]


B = TypeVar("B", bound=Bench)


# -- measured children -------------------------------------------------------------------------


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
        raise BenchError(f"{' '.join(argv[:4])} … exited with {proc.returncode}: {tail(stderr)}")
    return Run(seconds, _last_int(rss_file) if timer else usage.ru_maxrss, usage.ru_utime + usage.ru_stime)


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


def tail(path: Path) -> str:
    """The end of a child's output file, on one line."""
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    return " | ".join(text[-STDERR_TAIL:].splitlines()) or "(no output)"


# -- the reads a snapshot makes, by ldapsearch and by rbac-migrate ------------------------------


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


def ldapsearch_argv(bench: Bench, search: Search) -> list[str]:
    """A paged admin search writing LDIF without comments."""
    paged = ["-LLL", "-E", "pr=1000/noprompt"]
    return bench.ldap_tool("ldapsearch", *paged, "-b", search.base, "-s", "sub", search.filter, *search.attributes)


def ldapsearch_pass(bench: Bench) -> Run:
    """All reference searches one after the other, each writing its LDIF to a file.

    Dirty pages are written out before and after, untimed: the pass leaves about 60 MiB of LDIF
    waiting in the page cache, and a snapshot leaves its store's pages. Neither side's writing
    may slow the other's timed run (an fsync waits for all of it)."""
    os.sync()
    started = time.perf_counter()
    peak = 0
    for search in reference_searches(bench.org):
        out = bench.tmp / f"ldapsearch-{search.name}.ldif"
        run = run_child(ldapsearch_argv(bench, search), bench.env, out, bench.tmp / "ldapsearch.err")
        peak = max(peak, run.rss_kib)
    seconds = time.perf_counter() - started
    os.sync()
    return Run(seconds, peak)


def count_entries(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.startswith(b"dn:"))


def warm_up(bench: Bench) -> None:
    """One untimed reference pass so both contenders meet an equally warm server cache."""
    run = ldapsearch_pass(bench)
    counts = {s.name: count_entries(bench.tmp / f"ldapsearch-{s.name}.ldif") for s in reference_searches(bench.org)}
    listed = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    print(f"warm-up: one ldapsearch pass in {run.seconds:.2f} s ({listed} entries)")


def prepare_store(bench: Bench) -> None:
    """An empty store with its schema in place, as a team has after its first command."""
    if bench.store_url:
        with pg_connection(bench.store_url) as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{bench.store_path}{suffix}").unlink(missing_ok=True)
    argv = [bench.cli, "--config", str(bench.config), "db", "upgrade"]
    run_child(argv, bench.env, bench.tmp / "upgrade.out", bench.tmp / "upgrade.err")


def snapshot_take(bench: Bench) -> Run:
    """One ``snapshot take`` into the benchmark's store (created on first use)."""
    argv = [bench.cli, "--config", str(bench.config), "snapshot", "take"]
    return run_child(argv, bench.env, bench.tmp / "snapshot.out", bench.tmp / "snapshot.err")


@contextmanager
def pg_connection(url: str) -> Iterator:
    """A cursor on the PostgreSQL store at ``url``, each statement committed as it runs."""
    import psycopg2

    conn = psycopg2.connect("postgresql://" + url.split("://", 1)[1])
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        conn.close()


# -- set-up ------------------------------------------------------------------------------------


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


def write_config(path: Path, org: SampleOrg, server: Slapd, store: Path | str) -> None:
    settings = {
        "url": server.url,
        "bind_dn": server.admin_dn,
        "tls": "none",
        "user_base": org.people_dn,
        "grant_base": org.grant_base,
        "role_base": org.role_base,
        "store": store if isinstance(store, str) else f"sqlite:///{store}",
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


def compile_package() -> None:
    """Byte-compile rbac_migrate, as installing a package does: an editable install never does, and
    with PYTHONDONTWRITEBYTECODE set every measured command would compile its modules afresh."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "rbac_migrate")], check=True)


def setup(args: argparse.Namespace, tmp: Path, server: Slapd, kind: type[B]) -> B:
    """Generate the org into a running ``server``; write the password file and the config of a ``kind``.

    The rbac-migrate script is looked for first, so a missing one fails before the org is generated.
    """
    cli = cli_path()
    compile_package()
    org, ldif = prepare(args, tmp)
    start_server(server, ldif)
    bench = kind(org, server, tmp, tmp / "rbac-migrate.yml", tmp / "admin.pw", cli, child_env(server.admin_password))
    write_private(bench.password_file, server.admin_password)
    write_config(bench.config, org, server, bench.store_path)
    return bench


# -- command line, report and exit ---------------------------------------------------------------


def new_parser(doc: str, users: int) -> argparse.ArgumentParser:
    """A parser described by the script's first docstring line, starting with the org's size."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--users", type=int, default=users, help=f"users in the generated org (default {users})")
    return parser


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")


def add_keep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", action="store_true", help="leave the server running and the files in place")


def parse_repeat_args(
    argv: list[str] | None, doc: str, *, repeat: int, each: str = "step", extra: list[tuple[str, str]] = ()
) -> argparse.Namespace:
    """``--users N --seed S --repeat R --keep``, for a script that runs each ``each`` R times; ``extra`` flags."""
    parser = new_parser(doc, 100_000)
    add_seed(parser)
    for flag, text in extra:
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--repeat", type=int, default=repeat, help=f"measured runs of each {each} (default {repeat})")
    add_keep(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def render(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A text table: the step (first) and target (fifth) columns left-aligned, the figures right-aligned."""
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


def keep_running(server: Slapd, tmp: Path) -> None:
    """Hand the server over to a detached slapd so it outlives this process."""
    try:
        pidfile = server.detach()
    except SandboxError as exc:
        print(f"kept files in {tmp}; {exc}", file=sys.stderr)
        return
    print(f"kept: files in {tmp}, slapd at {server.url} (stop it with: kill $(cat {pidfile}))", file=sys.stderr)


def run_benchmark(
    args: argparse.Namespace,
    name: str,
    benchmark: Callable[[argparse.Namespace, Path, Slapd], None],
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run ``benchmark`` in a new temporary folder with a slapd of its own; return the exit status.

    ``name`` (the script's) prefixes error messages and the folder; ``errors`` are further
    exceptions that mean a step failed to run.  With ``--keep`` the server outlives the script.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f"{name.replace('_', '-')}-"))
    server = Slapd(workdir=tmp / "slapd")
    status = 0
    try:
        benchmark(args, tmp, server)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except (BenchError, SandboxError, ValueError, OSError, *errors) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        status = 1
    finally:
        if args.keep and server.config_dir.exists():
            keep_running(server, tmp)
        else:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return status
