"""access show | explain."""

from __future__ import annotations

import click

from .. import access, connections
from . import pass_app
from .render import emit, format_option, note


@click.group("access")
def access_group() -> None:
    """Who can reach what, and why (from the latest snapshot)."""


@access_group.command("show")
@click.argument("user")
@click.option("--snapshot", default="latest", help="Snapshot id (default: latest).")
@format_option()
@pass_app
def show(app, user, snapshot, fmt) -> None:
    """A user's effective grants, each with its source: direct, via a role, or nested.

    \b
    Example:
      rbac-migrate access show alice --format json
    """
    result = access.access_show(connections.lean_store_for(app.settings), user, snapshot)
    rows = [{"grant": g.group.name, "source": g.sources, "dn": g.group.dn} for g in result.grants]
    document = {
        "snapshot": result.snapshot_id,
        "user": {
            "name": result.user.name,
            "dn": result.user.dn,
            "uuid": result.user.uuid,
            "enabled": result.user.enabled,
        },
        "roles": [r.name for r in result.roles],
        "grants": [{"grant": g.group.name, "dn": g.group.dn, "sources": g.sources} for g in result.grants],
    }
    state = "" if result.user.enabled else " (disabled)"
    roles = ", ".join(r.name for r in result.roles) or "none"
    note(f"{result.user.name}{state}: {len(result.grants)} grants, roles: {roles} (snapshot {result.snapshot_id})")
    emit(rows, fmt, ["grant", "source", "dn"], document=document)


@access_group.command("explain")
@click.argument("user")
@click.argument("group")
@click.option("--snapshot", default="latest", help="Snapshot id (default: latest).")
@format_option()
@pass_app
def explain(app, user, group, snapshot, fmt) -> int:
    """Every membership path by which USER reaches GROUP, or "no access" (exit 3).

    \b
    Example:
      rbac-migrate access explain alice fin-ledger-read
    """
    entry, target, paths = access.access_explain(connections.lean_store_for(app.settings), user, group, snapshot)
    rows = [{"path": p.describe(), "source": p.source, "length": len(p.hops) - 1} for p in paths]
    if not paths:
        note(f"no access: {entry.name} does not reach {target.name}")
    emit(
        rows,
        fmt,
        ["path", "source", "length"],
        document={"user": entry.name, "group": target.name, "access": bool(paths), "paths": rows},
    )
    return 0 if paths else 3


def register(cli: click.Group) -> None:
    cli.add_command(access_group)
