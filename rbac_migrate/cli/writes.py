"""What every write command shares: showing and asking, options, tickets, approvals, the outcome line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from .render import note

if TYPE_CHECKING:  # the write side (and ldap3 behind it) loads only for commands that write
    from ..roles.commands import Outcome, RolePlan


def asker(yes: bool):
    """Show what a write will do, then ask on a terminal; --yes goes ahead without asking."""

    def ask(plan: RolePlan) -> None:
        from .migrate import confirm

        # Without a terminal or --yes the refusal is the only line: nothing was going to happen.
        if yes or sys.stdin.isatty():
            for line in plan.lines:
                note(f"  {line}")
        confirm(plan.question, yes)

    return ask


def report(outcome: Outcome, done: str) -> None:
    if outcome.batch_id is None:
        note("nothing to do: " + ("; ".join(outcome.plan.lines) or "the directory is already as asked"))
    else:
        note(f"{done} (batch {outcome.batch_id}; 'rbac-migrate rollback {outcome.batch_id}' undoes it)")


def write_options(func):
    func = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")(func)
    return click.option("--ticket", metavar="REF", help="Change ticket reference, kept in the audit log.")(func)


def split_grants(values) -> list[str]:
    """Grants given repeatable or comma-separated; a DN (it holds '=') is one grant, commas and all."""
    found = []
    for value in values or ():
        found += [value.strip()] if "=" in value else [v.strip() for v in value.split(",") if v.strip()]
    return found


def check_ticket(app, ticket) -> None:
    from .migrate import require_ticket

    require_ticket(app, ticket)


def refuse_unapproved_write(app) -> None:
    """With require_approval, a write goes through a plan file a second operator approved."""
    if app.settings.values.get("require_approval"):
        raise UsageError(
            "this store requires approval (require_approval: true): write a plan with -o FILE, have another "
            "operator approve it with 'rbac-migrate migrate approve FILE', then 'rbac-migrate apply FILE'"
        )


plan_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the change set as a plan file for review (and approval) instead; apply it with 'rbac-migrate apply'.",
)


def writing(app, output, ticket) -> None:
    """A write to the directory needs its ticket, and goes through an approved plan file where the
    store requires approval; writing the plan file itself needs neither."""
    if output is None:
        refuse_unapproved_write(app)
        check_ticket(app, ticket)


def finished(outcome, output, message: str) -> None:
    """The outcome line of a write, or what a written plan file holds and how to apply it."""
    if output is None:
        report(outcome, message)
        return
    for line in outcome.plan.lines:
        note(f"  {line}")
    note(f"wrote {output}: review it, then 'rbac-migrate apply {output}'")
