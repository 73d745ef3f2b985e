"""remediate plan: findings of the orphan report as a reviewable change set."""

from __future__ import annotations

import click

from .. import connections, migration, remediation
from . import pass_app
from .migrate import show_plan, split_names
from .refresh import refresh, refresh_option
from .render import format_option, note


@click.group("remediate")
def remediate_group() -> None:
    """Remove leftover and orphaned rights in small, reversible batches."""


@remediate_group.command("plan")
@click.option(
    "--category",
    required=True,
    type=click.Choice(remediation.REMOVABLE),
    help="Which findings to remove (see 'rbac-migrate report orphans').",
)
@click.option("--user", "users", multiple=True, help="Only these users (id or DN); repeatable or comma-separated.")
@click.option("--batch-size", type=click.IntRange(1), help="Accounts in this batch (default: max_batch_size).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan to FILE (owner-only).")
@format_option("table", "json", "ldif")
@refresh_option
@pass_app
def plan_cmd(app, category, users, batch_size, output, fmt, no_refresh) -> None:
    """Plan the removal of the member values behind findings, skipping accepted exceptions.

    Apply the plan with 'rbac-migrate apply FILE'; 'rbac-migrate rollback N' puts it all back.

    \b
    Example:
      rbac-migrate remediate plan --category leaver-grant --batch-size 5 -o leavers-1.json
    """
    store = connections.store_for(app.settings)
    refreshed = refresh(app, store, no_refresh)
    plan = remediation.plan(app.settings, store, category, split_names(users), batch_size, app.prompt)
    if output:
        migration.write_plan_file(store, plan, output)
        note(f"{plan.title}: written to {output}; review it, then 'rbac-migrate apply {output}'")
    show_plan(app, plan, fmt)
    note(refreshed)


def register(cli: click.Group) -> None:
    cli.add_command(remediate_group)
