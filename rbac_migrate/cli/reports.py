"""report orphans | progress."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from .. import connections, reports
from ..errors import UsageError
from ..reports.html import orphans_html, progress_html
from ..reports.orphans import CATEGORIES, OrphanReport
from ..reports.outliers import OutlierSettings
from ..reports.progress import ProgressReport
from ..reports.provenance import iso
from . import pass_app
from .render import emit, format_option, note, output_option, table, to_output

FINDING_COLUMNS = [
    "category", "user_id", "user_dn", "member_value", "group", "group_dn", "first_snapshot", "action", "reason",
    "first_seen", "status", "signal", "exception",
]  # fmt: skip
TABLE_COLUMNS = ["category", "user", "group", "first seen", "action", "reason"]


@click.group("report")
def report_group() -> None:
    """Reports for the auditor: leftover and orphaned rights, and migration progress."""


def _threshold(flag: str, name: str, meaning: str):
    default = getattr(OutlierSettings, name)
    return click.option(
        flag, name, type=type(default), default=default, show_default=True, help=f"peer-outlier: {meaning}."
    )


@report_group.command("orphans")
@click.option(
    "--hr-feed",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.csv",
    help="CSV of current staff ids (a column named id, uid, employee or sAMAccountName, else the first).",
)
@click.option("--snapshot", default="latest", show_default=True, help="Snapshot id to report on.")
@_threshold("--outlier-share", "max_share", "a grant at most this share of the user's peers hold")
@_threshold("--min-peers", "min_peers", "fewest people in a job to judge it")
@_threshold("--typical-share", "typical_share", "a grant at least this share of another job holds is typical of it")
@_threshold("--min-bundle", "min_bundle", "rights typical of one unrelated job that mark an earlier job")
@format_option("html")
@output_option()
@pass_app
def orphans(app, hr_feed, snapshot, max_share, min_peers, typical_share, min_bundle, fmt, output) -> None:
    """Rights nobody can explain, held by leavers, or pointing at nothing; summary first.

    Each finding names its category, the user or member value, the group, the first snapshot
    it appeared in (of the unbroken run up to this one) and a suggested action.

    \b
    Categories:
      leaver-grant, not-in-hr (with --hr-feed), dangling-member, redundant-grant,
      unexplained-grant, empty-group, unused-role, mover-leftover, peer-outlier

    peer-outlier works on any snapshot, the first included: grants few of a user's
    current peers (same peer attributes) hold, with evidence from both jobs. Rights typical
    of another job (what a mover kept) are listed first, personal one-offs below them.

    \b
    Example:
      rbac-migrate report orphans --hr-feed staff.csv --format html -o orphans.html
    """
    try:
        thresholds = OutlierSettings(max_share, min_peers, typical_share, min_bundle).check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = reports.orphans(connections.store_for(app.settings), hr_feed, snapshot, thresholds)
    counts = ", ".join(f"{cat} {n}" for cat, n in result.summary.items())
    note(f"snapshot {result.snapshot.id} from {result.snapshot.source}: {len(result.findings)} findings ({counts})")
    for line in result.notes:
        note(line)
    with to_output(output), reports.bulk_work():
        _render_orphans(result, fmt)


def _render_orphans(result: OrphanReport, fmt: str) -> None:
    if fmt == "html":
        click.echo(orphans_html(result), nl=False)
        return
    if fmt == "json":
        write_json(result.document())
        return
    if fmt == "csv":
        rows = [vars(f) for f in result.findings]
        rows += [{**vars(a.finding), "status": "accepted", "exception": a.exception.id} for a in result.accepted]
        emit([{**row, **result.provenance} for row in rows], fmt, [*FINDING_COLUMNS, *result.provenance])
        return
    summary = [{"category": c, "count": n, "meaning": CATEGORIES[c]} for c, n in result.summary.items()]
    summary.append({"category": "(accepted)", "count": len(result.accepted), "meaning": ACCEPTED_MEANING})
    table(summary, ["category", "count", "meaning"])
    click.echo()
    table([_table_row(f) for f in result.findings], TABLE_COLUMNS)
    if result.accepted:
        click.echo()
        rows = [{**_table_row(a.finding), **_exception_cells(a.exception)} for a in result.accepted]
        table(rows, ["category", "user", "group", "exception", "owner", "expires", "reason"])


ACCEPTED_MEANING = "findings an exception accepts, listed apart until it expires ('exception list')"


def _exception_cells(exception) -> dict:
    return {
        "exception": exception.id,
        "owner": exception.owner,
        "expires": iso(exception.expires)[:10],
        "reason": exception.reason,
    }


def write_json(document: dict) -> None:
    """Indented at the top, one list item per line below.

    json.dumps uses its C encoder only without indent; a whole large report indented takes
    seconds, item by item it takes a fraction of one and still reads and diffs line by line.
    """
    dump = _encoder()
    parts = []
    for key, value in document.items():
        if isinstance(value, list) and value:
            items = ",\n    ".join([dump(item) for item in value])
            parts.append(f"  {dump(key)}: [\n    {items}\n  ]")
        else:
            parts.append(f"  {dump(key)}: {dump(value)}")
    click.echo("{\n" + ",\n".join(parts) + "\n}")


def _encoder() -> Callable[[object], str]:
    """json.JSONEncoder(ensure_ascii=False, default=str).encode, without its cost per call.

    ``encode`` builds a new C encoder for every value it is given; a report encodes tens of
    thousands of findings one by one, so one C encoder is made here and called directly (the
    values are the report's own, built without cycles). Where the C module is missing, the
    ordinary encoder does the same.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, default=str).encode
    encode = make(None, str, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encode(value, 0))


def _table_row(finding: reports.Finding) -> dict:
    return {
        "category": finding.category,
        "user": finding.user_id or finding.member_value,
        "group": finding.group,
        "first seen": finding.first_seen[:10],
        "action": finding.action,
        "reason": finding.reason,
    }


@report_group.command("progress")
@format_option("html")
@output_option()
@pass_app
def progress(app, fmt, output) -> None:
    """Share of users holding roles, direct grants left, and each role's migration state, over time.

    \b
    Example:
      rbac-migrate report progress --format html -o progress.html
    """
    result = reports.progress(connections.store_for(app.settings))
    latest = result.points[-1]
    note(
        f"snapshot {result.snapshot.id}: {latest.with_roles} of {latest.users} enabled users hold a role "
        f"({latest.share:.1%}); {latest.direct_grants} direct grants remain"
    )
    if result.findings:
        note(result.findings.summary)
    with to_output(output), reports.bulk_work():
        _render_progress(result, fmt)


def _render_progress(result: ProgressReport, fmt: str) -> None:
    if fmt == "html":
        click.echo(progress_html(result), nl=False)
        return
    if fmt == "json":
        emit([], fmt, document=result.document())
        return
    findings = {s: (o, a) for s, _at, o, a in result.findings.over_time} if result.findings else {}
    rows = [
        {
            "snapshot": p.snapshot.id,
            "taken": iso(p.snapshot.taken_at),
            "users": p.users,
            "with role": p.with_roles,
            "share": f"{p.share:.1%}",
            "direct grants": p.direct_grants,
            "role also gives": p.covered,
            "open findings": findings.get(p.snapshot.id, ("", ""))[0],
            "accepted": findings.get(p.snapshot.id, ("", ""))[1],
        }
        for p in result.points
    ]
    columns = list(rows[0])
    if fmt == "csv":
        emit([{**row, **result.provenance} for row in rows], fmt, [*columns, *result.provenance])
        return
    table(rows, columns)
    click.echo()
    columns = ["role", "holders", "still_direct", "batches", "migrated", "rolled_back", "conflicts", "pending", "state"]
    table([vars(r) for r in result.roles], columns)


def register(cli: click.Group) -> None:
    cli.add_command(report_group)
