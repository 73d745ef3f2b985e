"""joiner propose | onboard."""

from __future__ import annotations

import click

from .. import connections
from ..roles import query as roles_query
from . import pass_app
from .refresh import refresh, refresh_option
from .render import emit, format_option, note, table
from .writes import asker, finished, plan_option, split_grants, write_options, writing


@click.group("joiner")
def joiner_group() -> None:
    """A new joiner: which role fits them, with evidence, and one command to give it."""


def _request_options(func):
    func = click.option(
        "--min-share",
        default=0.5,
        show_default=True,
        help="A grant is typical of the job when at least this share of peers hold it.",
    )(func)
    func = click.option(
        "--grant",
        "grants",
        multiple=True,
        metavar="G",
        help="Grant asked for (cn or DN); repeatable or comma-separated.",
    )(func)
    return click.option("--like", metavar="MODEL", help="Copy what this user was given (rare grants left out).")(func)


@joiner_group.command("propose")
@click.argument("user")
@_request_options
@click.option("--snapshot", default="latest", help="Snapshot id (default: a fresh one, read first).")
@format_option("table", "json", "csv")
@refresh_option
@pass_app
def propose(app, user, like, grants, min_share, snapshot, fmt, no_refresh) -> None:
    """Roles that fit USER, best first: an exact role, roles plus extras, or a new role; with evidence.

    Without --grant or --like, the access asked for is what most of the joiner's peers (same
    peer attributes) hold.

    \b
    Example:
      rbac-migrate joiner propose jsmith --like mjones
    """
    store = connections.lean_store_for(app.settings)
    refreshed = refresh(app, store, no_refresh or snapshot != "latest")
    found = roles_query.propose(app.settings, store, user, like, split_grants(grants), min_share, snapshot, app.prompt)
    document = _document(found)
    note(f"{found.joiner.name} ({document['peer_group']}): {document['peers']} peers, snapshot {found.snapshot_id}")
    for row in document["proposals"]:
        if row["already_held"]:
            note(f"{found.joiner.name} already holds {', '.join(row['roles'])} (proposal {row['number']})")
    document["kept_as"] = roles_query.keep_proposals(store, found)
    note(f"'rbac-migrate joiner onboard {user} --proposal N' carries out proposal N exactly as shown here")
    if fmt == "json":
        emit([], "json", document=document)
    elif fmt == "csv":
        rows = [{**row, "role": row["new_role"] or ", ".join(row["roles"])} for row in document["proposals"]]
        emit(rows, "csv", ["number", "kind", "role", "grants", "extras", "gives", "already_held", "movable"])
    else:
        _tables(document["proposals"], document["evidence"], document["not_copied"])
    if snapshot == "latest":
        note(refreshed)


def _document(found) -> dict:
    result, name = found.result, found.graph.name
    request = result.request
    proposals = [
        {
            "number": p.number,
            "kind": p.kind,
            "roles": [r.name for r in p.roles],
            "new_role": p.new_role,
            "grants": sorted(name(g) for g in p.grants),
            "extras": sorted(name(g) for g in p.extras),
            "gives": _gives(found, p),
            "already_held": result.holds(p),
            "movable": p.movable,
        }
        for p in result.proposals
    ]
    return {
        "snapshot": found.snapshot_id,
        "user": {"name": found.joiner.name, "dn": found.joiner.dn},
        "peer_group": request.peer_label,
        "peers": len(request.peers - {request.joiner}),
        "proposals": proposals,
        "evidence": [_evidence(result, e, name) for e in (*result.evidence, *result.nested)],
        "not_copied": [_evidence(result, e, name) for e in result.not_copied],
    }


def _gives(found, proposal) -> list[str]:
    """Every grant the proposal gives, nesting included."""
    graph = found.graph
    grants = set(proposal.extras) | {g for r in proposal.roles for g in r.grants} or set(proposal.grants)
    return sorted(graph.name(g) for g in graph.grants_given(g for g in grants if g in graph.groups))


def _evidence(result, evidence, name) -> dict:
    return {
        "grant": name(evidence.grant),
        "source": evidence.source,
        "peers_holding": evidence.holding,
        "peers": evidence.peers,
        "evidence": result.phrase(evidence),
    }


def _tables(proposals: list[dict], evidence: list[dict], not_copied: list[dict]) -> None:
    for row in proposals:
        row["role"] = row["new_role"] or ", ".join(row["roles"])
        row["could move later"] = row["movable"]
        row["note"] = "already held" if row["already_held"] else ""
    table(proposals, ["number", "kind", "role", "extras", "could move later", "note"])
    click.echo("\nevidence:")
    table(evidence, ["grant", "source", "evidence"])
    if not_copied:
        click.echo("\nnot copied from the model (few peers hold them):")
        table(not_copied, ["grant", "evidence"])


@joiner_group.command("onboard")
@click.argument("user")
@click.option("--role", metavar="R", help="Give this existing role.")
@click.option("--new-role", metavar="NAME", help="Create this role with the --grant grants, then give it.")
@click.option("--proposal", type=int, metavar="N", help="Carry out proposal N of 'joiner propose'.")
@_request_options
@click.option("--confirm-mismatch", is_flag=True, help="Give the role though its holders share no peer attribute.")
@plan_option
@write_options
@pass_app
def onboard(
    app, user, role, new_role, proposal, like, grants, min_share, confirm_mismatch, output, ticket, yes
) -> None:
    """Give USER a role, creating it if needed; running it again changes nothing.

    \b
    Example:
      rbac-migrate joiner onboard jsmith --proposal 1 --ticket HR-2231
    """
    from ..roles import commands as roles_api

    writing(app, output, ticket)
    store = connections.store_for(app.settings)
    outcome = roles_api.onboard(
        app.settings,
        store,
        user,
        role=role,
        new_role=new_role,
        grants=split_grants(grants),
        proposal=proposal,
        like=like,
        min_share=min_share,
        ticket=ticket,
        ask=asker(yes),
        prompt=app.prompt,
        confirm_mismatch=confirm_mismatch,
        output=output,
    )
    finished(outcome, output, f"onboarded {user}: " + "; ".join(outcome.plan.lines))


def register(cli: click.Group) -> None:
    cli.add_command(joiner_group)
