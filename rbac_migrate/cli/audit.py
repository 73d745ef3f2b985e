"""audit log | verify."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from .. import connections, reports
from ..errors import UsageError
from ..reports.auditlog import summary
from . import pass_app
from .render import emit, format_option, note

COLUMNS = ["id", "at", "operator", "action", "target", "ticket", "summary", "details"]
TABLE_COLUMNS = ["id", "at", "operator", "action", "target", "ticket", "summary"]


@click.group("audit")
def audit_group() -> None:
    """The hash-chained log of every change, and a check that nobody edited it."""


def parse_since(text: str | None) -> datetime | None:
    """A date or ISO time; without a zone it is UTC, the zone the log is written in."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        hint = "use YYYY-MM-DD or an ISO time like 2026-01-31T09:00"
        raise UsageError(f"--since '{text}' is not a date: {hint}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


@audit_group.command("log")
@click.option("--since", metavar="DATE", help="Only records at or after DATE (YYYY-MM-DD or ISO time; UTC by default).")
@click.option(
    "--user", metavar="U", help="Only records made by operator U, or touching user U (id or DN; matched by identity)."
)
@format_option()
@pass_app
def log(app, since, user, fmt) -> None:
    """Every recorded change: operator, time, ticket, target, before and after; oldest first.

    \b
    Example:
      rbac-migrate audit log --since 2026-01-01 --user alice --format csv
    """
    records = reports.audit_log(connections.store_for(app.settings), parse_since(since), user)
    note(f"{len(records)} audit records")
    rows = [
        {
            "id": r.id,
            "at": r.at.astimezone(timezone.utc).isoformat(timespec="seconds"),
            "operator": r.operator,
            "action": r.action,
            "target": r.target,
            "ticket": r.ticket,
            "summary": summary(r.details),
            "details": json.dumps(r.details, sort_keys=True, ensure_ascii=False, default=str),
        }
        for r in records
    ]
    document = [
        {**row, "details": r.details, "prev_hash": r.prev_hash, "hash": r.hash}
        for row, r in zip(rows, records, strict=True)
    ]
    # The table is for reading: a summary per record; CSV and JSON carry the full detail.
    emit(rows, fmt, TABLE_COLUMNS if fmt == "table" else COLUMNS, document=document)


@audit_group.command("verify")
@pass_app
def verify(app) -> int:
    """Check the whole chain: exit 0 when intact, 1 naming each edited, deleted, inserted or moved record.

    \b
    Example:
      rbac-migrate audit verify
    """
    check = reports.audit_verify(connections.store_for(app.settings))
    if not check.problems:
        click.echo(f"intact: {check.records} records")
        return 0
    for problem in check.problems:
        click.echo(problem)
    note(f"error: the audit log is not intact ({len(check.problems)} problems in {check.records} records)")
    return 1


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)
