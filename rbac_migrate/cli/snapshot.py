"""snapshot take | list | show | diff."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from .. import connections
from ..kinds import DANGLING, EXTERNAL, GRANT, ROLE, USER
from . import pass_app
from .render import emit, format_option, note


@click.group("snapshot")
def snapshot_group() -> None:
    """Copy who holds what from the directory into the store, and compare copies."""


@snapshot_group.command("take")
@click.option("--full", is_flag=True, help="Read everything, and report any difference from an incremental read.")
@pass_app
def take(app, full) -> None:
    """Read users, grant groups and roles into a new snapshot.

    Reads only what changed since the latest snapshot where the server offers it (OpenLDAP's
    syncprov overlay, Active Directory's uSNChanged), otherwise everything; says which.

    \b
    Example:
      rbac-migrate snapshot take
      rbac-migrate snapshot take --full
    """
    settings = app.settings
    store = connections.store_for(settings) if full else connections.snapshot_store_for(settings)
    store.begin_refresh()  # the store starts on its part while the reading code is still imported
    from .. import snapshot as snapshots

    progress = lambda stage, n: note(f"  read {n} {stage}")  # noqa: E731
    taken = snapshots.update(settings, store, progress=progress, prompt=app.prompt, full=full)
    info = store.snapshot_info(taken.written.snapshot_id)
    note(taken.description)
    note(
        f"snapshot {info.id}: {info.users} users, {info.grants} grant groups, {info.roles} roles, "
        f"{info.memberships} member values from {info.source}"
    )
    differences = taken.differences
    if differences is not None:
        note(f"the full read differs from the incremental state in {len(differences)} places" if differences
             else "the full read agrees with the incremental state")  # fmt: skip
        for change in differences:
            note(f"  {change.change}: {change.subject} {change.group} {change.detail}".rstrip())
    click.echo(info.id)


@snapshot_group.command("prune")
@click.option("--keep", type=click.IntRange(min=1), help="Keep this many newest snapshots.")
@click.option("--older-than", "days", type=click.IntRange(min=0), help="Remove snapshots older than this many days.")
@pass_app
def prune(app, keep, days) -> None:
    """Remove old snapshots and the entry versions only they held; the latest is always kept.

    The findings register is brought up to date first, so every finding keeps the date it was
    first seen and its history of fixes; each snapshot removed leaves its progress and findings
    counts behind, so the trends of 'report progress' and 'report orphans' still start at the first.

    \b
    Example:
      rbac-migrate snapshot prune --keep 30
      rbac-migrate snapshot prune --older-than 90
    """
    if keep is None and days is None:
        raise click.UsageError("give --keep N or --older-than DAYS")
    older = datetime.now(timezone.utc) - timedelta(days=days) if days is not None else None
    store = connections.store_for(app.settings)
    points = None
    if store.snapshots():
        from .. import reports

        points = reports.history_points(store)  # what reports need from the history, kept before it goes
    removed = store.prune_snapshots(keep=keep, older_than=older, points=points)
    remaining = store.snapshots()
    note(f"removed {len(removed)} snapshots; {len(remaining)} kept, oldest {remaining[0].id if remaining else '-'}")
    for snapshot_id in removed:
        click.echo(snapshot_id)


INFO_COLUMNS = ["id", "taken_at", "source", "users", "grants", "roles", "memberships"]


@snapshot_group.command("list")
@format_option()
@pass_app
def list_(app, fmt) -> None:
    """List snapshots, oldest first.

    \b
    Example:
      rbac-migrate snapshot list --format json
    """
    rows = [vars_of(i) for i in connections.store_for(app.settings).snapshots()]
    emit(rows, fmt, INFO_COLUMNS)


def vars_of(info) -> dict:
    return {c: getattr(info, c) for c in INFO_COLUMNS}


@snapshot_group.command("show")
@click.argument("snapshot", default="latest")
@click.option("--kind", type=click.Choice([USER, GRANT, ROLE, EXTERNAL, DANGLING]), help="Only entries of this kind.")
@format_option()
@pass_app
def show(app, snapshot, kind, fmt) -> None:
    """Show the entries of a snapshot (latest by default).

    \b
    Example:
      rbac-migrate snapshot show latest --kind grant
    """
    snap = connections.store_for(app.settings).load_snapshot(snapshot)
    rows = [
        {
            "kind": e.kind,
            "name": e.name,
            "dn": e.dn,
            "uuid": e.uuid,
            "enabled": e.enabled,
            "members": len(snap.members.get(e.idx, ())) if e.is_group else None,
            "attributes": dict(e.attrs),
        }
        for e in snap.entries
        if kind is None or e.kind == kind
    ]
    note(f"snapshot {snap.id} taken {snap.taken_at:%Y-%m-%d %H:%M:%S} from {snap.source}")
    columns = ["kind", "name", "dn", "uuid", "enabled", "members"]
    emit(rows, fmt, columns if fmt == "table" else [*columns, "attributes"])


@snapshot_group.command("diff")
@click.argument("a", default="-1")
@click.argument("b", default="latest")
@format_option()
@pass_app
def diff(app, a, b, fmt) -> None:
    """What changed from snapshot A to B (default: the previous and the latest).

    \b
    Example:
      rbac-migrate snapshot diff 3 5 --format csv
    """
    store = connections.store_for(app.settings)
    old, new = store.load_snapshot(a), store.load_snapshot(b)
    from .. import changes

    found = changes.diff(old, new)
    note(f"{len(found)} changes from snapshot {old.id} to {new.id}")
    emit([vars(c) for c in found], fmt, ["change", "subject", "group", "detail"])


def register(cli: click.Group) -> None:
    cli.add_command(snapshot_group)
