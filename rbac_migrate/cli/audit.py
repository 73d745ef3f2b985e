"""audit log | verify | checkpoint."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from .. import connections, reports
from ..audit import Checkpoint, parse_checkpoint
from ..errors import RbacMigrateError, UsageError
from ..files import write_private
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
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="A file written by 'audit checkpoint': fail when the log no longer holds its head.",
)
@format_option()
@pass_app
def verify(app, checkpoint_file, fmt) -> int:
    """Check the whole chain: exit 0 when intact, 1 naming each edited, deleted, inserted or moved record.

    Records cut from the end are found against a checkpoint kept outside the store, and against
    the store's batches, each of which must keep its audit records. With audit_key_file set,
    each signed record's HMAC is checked too.

    \b
    Example:
      rbac-migrate audit verify --checkpoint /srv/audit/head.json
    """
    checkpoint = _read_checkpoint(checkpoint_file) if checkpoint_file else None
    check = reports.audit_verify(connections.store_for(app.settings), checkpoint)
    intact = not check.problems
    if fmt == "json":
        document = {
            "intact": intact,
            "records": check.records,
            "signed": check.signed,
            "batches": check.batches,
            "head": {"record": check.head.record, "hash": check.head.hash, "at": check.head.at},
            "checkpoint": None if checkpoint is None else {"record": checkpoint.record, "hash": checkpoint.hash},
            "problems": check.problems,
        }
        emit([], fmt, document=document)
    elif fmt == "csv":
        rows = [{"intact": intact, "records": check.records, "problem": p} for p in check.problems or [""]]
        emit(rows, fmt, ["intact", "records", "problem"])
    elif intact:
        click.echo(f"intact: {check.records} records")
    else:
        for problem in check.problems:
            click.echo(problem)
    if intact:
        return 0
    note(f"error: the audit log is not intact ({len(check.problems)} problems in {check.records} records)")
    return 1


@audit_group.command("checkpoint")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to keep the head: outside the store, where those who can edit the store cannot.",
)
@pass_app
def checkpoint(app, output) -> None:
    """Write the log's head (record id, hash, time) to FILE, so that cutting records from the end shows.

    The log must verify intact first. An existing checkpoint FILE is replaced only when the log
    still holds its head, so a shortened log cannot be checkpointed over the evidence.

    \b
    Example:
      rbac-migrate audit checkpoint -o /srv/audit/head.json
    """
    store = connections.store_for(app.settings)
    previous = _read_checkpoint(output) if output.exists() else None
    check = reports.audit_verify(store, previous)
    if check.problems:
        raise RbacMigrateError(
            f"the audit log is not intact ({check.problems[0]}): "
            f"'rbac-migrate audit verify{f' --checkpoint {output}' if previous else ''}' lists every problem"
        )
    document = check.head.document(check.records, store.display_url, datetime.now(timezone.utc))
    write_private(output, json.dumps(document, indent=2) + "\n")
    note(f"wrote {output}: record {check.head.record} of {check.records}, hash {check.head.hash[:12]}…")


def _read_checkpoint(path: Path) -> Checkpoint:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RbacMigrateError(f"cannot read checkpoint {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return parse_checkpoint(text, str(path))
    except ValueError as exc:
        raise RbacMigrateError(str(exc)) from None


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)
