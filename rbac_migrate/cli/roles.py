"""role create | list | show | add-grant | remove-grant | delete | candidates | mine (rule and sync: rules.py)."""

from __future__ import annotations

import click

from .. import connections
from ..dn import first_value
from ..errors import UsageError
from ..roles import query as roles_query
from . import pass_app
from .refresh import refresh, refresh_option
from .render import emit, format_option, note
from .rules import rule_group, rule_text, sync
from .writes import asker, finished, plan_option, split_grants, write_options, writing


@click.group("role")
def role_group() -> None:
    """The role catalogue: define roles, see who fits them, mine roles from current access."""


@role_group.command("create")
@click.argument("name", required=False)
@click.option(
    "--grant", "grants", multiple=True, metavar="G", help="Grant group (cn or DN); repeatable or comma-separated."
)
@click.option("--from-user", metavar="USER", help="Copy this user's direct grants and role grants instead.")
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False),
    help="Create every role of a roles file (role mine -o).",
)
@click.option("--description", help="What the role is for.")
@plan_option
@write_options
@pass_app
def create(app, name, grants, from_user, from_file, description, output, ticket, yes) -> None:
    """Create role NAME under the role base and nest it into each of its grant groups.

    With --from-file, every role of a reviewed roles file is created as one change set: one
    batch, undone by one 'rbac-migrate rollback N'. -o writes the change set for review instead.

    \b
    Example:
      rbac-migrate role create role-finance-analyst --grant fin-ledger-read --grant fin-share
      rbac-migrate role create --from-file roles.json -o create-roles.json
    """
    from ..roles import commands as roles_api

    store = connections.store_for(app.settings)
    if from_file:
        if name or grants or from_user or description:
            raise UsageError(
                "--from-file takes the roles, their grants and descriptions from the file: give nothing else"
            )
        _create_from_file(app, store, from_file, output, ticket, yes)
        return
    if not name:
        raise UsageError("name the role to create, or give --from-file FILE")
    writing(app, output, ticket)
    outcome = roles_api.role_create(
        app.settings, store, name, split_grants(grants), description, from_user, ticket, asker(yes), app.prompt, output
    )
    finished(outcome, output, f"created role {name}")


def _create_from_file(app, store, path, output, ticket, yes) -> None:
    from ..roles import bulk

    writing(app, output, ticket)
    outcome = bulk.create_many(app.settings, store, path, output, ticket, asker(yes), app.prompt)
    finished(outcome, output, f"created {len(outcome.plan.changes.units)} roles from {path}")


@role_group.command("list")
@format_option()
@pass_app
def list_(app, fmt) -> None:
    """Every role of the latest snapshot and of the catalogue, with grant and holder counts.

    \b
    Example:
      rbac-migrate role list --format json
    """
    snapshot_id, summaries = roles_query.role_list(connections.store_for(app.settings))
    rows = [
        {
            "name": s.name,
            "grants": len(s.grants),
            "holders": s.holder_count,
            "managed": s.managed,
            "description": s.description,
            "dn": s.dn,
        }
        for s in summaries
    ]
    note(f"holders as of snapshot {snapshot_id}" if snapshot_id else "no snapshot yet: holders unknown")
    document = [{**row, "grants": list(s.grants)} for row, s in zip(rows, summaries, strict=True)]
    emit(rows, fmt, ["name", "grants", "holders", "managed", "description", "dn"], document=document)


@role_group.command("show")
@click.argument("name")
@format_option()
@pass_app
def show(app, name, fmt) -> None:
    """A role's grants, holders and the history of its definition.

    \b
    Example:
      rbac-migrate role show role-finance-analyst
    """
    detail = roles_query.role_show(connections.store_for(app.settings), name)
    s = detail.summary
    rows = [{"what": "grant", "name": g, "detail": ""} for g in s.grants]
    rows += [{"what": "holder", "name": h, "detail": ""} for h in s.holders or ()]
    rows += [
        {
            "what": "history",
            "name": e.action,
            "detail": f"{e.at:%Y-%m-%d %H:%M} {e.operator}{' ' + e.ticket if e.ticket else ''}: {_event(e.details)}",
        }
        for e in detail.history
    ]
    rows += [{"what": "drift", "name": d, "detail": "snapshot differs from the catalogue"} for d in detail.drift]
    if detail.rule:
        rows.insert(0, {"what": "rule", "name": rule_text(detail.rule), "detail": "users it matches get the role"})
    holders = "not in the snapshot" if s.holder_count is None else s.holder_count
    state = "deleted" if s.deleted else "managed" if s.managed else "not managed by rbac-migrate"
    note(f"{s.name} ({s.dn}): {len(s.grants)} grants, holders: {holders}, {state}")
    document = {
        "name": s.name,
        "dn": s.dn,
        "description": s.description,
        "managed": s.managed,
        "deleted": s.deleted,
        "snapshot": detail.snapshot_id,
        "grants": list(s.grants),
        "holders": None if s.holder_count is None else list(s.holders),
        "drift": detail.drift,
        "rule": dict(detail.rule) if detail.rule else None,
        "history": [
            {"at": e.at, "operator": e.operator, "action": e.action, "ticket": e.ticket, "details": e.details}
            for e in detail.history
        ],
    }
    emit(rows, fmt, ["what", "name", "detail"], document=document)


def _event(details: dict) -> str:
    parts = []
    for key, value in details.items():
        if value in (None, "", []):
            continue
        values = value if isinstance(value, list) else [value]
        shown = ", ".join(first_value(v) if "=" in str(v) else str(v) for v in values)
        parts.append(f"{key} {shown}")
    return "; ".join(parts)


@role_group.command("add-grant")
@click.argument("role")
@click.argument("grants", nargs=-1, required=True)
@plan_option
@write_options
@pass_app
def add_grant(app, role, grants, output, ticket, yes) -> None:
    """Nest ROLE into more grant groups; every holder gains that access (shown, then confirmed).

    \b
    Example:
      rbac-migrate role add-grant role-finance-analyst fin-reporting-read --ticket CHG-7
    """
    _change_grants(app, role, grants, output, ticket, yes, adding=True)


@role_group.command("remove-grant")
@click.argument("role")
@click.argument("grants", nargs=-1, required=True)
@plan_option
@write_options
@pass_app
def remove_grant(app, role, grants, output, ticket, yes) -> None:
    """Take ROLE out of grant groups; every holder loses that access (shown, then confirmed).

    \b
    Example:
      rbac-migrate role remove-grant role-finance-analyst fin-reporting-read --ticket CHG-8
    """
    _change_grants(app, role, grants, output, ticket, yes, adding=False)


def _change_grants(app, role, grants, output, ticket, yes, adding: bool) -> None:
    from ..roles import commands as roles_api

    store = connections.store_for(app.settings)
    writing(app, output, ticket)
    change = roles_api.role_add_grant if adding else roles_api.role_remove_grant
    outcome = change(app.settings, store, role, split_grants(grants), ticket, asker(yes), app.prompt, output)
    done = f"{role} now grants" if adding else f"{role} no longer grants"
    finished(outcome, output, f"{done} {', '.join(grants)}")


@role_group.command("delete")
@click.argument("role")
@plan_option
@write_options
@pass_app
def delete(app, role, output, ticket, yes) -> None:
    """Delete a role that nobody holds (out of its grant groups first).

    \b
    Example:
      rbac-migrate role delete role-unused --ticket CHG-9
    """
    from ..roles import commands as roles_api

    store = connections.store_for(app.settings)
    writing(app, output, ticket)
    outcome = roles_api.role_delete(app.settings, store, role, ticket, asker(yes), app.prompt, output)
    finished(outcome, output, f"deleted role {role}")


@role_group.command("candidates")
@click.argument("role")
@click.option("--max-missing", default=1, show_default=True, help="Near-misses lack at most this many grants.")
@click.option("--limit", default=50, show_default=True, help="Near-misses shown at most (0: all).")
@click.option("--snapshot", default="latest", help="Snapshot id (default: a fresh one, read first).")
@format_option()
@refresh_option
@pass_app
def candidates(app, role, max_missing, limit, snapshot, fmt, no_refresh) -> None:
    """Users safe to move onto ROLE (nobody gains access), best explained first; near-misses apart.

    \b
    Example:
      rbac-migrate role candidates role-finance-analyst --format csv
    """
    store = connections.store_for(app.settings)
    refreshed = refresh(app, store, no_refresh or snapshot != "latest")
    found = roles_query.candidates(store, role, max_missing, snapshot)
    result, graph = found.result, found.graph
    near = result.near[:limit] if limit else result.near
    shown = f" ({len(near)} shown)" if len(near) < len(result.near) else ""
    note(
        f"{found.role} (snapshot {found.snapshot_id}): {len(result.safe)} safe candidates, "
        f"{len(result.near)} near-misses{shown}, {result.holding} already hold it, "
        f"{result.disabled} disabled users left out"
    )
    safe = [
        {"user": found.users[c.user].name, "dn": found.users[c.user].dn, "explained": c.explained, "direct": c.direct}
        for c in result.safe
    ]
    misses = [
        {"user": found.users[n.user].name, "dn": found.users[n.user].dn, "lacks": sorted(map(graph.name, n.missing))}
        for n in near
    ]
    rows = [
        {"user": c["user"], "fit": "safe", "explains": f"{c['explained']} of {c['direct']} direct grants"} for c in safe
    ]
    rows += [{"user": m["user"], "fit": "near miss", "lacks": m["lacks"]} for m in misses]
    grants = sorted(graph.name(g) for g in result.role_grants if g in graph.groups)
    document = {"role": found.role, "snapshot": found.snapshot_id, "grants": grants, "candidates": safe}
    emit(rows, fmt, ["user", "fit", "explains", "lacks"], document={**document, "near_misses": misses})
    if snapshot == "latest":
        note(refreshed)


@role_group.command("mine")
@click.option("--exact", is_flag=True, help="The fewest roles that reproduce direct access exactly, not roles per job.")
@click.option("--from-pairs", "pairs", type=click.Path(dir_okay=False), help="Mine a 'user permission' file (exact).")
@click.option("--min-share", type=float, help="A job's role carries what this share of its people hold [0.75].")
@click.option("--min-job-size", type=int, help="Jobs of fewer people are not judged [4].")
@click.option("--baseline-share", type=float, help="Fold grants this share of users hold into one baseline role.")
@click.option("--min-holders", type=int, help="Fewest holders a role may have (--exact) [1].")
@click.option("--snapshot", default="latest", help="Snapshot id (default: latest).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the roles, for review, to FILE.")
@format_option()
@pass_app
def mine(app, exact, pairs, min_share, min_job_size, baseline_share, min_holders, snapshot, output, fmt) -> None:
    """Mine roles from current access: one per job (by peer attributes), or --exact.

    By default each job (the users sharing their peer-attribute values) gets one role: what a
    clear majority of its people hold. Personal extras, leftovers of an old job and rights some
    lack are listed as exceptions and stay as they are. --exact finds the fewest roles that
    reproduce everyone's direct access exactly.

    \b
    Example:
      rbac-migrate role mine --baseline-share 0.9 -o roles.json
      rbac-migrate role mine --exact --min-holders 3 --format json
    """
    from ..mining.jobs import DEFAULT_MIN_JOB_SIZE, DEFAULT_MIN_SHARE
    from ..mining.rolesfile import write_roles_file
    from . import mining as show

    if pairs and output:
        raise UsageError("-o writes grants as DNs from a snapshot; --from-pairs has permission names only")
    by_job = not (exact or pairs or not app.settings.peer_attributes)
    if by_job and min_holders is not None:
        raise UsageError("--min-holders applies to --exact mining; jobs use --min-job-size")
    if not by_job and (min_share is not None or min_job_size is not None):
        raise UsageError("--min-share and --min-job-size apply to mining by job, not --exact or --from-pairs")
    if pairs:
        found = roles_query.mine_pairs(pairs, 1 if min_holders is None else min_holders, baseline_share)
    elif not by_job:
        if not exact:
            note("no peer_attributes configured: mining the fewest exact roles instead of roles per job")
        store = connections.store_for(app.settings)
        found = roles_query.mine_snapshot(store, snapshot, 1 if min_holders is None else min_holders, baseline_share)
    else:
        store = connections.store_for(app.settings)
        share = DEFAULT_MIN_SHARE if min_share is None else min_share
        size = DEFAULT_MIN_JOB_SIZE if min_job_size is None else min_job_size
        found = roles_query.mine_jobs_snapshot(store, snapshot, share, size, baseline_share)
    if output:
        write_roles_file(output, found.roles_file())
    (show.show_jobs if by_job else show.show_exact)(found, fmt)
    if output:
        note(f"wrote {output}: review it, then 'rbac-migrate role create --from-file {output}'")


role_group.add_command(rule_group)
role_group.add_command(sync)


def register(cli: click.Group) -> None:
    cli.add_command(role_group)
