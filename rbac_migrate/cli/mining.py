"""How `role mine` shows what it found: roles by job with their evidence, and what stays direct."""

from __future__ import annotations

import json

import click

from ..mining.jobs import EXTRA, MISSING, OLD_JOB
from ..mining.rolesfile import dumps
from ..roles.query import MinedJobs, MinedRoles
from .render import emit, note, table

SHOWN_HOLDERS = 5
COLUMNS = ["record", "role", "stands_for", "grants", "coverage", "why", "detail", "holders"]


def show_jobs(found: MinedJobs, fmt: str) -> None:
    """Summary on stderr; roles and exceptions on stdout as a table, CSV rows or the roles file's JSON."""
    result = found.result
    note(summary(found))
    if fmt == "json":
        emit([], "json", document=json.loads(dumps(found.roles_file())))
        return
    roles = [_role_row(role) for role in result.all_roles()]
    exceptions = [_exception_row(e) for e in result.exceptions]
    if fmt == "csv":
        emit(roles + exceptions, "csv", COLUMNS)
        return
    table(roles, ["role", "stands_for", "coverage", "grants"])
    if exceptions:
        shown = [{**e, "grant": e["grants"], "holders": _few(e["holders"])} for e in exceptions]
        click.echo("")
        table(shown, ["role", "why", "grant", "detail", "holders"])


def summary(found: MinedJobs) -> str:
    result = found.result
    lines = [
        f"{len(result.all_roles())} roles for {result.jobs} jobs ({result.roles_per_job:.2f} per job) "
        f"from snapshot {found.snapshot_id}, {result.users} users with grants"
        + (f", {found.left_out} disabled users left out" if found.left_out else ""),
        f"a job's role carries what at least {result.min_share:.0%} of its people hold; holders already hold all of it",
        f"{result.left_direct():,} grants stay direct ({result.left_direct(EXTRA):,} personal extras, "
        f"{result.left_direct(OLD_JOB):,} likely from an old job); "
        f"{result.left_direct(MISSING):,} rights of a job's role lacked by some of its people, who stay off it",
    ]
    if result.unjudged:
        people = sum(len(u.members) for u in result.unjudged)
        lines.append(
            f"{len(result.unjudged)} jobs too small to judge (fewer than {result.min_job_size} people, "
            f"or no peer attribute values): {people} users keep their access as it is"
        )
    if result.no_role:
        lines.append(f"{len(result.no_role)} jobs share nothing beyond the baseline: no role for them")
    return "\n".join(lines)


def _role_row(role) -> dict:
    return {
        "record": "role",
        "role": role.name,
        "stands_for": role.label,
        "grants": sorted(role.grants),
        "coverage": f"{role.coverage} of {len(role.members)}",
        "holders": sorted(role.holders),
    }


def _exception_row(exception) -> dict:
    return {
        "record": "exception",
        "role": exception.role,
        "why": exception.why,
        "grants": exception.grant,
        "detail": exception.detail,
        "holders": sorted(exception.holders),
    }


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_HOLDERS])
    return shown if len(names) <= SHOWN_HOLDERS else f"{shown} and {len(names) - SHOWN_HOLDERS} more"


def show_exact(found: MinedRoles, fmt: str) -> None:
    """The minimum exact cover, as `role mine --exact` has always shown it."""
    proof = "proven minimal" if found.proven_minimal else f"at least {found.lower_bound} needed"
    kept = sum(len(g) for g in found.exceptions.values())
    note(
        f"{len(found.roles)} roles for {found.users} users ({proof}), checked exact; "
        f"{kept} grants too rare for a role stay direct"
        + (f"; {found.left_out} disabled users left out" if found.left_out else "")
    )
    roles = [{"name": r.name, "grants": list(r.grants), "holders": list(r.holders)} for r in found.roles]
    if fmt == "json":
        exceptions = {user: sorted(grants) for user, grants in sorted(found.exceptions.items())}
        emit([], "json", document={"roles": roles, "exceptions": exceptions, "lower_bound": found.lower_bound})
    elif fmt == "csv":
        emit(roles, "csv", ["name", "holders", "grants"])
    else:
        table([{**r, "holders": len(r["holders"])} for r in roles], ["name", "holders", "grants"])
