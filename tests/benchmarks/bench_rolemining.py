"""Role-mining benchmark on the HP Labs access-control data sets.

Mines every ``*.txt`` data set of the benchmark folder, checks each cover is exact, and
compares the number of roles with the proven minimum listed in the folder's README.

    python tests/benchmarks/bench_rolemining.py [--data-dir DIR] [--effort N] [--time-limit S]

Exit status: 0 when every cover is exact (and, with --time-limit, fast enough), 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rbac_migrate.mining import DEFAULT_EFFORT, mine_roles, read_pairs, verify_exact  # noqa: E402

DEFAULT_DATA = REPO / "tests" / "data" / "rolemining"
# A README table row: | file.txt | name | users | permissions | pairs | minimum |
_README_ROW = re.compile(r"^\|\s*(\S+\.txt)\s*\|(?:[^|]*\|){4}\s*([\d,]+)\s*\|")


@dataclass
class Row:
    """One data set's measurement."""

    name: str
    users: int
    perms: int
    pairs: int
    roles: int
    bound: int
    minimum: int | None
    seconds: float
    exact: bool


def known_minima(data_dir: Path) -> dict[str, int]:
    """File name -> proven minimum number of roles, from the folder's README table."""
    readme = data_dir / "README.md"
    if not readme.exists():
        return {}
    minima = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = _README_ROW.match(line)
        if match:
            minima[match.group(1)] = int(match.group(2).replace(",", ""))
    return minima


def measure(path: Path, minimum: int | None, effort: int) -> Row:
    """Mine one data set and check the result."""
    access = read_pairs(path)
    started = time.perf_counter()
    result = mine_roles(access, effort=effort)
    seconds = time.perf_counter() - started
    problems = verify_exact(access, result)
    for problem in problems[:5]:
        print(f"{path.name}: {problem}", file=sys.stderr)
    return Row(
        name=path.stem,
        users=len(access),
        perms=len({grant for grants in access.values() for grant in grants}),
        pairs=sum(len(grants) for grants in access.values()),
        roles=result.role_count,
        bound=result.lower_bound,
        minimum=minimum,
        seconds=seconds,
        exact=not problems,
    )


def render(rows: list[Row]) -> str:
    """The results table with a total line."""
    header = ("dataset", "users", "perms", "pairs", "roles", "our bound", "minimum", "gap", "seconds", "exact")
    lines = [header]
    for row in rows:
        gap = "-" if row.minimum is None else f"{row.roles - row.minimum:+d}"
        minimum = "-" if row.minimum is None else str(row.minimum)
        lines.append(
            (
                row.name,
                f"{row.users:,}",
                f"{row.perms:,}",
                f"{row.pairs:,}",
                str(row.roles),
                str(row.bound),
                minimum,
                gap,
                f"{row.seconds:.2f}",
                "yes" if row.exact else "NO",
            )
        )
    lines.append(_total(rows))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    text.insert(len(text) - 1, "-" * len(text[0]))
    return "\n".join(text)


def _total(rows: list[Row]) -> tuple[str, ...]:
    known = [row for row in rows if row.minimum is not None]
    found = sum(row.roles for row in known)
    minimum = sum(row.minimum or 0 for row in known)
    share = f"{100 * (found - minimum) / minimum:+.2f}%" if minimum else "-"
    return (
        "total",
        "",
        "",
        f"{sum(r.pairs for r in rows):,}",
        str(sum(r.roles for r in rows)),
        str(sum(r.bound for r in rows)),
        str(minimum),
        share,
        f"{sum(r.seconds for r in rows):.2f}",
        "yes" if all(r.exact for r in rows) else "NO",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder of *.txt pair files")
    parser.add_argument("--effort", type=int, default=DEFAULT_EFFORT, help="search budget per data set")
    parser.add_argument("--time-limit", type=float, help="fail when a data set takes longer (seconds)")
    args = parser.parse_args(argv)
    minima = known_minima(args.data_dir)
    listed = list(minima)
    files = sorted(
        args.data_dir.glob("*.txt"), key=lambda p: (listed.index(p.name) if p.name in listed else len(listed), p.name)
    )
    if not files:
        print(f"no *.txt data sets in {args.data_dir}", file=sys.stderr)
        return 1
    rows = [measure(path, minima.get(path.name), args.effort) for path in files]
    print(render(rows))
    slow = [row.name for row in rows if args.time_limit is not None and row.seconds > args.time_limit]
    if slow:
        print(f"over {args.time_limit:g} s: {', '.join(slow)}", file=sys.stderr)
    return 0 if all(row.exact for row in rows) and not slow else 1


if __name__ == "__main__":
    sys.exit(main())
