"""migrate plan | apply | verify | resume | status, rollback, batches list | show."""

from __future__ import annotations

import sys

import click

from .. import changeset, connections, migration
from ..errors import UsageError
from . import pass_app
from .refresh import refresh, refresh_option
from .render import emit, format_option, note, tabulate_rows


def confirm(question: str, yes: bool, preview: str | None = None) -> None:
    """Show what will happen and ask, on a terminal; without one, only --yes lets a write go ahead."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Refusing without a terminal: add --yes to confirm")
    if preview:
        click.echo(preview, err=True)
    click.confirm(question, abort=True, err=True)


def _warn_unfinished(store) -> None:
    for batch in store.unfinished_batches():
        note(
            f"note: batch {batch.id} was interrupted: 'rbac-migrate migrate resume {batch.id}' finishes it, "
            f"'rbac-migrate rollback {batch.id}' undoes it"
        )


@click.group("migrate")
def migrate_group() -> None:
    """Move users from direct grants onto a role, a few at a time."""


def _users_option(func):
    func = click.option("--users", multiple=True, help="Users (id or DN), repeatable or comma-separated.")(func)
    func = click.option("--batch-size", type=click.IntRange(1), help="Pick the next N safe candidates.")(func)
    func = click.option("--allow-gain", multiple=True, metavar="USER", help="Approve new access for this user.")(func)
    func = refresh_option(func)
    return click.option("--role", required=True, help="Role to migrate onto (name or DN).")(func)


def _make_plan(app, role, users, batch_size, allow_gain, no_refresh=False):
    if users and batch_size:
        raise UsageError("give --users or --batch-size, not both")
    names = split_names(users) or None
    store = connections.store_for(app.settings)
    refreshed = refresh(app, store, no_refresh)
    gains = split_names(allow_gain)
    return migration.plan(app.settings, store, role, names, batch_size, gains, app.prompt), refreshed


def split_names(values) -> list[str]:
    """Users given as a repeatable option, comma-separated, or both: the same list either way."""
    if isinstance(values, str):
        values = (values,)
    return [name.strip() for value in values or () for name in value.split(",") if name.strip()]


@migrate_group.command("plan")
@_users_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan to FILE (owner-only).")
@format_option("table", "json", "ldif")
@pass_app
def plan_cmd(app, role, users, batch_size, allow_gain, no_refresh, output, fmt) -> None:
    """Compute the exact changes for a batch against the live directory; nothing is written to it.

    \b
    Example:
      rbac-migrate migrate plan --role role-finance-analyst --batch-size 3 -o wave1.json
    """
    plan, refreshed = _make_plan(app, role, users, batch_size, allow_gain, no_refresh)
    if output:
        migration.write_plan_file(connections.store_for(app.settings), plan, output)
        count = len(plan.units)
        note(f"plan for {count} users written to {output}; review it, then 'rbac-migrate migrate apply {output}'")
    show_plan(app, plan, fmt)
    note(refreshed)


def show_plan(app, plan, fmt: str) -> None:
    """A change set on stdout for review: a table, its JSON file form, or LDIF for ldapmodify."""
    if fmt == "ldif":
        click.echo(migration.plan_ldif(plan, app.settings.member_attribute))
    elif fmt == "json":
        click.echo(changeset.dumps(plan), nl=False)
    else:
        emit(migration.plan_rows(plan), "table", ["user", "change", "group", "value"])


def _question(plan) -> str:
    if plan.kind == "migrate" and plan.role is not None:
        return f"Move {len(plan.units)} users onto {plan.role.name} ({plan.removals} direct grants removed)?"
    return f"Apply: {plan.title} ({len(plan.edits)} changes, {plan.removals} removals)?"


def apply_plan_file(app, plan_file: str, ticket, yes) -> None:
    """Apply any change-set file through the engine, after showing what it will do."""
    store = connections.store_for(app.settings)
    require_ticket(app, ticket)

    def ask(plan) -> None:
        confirm(_question(plan), yes, tabulate_rows(migration.plan_rows(plan)))

    check_approved(app, store, plan_file)
    batch = migration.apply_file(app.settings, store, plan_file, ticket, note, app.prompt, ask)
    if batch.kind.startswith("role-") or batch.kind == "onboard":
        from ..roles.commands import catalogue_after_apply

        catalogue_after_apply(app.settings, store, batch, ticket, app.prompt)
    note(f"batch {batch.id} applied: {batch.message}")
    click.echo(batch.id)


def check_approved(app, store, plan_file: str) -> None:
    """With require_approval, only a plan file another operator approved is applied."""
    if not app.settings.values.get("require_approval"):
        return
    from ..store import approvals

    _, digest = migration.read_plan_file(store, plan_file)
    if approvals.approval(store, digest) is None:
        raise UsageError(
            f"{plan_file} is not approved: this store requires approval (require_approval: true); "
            f"another operator runs 'rbac-migrate migrate approve {plan_file}' first"
        )


@migrate_group.command("approve")
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--ticket", help="Change ticket reference, kept in the audit log.")
@pass_app
def approve_cmd(app, plan_file, ticket) -> None:
    """Approve a plan file for apply (four eyes): the approver must not be the operator who planned it.

    \b
    Example:
      rbac-migrate migrate approve wave1.json --ticket CHG-1042
    """
    from ..audit import new_record, operator
    from ..store import approvals

    store = connections.store_for(app.settings)
    changes, digest = migration.read_plan_file(store, plan_file)
    planner, me = approvals.planner(store, digest), operator()
    if planner == me:
        raise UsageError(f"{plan_file} was planned by {me}: another operator must approve it (four eyes)")
    approvals.approve(store, digest, me, ticket)
    store.audit(new_record("plan.approve", plan_file, ticket, digest=digest, planner=planner, title=changes.title))
    note(f"{plan_file} ({changes.title}) approved by {me}; planned by {planner}")


def require_ticket(app, ticket) -> None:
    if app.settings.values.get("require_ticket") and not ticket:
        raise UsageError("this store requires --ticket REF for every write (require_ticket: true)")


@migrate_group.command("apply")
@click.argument("plan_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--role", help="Plan and apply in one go (needs --yes).")
@click.option("--users", multiple=True, help="Users, repeatable or comma-separated, with --role.")
@click.option("--batch-size", type=click.IntRange(1), help="Next N safe candidates, with --role.")
@click.option("--allow-gain", multiple=True, metavar="USER", help="Approve new access for this user.")
@click.option("--ticket", help="Change ticket reference, kept in the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--if-any", is_flag=True, help="With --role: succeed quietly when no candidate is left.")
@refresh_option
@pass_app
def apply_cmd(app, plan_file, role, users, batch_size, allow_gain, ticket, yes, if_any, no_refresh) -> None:
    """Apply a reviewed plan: rebuilt against the directory, write-ahead rollback point, verified per user.

    \b
    Example:
      rbac-migrate migrate apply wave1.json --ticket CHG-1042
    """
    if plan_file:
        apply_plan_file(app, plan_file, ticket, yes)
        return
    if not role:
        raise UsageError("give a PLAN file, or --role with --users/--batch-size and --yes")
    if not yes:
        raise UsageError("applying without a reviewed plan file needs --yes")
    require_ticket(app, ticket)
    from .writes import refuse_unapproved_write

    refuse_unapproved_write(app)
    try:
        plan, _ = _make_plan(app, role, users, batch_size, allow_gain, no_refresh)
    except migration.NothingToMigrate as exc:
        if not if_any:
            raise
        note(f"nothing to do: {exc}")
        return
    store = connections.store_for(app.settings)
    batch = migration.execute_change_set(app.settings, store, plan, ticket, note, app.prompt)
    note(f"batch {batch.id} applied: {batch.message}")
    click.echo(batch.id)


@migrate_group.command("verify")
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False))
@pass_app
def verify_cmd(app, plan_file) -> int:
    """Check that a plan applied by other means (ldapmodify of its LDIF) left access as planned.

    \b
    Example:
      rbac-migrate migrate verify wave1.json
    """
    problems = migration.verify_plan(app.settings, plan_file, app.prompt)
    for problem in problems:
        click.echo(problem)
    note("verified: every change is in place and access is as planned" if not problems else f"{len(problems)} problems")
    return 0 if not problems else 1


@migrate_group.command("resume")
@click.argument("batch", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def resume_cmd(app, batch, yes) -> None:
    """Finish an interrupted batch: read back every step whose outcome is unknown, then continue.

    \b
    Example:
      rbac-migrate migrate resume 7
    """
    store = connections.store_for(app.settings)
    store.batch(batch)  # an unknown batch is reported before anything connects
    confirm(f"Resume batch {batch}?", yes)
    done = migration.resume_batch(app.settings, store, batch, note, app.prompt)
    note(f"batch {done.id} {done.status}: {done.message}")


@migrate_group.command("status")
@format_option()
@pass_app
def status_cmd(app, fmt) -> None:
    """Per role: holders, holders still holding a grant of the role directly, users migrated, batches.

    The counts are those of 'report progress': holders are enabled users holding the role in the
    latest snapshot; still_direct counts holders (users, not grants) who still hold at least one
    grant the role gives directly; migrated counts users of applied migration batches.

    \b
    Example:
      rbac-migrate migrate status
    """
    store = connections.store_for(app.settings)
    _warn_unfinished(store)
    rows = [vars(r) for r in migration.status(store)]
    note(
        "holders: enabled users holding the role (latest snapshot); still_direct: holders who still hold "
        "a grant the role gives directly; migrated: users moved by applied batches"
    )
    emit(rows, fmt, ["role", "holders", "still_direct", "migrated", "batches", "state"])


@click.command("rollback")
@click.argument("batches", nargs=-1, required=True, type=int)
@click.option("--user", "users", multiple=True, help="Only this user (id or DN); repeatable or comma-separated.")
@click.option("--dry-run", is_flag=True, help="Show what would be restored and the conflicts.")
@click.option("--force", is_flag=True, help="Restore users even where someone changed values since.")
@click.option("--ticket", help="Change ticket reference, kept in the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@format_option()
@pass_app
def rollback_cmd(app, batches, users, dry_run, force, ticket, yes, fmt) -> int:
    """Restore exactly what batches changed (newest first); conflicting users are left alone unless --force.

    Any batch can be rolled back: migration waves, onboardings, role edits, remediation.

    \b
    Example:
      rbac-migrate rollback 7 --user alice --dry-run
      rbac-migrate rollback 9 8 7 --ticket CHG-1043
    """
    store = connections.store_for(app.settings)
    for batch in batches:
        store.batch(batch)  # an unknown batch is reported before anything connects
    if not dry_run:
        require_ticket(app, ticket)
    chosen = set(split_names(users)) or None
    rows, conflicts = [], False
    for batch in sorted(set(batches), reverse=True):

        def run(dry: bool, batch=batch):
            return migration.rollback_batch(app.settings, store, batch, chosen, dry, force, note, app.prompt, ticket)

        if not dry_run and not yes and sys.stdin.isatty():
            preview = tabulate_rows(_rollback_rows(run(True), "would restore"))
            confirm(f"Roll back batch {batch}{' for ' + ', '.join(sorted(chosen)) if chosen else ''}?", yes, preview)
        elif not dry_run:
            confirm(f"Roll back batch {batch}?", yes)
        report = run(dry_run)
        rows += [{"batch": batch, **row} for row in _rollback_rows(report, "would restore" if dry_run else "restored")]
        conflicts = conflicts or bool(report.conflicts and not force)
    emit(rows, fmt, ["batch", "user", "outcome"])
    return 4 if conflicts else 0


def _rollback_rows(report, verb: str) -> list[dict]:
    rows = [{"user": u, "outcome": verb} for u in report.restored]
    rows += [{"user": u, "outcome": "already as before"} for u in report.already]
    rows += [{"user": u, "outcome": "conflict: " + "; ".join(c)} for u, c in report.conflicts.items()]
    return rows


@click.group("batches")
def batches_group() -> None:
    """Applied batches, their outcomes and rollbacks."""


@batches_group.command("list")
@format_option()
@pass_app
def batches_list(app, fmt) -> None:
    """List batches with their status.

    \b
    Example:
      rbac-migrate batches list --format json
    """
    rows = [
        {
            "id": b.id,
            "kind": b.kind,
            "role": b.role_dn,
            "status": b.status,
            "units": len(b.plan.get("units", b.plan.get("users", []))),
            "operator": b.operator,
            "ticket": b.ticket,
            "created_at": b.created_at,
            "message": b.message,
        }
        for b in connections.store_for(app.settings).batches()
    ]
    emit(rows, fmt, ["id", "kind", "role", "status", "units", "operator", "ticket", "created_at", "message"])


@batches_group.command("show")
@click.argument("batch", type=int)
@format_option()
@pass_app
def batches_show(app, batch, fmt) -> None:
    """Every user and step of a batch with its state.

    \b
    Example:
      rbac-migrate batches show 7
    """
    found = connections.store_for(app.settings).batch(batch)
    users = {u.position: u for u in found.users}
    rows = [
        {
            "user": users[s.position].user_dn,
            "user_state": users[s.position].state,
            "op": s.op,
            "group": s.group_dn,
            "value": s.value,
            "step_state": s.state,
        }
        for s in found.steps
    ]
    note(f"batch {found.id}: {found.status} ({found.message or ''})")
    emit(rows, fmt, ["user", "user_state", "op", "group", "value", "step_state"])


@click.command("apply")
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--ticket", help="Change ticket reference, kept in the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def apply_any_cmd(app, plan_file, ticket, yes) -> None:
    """Apply any change-set file (a migration wave, remediation, mined roles) through the write engine.

    The file's intent is rebuilt against the live directory; anything else it asks for is refused.

    \b
    Example:
      rbac-migrate apply wave1.json --ticket CHG-1042
    """
    apply_plan_file(app, plan_file, ticket, yes)


def register(cli: click.Group) -> None:
    for command in (migrate_group, rollback_cmd, batches_group, apply_any_cmd):
        cli.add_command(command)
