"""Migration benchmark: ``rbac-migrate migrate apply`` against ``ldapmodify`` of the very same changes.

Loads a synthetic organisation into a throwaway slapd, takes one snapshot, picks the role with
the most candidates (users of its department and title who hold no role and are not leavers)
and M of them.  Each round then times, in alternating order:

* ``rbac-migrate migrate apply PLAN --yes``: drift check, write-ahead journal, per-user LDAP
  transaction, read-back verification of every user's effective access;
* the same with ``--set transactions=off`` (role first, then removals: the Active Directory path);
* ``ldapmodify`` of the plan's own LDIF (``migrate plan --format ldif``), nothing else;
* ``rbac-migrate --version``, the process start-up that every command pays.

Between timed steps the changes are undone (``rollback`` or a reverse LDIF, untimed) and the
M users' group memberships are read back and compared with the starting state.

    python tests/benchmarks/bench_apply.py [--users N] [--migrate M] [--rounds R] [--seed S] [--keep]

Headline: apply's full wall time per user <= 3x ldapmodify's, verification included.
Exit status: 0 when every step ran (whether or not the target was met), 1 when one failed
to run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# common also puts the repository on sys.path, so rbac_migrate imports after it.
import common  # noqa: E402
from common import BenchError, add_keep, add_seed, new_parser, render, run_benchmark  # noqa: E402

from rbac_migrate.demo.sampleorg import SampleOrg, SampleUser  # noqa: E402
from rbac_migrate.demo.sandbox import Slapd  # noqa: E402

RATIO_TARGET = 3.0
ERROR_LIMIT = 4000
APPLY = "migrate apply"
APPLY_OFF = "migrate apply, transactions=off"
LDAPMODIFY = "ldapmodify"
STARTUP = "rbac-migrate --version"
# A modify record's operation line; value lines always start with the attribute name instead.
_OPERATION = re.compile(r"^(add|delete): (\S+)$")

Memberships = dict[str, frozenset[str]]


@dataclass
class Bench(common.Bench):
    """Everything the rounds share: the role and the users migrated onto it, and their states."""

    # Chosen from the org once it is generated (see setup), hence the empty defaults.
    role: str = ""
    users: list[SampleUser] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    baseline: Memberships = field(default_factory=dict)
    migrated: Memberships = field(default_factory=dict)

    @property
    def plan_path(self) -> Path:
        return self.tmp / "plan.json"

    @property
    def ldif_path(self) -> Path:
        return self.tmp / "changes.ldif"

    @property
    def reverse_path(self) -> Path:
        return self.tmp / "reverse.ldif"

    def rbac(self, *args: str) -> list[str]:
        """An rbac-migrate command line with this run's config and guard-rail overrides."""
        return [self.cli, "--config", str(self.config), *self.limits, *args]


def run(bench: Bench, argv: list[str], name: str) -> tuple[float, str]:
    """Run a command to completion; return its wall time and its standard output."""
    out, err = bench.tmp / f"{name}.out", bench.tmp / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=bench.env, check=False)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        # The whole stderr, not a tail: a failing apply must be reportable exactly as it was said.
        text = err.read_text(encoding="utf-8", errors="replace").strip()[:ERROR_LIMIT] or "(no output)"
        raise BenchError(f"{' '.join(argv[:6])} … exited with {done.returncode}:\n{text}")
    return seconds, out.read_text(encoding="utf-8", errors="replace")


# -- choosing what to migrate ----------------------------------------------------------------


def candidates(org: SampleOrg, role: str) -> list[SampleUser]:
    """Users of the role's (department, title) who hold no role and are not leavers."""
    profile = org.role_profiles[role]
    return [u for u in org.users if (u.department, u.title) == profile and not u.roles and not u.leaver]


def pick(org: SampleOrg, count: int) -> tuple[str, list[SampleUser]]:
    """The role with the most candidates, and the first ``count`` of them."""
    role = max(sorted(org.role_profiles), key=lambda cn: len(candidates(org, cn)))
    chosen = candidates(org, role)[:count]
    if len(chosen) < count:
        raise BenchError(f"{role} has only {len(chosen)} candidates, fewer than --migrate {count}")
    return role, chosen


def limit_overrides(users: list[SampleUser]) -> list[str]:
    """Raise the guard rails just enough for one batch of these users; a plan never deletes more
    member values than the users' direct grants."""
    removals = sum(len(u.direct_grants) for u in users)
    return ["--set", f"max_batch_size={len(users)}", "--set", f"max_removals_per_run={max(removals, 1)}"]


# -- plan, reverse LDIF, state checks ---------------------------------------------------------


def write_plan(bench: Bench) -> int:
    """Plan the batch as JSON (for apply) and LDIF (for ldapmodify); return the change count."""
    uids = ",".join(u.uid for u in bench.users)
    argv = bench.rbac("migrate", "plan", "--role", bench.role, "--users", uids, "-o", str(bench.plan_path))
    _, ldif = run(bench, [*argv, "--format", "ldif"], "plan")
    bench.ldif_path.write_text(ldif, encoding="utf-8")
    bench.reverse_path.write_text(reverse_ldif(ldif), encoding="utf-8")
    return sum(1 for line in ldif.splitlines() if _OPERATION.match(line))


def reverse_ldif(ldif: str) -> str:
    """Undo for value-level modify records: every add becomes a delete and back, last record first."""
    text = "\n".join(line for line in ldif.splitlines() if not line.startswith("#"))
    records = [block.strip() for block in text.split("\n\n") if block.strip()]
    undone = ["\n".join(_swap_operation(line) for line in record.splitlines()) for record in reversed(records)]
    return "\n\n".join(undone) + "\n"


def _swap_operation(line: str) -> str:
    match = _OPERATION.match(line)
    if not match:
        return line
    return f"{'delete' if match.group(1) == 'add' else 'add'}: {match.group(2)}"


def escape_filter_value(value: str) -> str:
    """RFC 4515 escaping, so a DN is always one assertion value."""
    return "".join(f"\\{ord(c):02x}" if c in "\\*()\0" else c for c in value)


def memberships(bench: Bench) -> Memberships:
    """User DN -> the group DNs (lower case) that list it as a member right now."""
    found = {}
    for user in bench.users:
        argv = bench.ldap_tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-b", bench.org.base_dn)
        argv += [f"(member={escape_filter_value(user.dn)})", "1.1"]
        _, text = run(bench, argv, "memberships")
        found[user.dn] = frozenset(line[4:].lower() for line in text.splitlines() if line.startswith("dn: "))
    return found


def role_dn(bench: Bench) -> str:
    return f"cn={bench.role},{bench.org.role_base}".lower()


def check_restored(bench: Bench, how: str) -> None:
    """The M users hold exactly what they held before the first round, the role included."""
    now = memberships(bench)
    if now == bench.baseline:
        return
    still = sorted(dn for dn, groups in now.items() if role_dn(bench) in groups)
    detail = f"the role still holds {', '.join(still)}" if still else "member values differ from the start"
    raise BenchError(f"after {how}: {detail}")


def check_migrated(bench: Bench, step: str) -> None:
    """Every timed step must leave the same memberships: the role held, the covered grants gone."""
    now = memberships(bench)
    if not bench.migrated:
        missing = sorted(dn for dn, groups in now.items() if role_dn(bench) not in groups)
        if missing:
            raise BenchError(f"after {step}: the role does not hold {', '.join(missing)}")
        bench.migrated = now
    elif now != bench.migrated:
        raise BenchError(f"after {step}: member values differ from what the first timed step left")


# -- the timed steps, each with its untimed preparation and undo ------------------------------


def apply_step(bench: Bench, *overrides: str) -> float:
    name = APPLY_OFF if overrides else APPLY
    write_plan(bench)
    seconds, out = run(bench, bench.rbac(*overrides, "migrate", "apply", str(bench.plan_path), "--yes"), "apply")
    check_migrated(bench, name)
    batch = out.strip().splitlines()[-1] if out.strip() else ""
    if not batch.isdigit():
        raise BenchError(f"{name} printed no batch id: {out.strip()!r}")
    run(bench, bench.rbac("rollback", batch, "--yes"), "rollback")
    check_restored(bench, f"rollback {batch}")
    return seconds


def apply_auto(bench: Bench) -> float:
    return apply_step(bench)


def apply_off(bench: Bench) -> float:
    return apply_step(bench, "--set", "transactions=off")


def ldapmodify_step(bench: Bench) -> float:
    write_plan(bench)
    seconds, _ = run(bench, bench.ldap_tool("ldapmodify", "-f", str(bench.ldif_path)), "ldapmodify")
    check_migrated(bench, LDAPMODIFY)
    run(bench, bench.ldap_tool("ldapmodify", "-f", str(bench.reverse_path)), "ldapmodify-reverse")
    check_restored(bench, "the reverse LDIF")
    return seconds


def startup_step(bench: Bench) -> float:
    seconds, _ = run(bench, [bench.cli, "--version"], "version")
    return seconds


STEPS: dict[str, Callable[[Bench], float]] = {
    APPLY: apply_auto,
    APPLY_OFF: apply_off,
    LDAPMODIFY: ldapmodify_step,
    STARTUP: startup_step,
}


def measure(bench: Bench, rounds: int) -> dict[str, list[float]]:
    """One untimed warm-up round, then R rounds, every other one in reverse order so drift hits all alike."""
    for step in STEPS.values():
        step(bench)
    times: dict[str, list[float]] = {name: [] for name in STEPS}
    for number in range(rounds):
        order = list(STEPS) if number % 2 == 0 else list(reversed(STEPS))
        for name in order:
            times[name].append(STEPS[name](bench))
    return times


# -- set-up and report -------------------------------------------------------------------------


def setup(args: argparse.Namespace, tmp: Path, server: Slapd) -> Bench:
    bench = common.setup(args, tmp, server, Bench)
    bench.role, bench.users = pick(bench.org, args.migrate)
    bench.limits = limit_overrides(bench.users)
    return bench


def describe(bench: Bench) -> None:
    """Snapshot once, then say what is migrated and whether apply will use transactions."""
    seconds, _ = run(bench, bench.rbac("snapshot", "take"), "snapshot")
    print(f"snapshot take: {seconds:.1f} s (once, untimed for the comparison)")
    _, text = run(bench, bench.rbac("check", "--format", "json"), "check")
    offered = json.loads(text).get("LDAP transactions")
    changes = write_plan(bench)
    print(
        f"migrating {len(bench.users)} of {len(candidates(bench.org, bench.role)):,} candidates onto {bench.role}: "
        f"{changes} member-value changes; server offers LDAP transactions: {offered}"
    )
    bench.baseline = memberships(bench)


def per_user_ms(seconds: float, users: int) -> str:
    return f"{seconds * 1000 / users:.1f}"


def verdict(ratio: float) -> str:
    return "yes" if ratio <= RATIO_TARGET else "NO"


def rows(times: dict[str, list[float]], users: int) -> list[tuple[str, ...]]:
    reference = statistics.median(times[LDAPMODIFY])
    apply_s, off_s = statistics.median(times[APPLY]), statistics.median(times[APPLY_OFF])
    startup = statistics.median(times[STARTUP])
    target = f"<= {RATIO_TARGET:g}x"
    measured = [
        ("migrate apply (headline, whole command)", apply_s),
        ("migrate apply minus start-up", apply_s - startup),
        (APPLY_OFF, off_s),
    ]
    table = [(LDAPMODIFY, f"{reference:.3f}", per_user_ms(reference, users), "1.00x", "reference", "-")]
    for label, seconds in measured:
        ratio = seconds / reference
        table.append((label, f"{seconds:.3f}", per_user_ms(seconds, users), f"{ratio:.2f}x", target, verdict(ratio)))
    table.append((f"{STARTUP} (start-up)", f"{startup:.3f}", "-", f"{startup / reference:.2f}x", "-", "-"))
    return table


def report(times: dict[str, list[float]], bench: Bench, rounds: int) -> None:
    print(f"runs ({rounds} rounds after one warm-up, alternating order; seconds):")
    for name, samples in times.items():
        print(f"  {name}: " + " ".join(f"{s:.3f}" for s in samples))
    print(render(("step", "median s", "per user ms", "vs ldapmodify", "target", "met"), rows(times, len(bench.users))))
    print(
        f"per user = median wall time / {len(bench.users)} users; ratios are of medians. The headline is the whole "
        "apply command; 'minus start-up' subtracts the median 'rbac-migrate --version' time (ldapmodify keeps its own)."
    )


def benchmark(args: argparse.Namespace, tmp: Path, server: Slapd) -> None:
    bench = setup(args, tmp, server)
    describe(bench)
    times = measure(bench, args.rounds)
    report(times, bench, args.rounds)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__, 20_000)
    parser.add_argument("--migrate", type=int, default=10, help="users migrated per apply (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    add_seed(parser)
    add_keep(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.migrate < 1:
        parser.error("--rounds and --migrate must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    return run_benchmark(parse_args(argv), "bench_apply", benchmark)


if __name__ == "__main__":
    sys.exit(main())
