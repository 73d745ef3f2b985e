"""role rule set | remove, role sync: assignment rules (birthright roles) and the batches they plan."""

from __future__ import annotations

import click

from .. import connections
from ..dn import first_value
from ..errors import UsageError
from . import pass_app
from .refresh import refresh, refresh_option
from .render import emit, format_option, note
from .writes import asker, plan_option, report, write_options, writing


def rule_text(rule) -> str:
    return " ".join(f"{name}={value}" for name, value in rule.items())


@click.group("rule")
def rule_group() -> None:
    """Assignment rules: the peer-attribute values that make a user a natural holder of a role."""


@rule_group.command("set")
@click.argument("role")
@click.argument("pairs", nargs=-1, required=True, metavar="ATTRIBUTE=VALUE...")
@pass_app
def rule_set(app, role, pairs) -> None:
    """Give ROLE an assignment rule on peer attributes (replacing any earlier one); 'role sync' applies it.

    \b
    Example:
      rbac-migrate role rule set role-finance-accountant departmentNumber=Finance title=Accountant
    """
    from ..audit import new_record
    from ..roles import bulk

    store = connections.store_for(app.settings)
    role_dn, rule = bulk.set_rule(app.settings, store, role, pairs)
    store.audit(new_record("role.rule", role_dn, None, rule=rule))
    note(
        f"{first_value(role_dn)}: users with {rule_text(rule)} get it with "
        f"'rbac-migrate role sync {first_value(role_dn)}'"
    )


@rule_group.command("remove")
@click.argument("role")
@pass_app
def rule_remove(app, role) -> None:
    """Take ROLE's assignment rule away; its holders keep the role.

    \b
    Example:
      rbac-migrate role rule remove role-finance-accountant
    """
    from ..audit import new_record
    from ..roles import bulk

    store = connections.store_for(app.settings)
    role_dn = bulk.role_in_store(store, role)
    if not store.roles.remove_rule(role_dn):
        raise UsageError(f"role {first_value(role_dn)} has no assignment rule")
    store.audit(new_record("role.rule.remove", role_dn, None))
    note(f"{first_value(role_dn)} has no assignment rule now")


@click.command("sync")
@click.argument("role")
@click.option("--batch-size", type=click.IntRange(1), help="Add at most N users this time [max_batch_size].")
@plan_option
@write_options
@format_option()
@refresh_option
@pass_app
def sync(app, role, batch_size, output, ticket, yes, fmt, no_refresh) -> None:
    """Give ROLE to the next users its rule matches; list holders who no longer match (movers), unchanged.

    \b
    Example:
      rbac-migrate role sync role-finance-accountant --batch-size 5 -o sync.json
      rbac-migrate role sync role-finance-accountant --batch-size 5 --ticket CHG-12 --yes
    """
    from ..roles import bulk

    writing(app, output, ticket)
    store = connections.store_for(app.settings)
    refresh(app, store, no_refresh)
    found, outcome = bulk.sync(app.settings, store, role, batch_size, output, ticket, asker(yes), app.prompt)
    name = first_value(found.plan.role_dn)
    rows = [{"user": u.name, "change": "add", "why": rule_text(found.rule)} for u in found.adding]
    rows += [{"user": u.name, "change": "review: no longer matches", "why": rule_text(u.attrs)} for u in found.movers]
    rows += [{"user": s.split(":", 1)[0], "change": "left alone", "why": s.split(": ", 1)[1]} for s in found.skipped]
    emit(rows, fmt, ["user", "change", "why"])
    note(
        f"{name} ({rule_text(found.rule)}): {len(found.adding)} to add, {found.waiting} left for later batches, "
        f"{len(found.movers)} movers to review"
    )
    if outcome is None:
        note("nothing to do: every user the rule matches holds the role")
    elif output:
        note(f"wrote {output}: review it, then 'rbac-migrate apply {output}'")
    else:
        report(outcome, f"gave {name} to {len(found.adding)} users")
