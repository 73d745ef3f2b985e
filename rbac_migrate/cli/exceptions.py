"""exception add | list | remove."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from .. import connections
from ..reports import exceptions as api
from ..reports.provenance import iso
from . import pass_app
from .render import emit, format_option, note

COLUMNS = ["id", "user", "group", "owner", "reason", "ticket", "expires", "state", "created_by"]


@click.group("exception")
def exception_group() -> None:
    """Accepted findings: a user may keep a right for a documented reason, until a date."""


@exception_group.command("add")
@click.argument("user")
@click.argument("group")
@click.option("--owner", required=True, metavar="WHO", help="Who answers for the exception.")
@click.option("--reason", required=True, metavar="TEXT", help="Why the right stays (legal hold, ...).")
@click.option("--expires", required=True, metavar="DATE", help="Last day it holds (YYYY-MM-DD, UTC).")
@click.option("--ticket", metavar="REF", help="Change or risk-acceptance reference.")
@pass_app
def add(app, user, group, owner, reason, expires, ticket) -> None:
    """Accept USER keeping GROUP: the finding leaves the report, listed apart, until DATE has passed.

    \b
    Example:
      rbac-migrate exception add jdoe fin-ledger-admin --owner cfo --reason "legal hold" \\
        --expires 2026-12-31 --ticket RISK-12
    """
    found = api.add_exception(connections.store_for(app.settings), user, group, owner, reason, expires, ticket)
    note(f"exception {found.id}: {found.user_name} may keep {found.group_name} through {iso(found.expires)[:10]}")
    click.echo(found.id)


@exception_group.command("list")
@format_option()
@pass_app
def list_cmd(app, fmt) -> None:
    """Every exception, active or expired.

    \b
    Example:
      rbac-migrate exception list --format csv
    """
    now = datetime.now(timezone.utc)
    rows = [
        {
            "id": e.id,
            "user": e.user_name,
            "user_dn": e.user_dn,
            "group": e.group_name,
            "group_dn": e.group_dn,
            "owner": e.owner,
            "reason": e.reason,
            "ticket": e.ticket,
            "expires": iso(e.expires),
            "state": "active" if e.active(now) else "expired",
            "created_at": iso(e.created_at),
            "created_by": e.created_by,
        }
        for e in connections.store_for(app.settings).findings.exceptions()
    ]
    emit(rows, fmt, COLUMNS if fmt == "table" else list(rows[0]) if rows else COLUMNS)


@exception_group.command("remove")
@click.argument("exception_id", metavar="ID", type=int)
@click.option("--ticket", metavar="REF", help="Change reference.")
@pass_app
def remove(app, exception_id, ticket) -> None:
    """Withdraw exception ID: its finding is reported again.

    \b
    Example:
      rbac-migrate exception remove 3 --ticket RISK-12
    """
    found = api.remove_exception(connections.store_for(app.settings), exception_id, ticket)
    note(f"exception {found.id} removed: {found.user_name} / {found.group_name} is reported again")


def register(cli: click.Group) -> None:
    cli.add_command(exception_group)
