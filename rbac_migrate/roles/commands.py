"""Role commands that write: create, add-grant, remove-grant, delete, and joiner onboard.

Each command reads the directory as it is now, builds a plan of value-level steps, and hands
it to ``role_plans.run``, which asks, records the rollback point, writes, and records the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import dn as dnutil
from ..config import Settings
from ..connections import Prompt, directory_for
from ..errors import UsageError
from ..model import DELETED, GRANT, ROLE, RoleUpdate
from ..role_plans import Ask, GroupStep, Outcome, RoleCommandError, RolePlan, run
from ..store import Store
from . import live
from .catalogue import check_role_name


def role_create(
    settings: Settings,
    store: Store,
    name: str,
    grants: Sequence[str] = (),
    description: str | None = None,
    from_user: str | None = None,
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> Outcome:
    """Create a role group under the role base and nest it into each of its grant groups."""
    check_role_name(name)
    if bool(grants) == bool(from_user):
        raise UsageError("give the role's grants with --grant G (repeatable), or --from-user USER")
    settings.require("url", "grant_base", "role_base", *(["user_base"] if from_user else []))
    with directory_for(settings, prompt) as directory:
        existing = live.existing_role(directory, settings, name)
        if existing is not None:
            raise RoleCommandError(f"role {name} already exists ({existing})")
        role_dn = live.role_dn_for(settings, name)
        if from_user:
            user = live.find_user(directory, settings, from_user)
            grant_dns = live.assigned_grants(directory, settings, user.dn)
        else:
            grant_dns = live.find_groups(directory, settings, grants, GRANT)
        if not grant_dns:
            raise RoleCommandError(f"{from_user} holds no grants to copy into role {name}")
        plan = RolePlan("role create", role_dn, f"Create role {name}?")
        _plan_new_role(settings, plan, name, grant_dns, description, [])
        return run(settings, store, directory, plan, ticket, ask)


def _plan_new_role(
    settings: Settings, plan: RolePlan, name: str, grant_dns: list[str], description: str | None, holders: list[str]
) -> None:
    role_dn = live.role_dn_for(settings, name)
    attrs = live.new_group_attributes(settings, name, description, holders)
    plan.steps.append(GroupStep(role_dn, create=attrs))
    plan.steps += [GroupStep(grant, add=[role_dn]) for grant in grant_dns]
    plan.lines.append(f"create role {name} ({role_dn})")
    plan.lines.append(f"nest it into {len(grant_dns)} grant groups: {live.names(grant_dns)}")
    events = [("created", {"grants": grant_dns, "description": description})]
    events += [("holder added", {"user": holder}) for holder in holders]
    plan.lines += [f"add {live.names([holder])} as its holder" for holder in holders]
    plan.updates.append(
        RoleUpdate(name, role_dn, tuple(grant_dns), description=description or "", events=tuple(events))
    )


def role_add_grant(
    settings: Settings,
    store: Store,
    role: str,
    grants: Sequence[str],
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> Outcome:
    """Nest a role into more grant groups: every holder gains that access."""
    return _change_grants(settings, store, role, grants, True, ticket, ask, prompt)


def role_remove_grant(
    settings: Settings,
    store: Store,
    role: str,
    grants: Sequence[str],
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> Outcome:
    """Take a role out of grant groups: every holder loses that access unless held otherwise."""
    return _change_grants(settings, store, role, grants, False, ticket, ask, prompt)


def _change_grants(settings, store, role, grants, adding, ticket, ask, prompt) -> Outcome:
    if not grants:
        raise UsageError("name at least one grant")
    settings.require("url", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        role_dn = live.find_group(directory, settings, role, ROLE)
        name = dnutil.first_value(role_dn)
        current = live.groups_holding(directory, settings, role_dn, GRANT)
        asked = live.find_groups(directory, settings, grants, GRANT)
        held = {dnutil.normalize(g) for g in current}
        todo = [g for g in asked if (dnutil.normalize(g) in held) != adding]
        holders = live.holders(live.member_values(directory, settings, role_dn))
        verb, action = ("add", "role add-grant") if adding else ("remove", "role remove-grant")
        plan = RolePlan(
            action, role_dn, f"{verb.capitalize()} {len(todo)} grants for {len(holders)} holders of {name}?"
        )
        for grant in todo:
            plan.steps.append(
                GroupStep(grant, add=[role_dn]) if adding else _leave(settings, directory, grant, role_dn)
            )
        effect = "gain it" if adding else "lose it unless they hold it another way"
        plan.lines.append(f"{name}: {verb} {live.names(todo) or 'nothing'}")
        plan.lines.append(f"holders who will {effect} ({len(holders)}): {live.names(holders) or 'none'}")
        gone = {dnutil.normalize(g) for g in todo}
        after = [*current, *todo] if adding else [g for g in current if dnutil.normalize(g) not in gone]
        event = ("grant added" if adding else "grant removed", {"grants": todo, "holders": len(holders)})
        plan.updates.append(RoleUpdate(name, role_dn, tuple(after), events=(event,)))
        return run(settings, store, directory, plan, ticket, ask)


def _leave(settings: Settings, directory, group_dn: str, value: str) -> GroupStep:
    """Delete one member value; if it is the last, put the placeholder in the same atomic modify."""
    remaining = [v for v in live.member_values(directory, settings, group_dn) or () if not live.contains([v], value)]
    needs_placeholder = settings.flavour != "ad" and not remaining
    return GroupStep(group_dn, add=[live.PLACEHOLDER] if needs_placeholder else [], delete=[value])


def role_delete(
    settings: Settings,
    store: Store,
    role: str,
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> Outcome:
    """Delete a role nobody holds: out of its grant groups first, then the entry."""
    settings.require("url", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        role_dn = live.find_group(directory, settings, role, ROLE)
        name = dnutil.first_value(role_dn)
        holders = live.holders(live.member_values(directory, settings, role_dn))
        if holders:
            raise RoleCommandError(
                f"role {name} still has {len(holders)} holders ({live.names(holders, 5)}): "
                "only a role nobody holds can be deleted"
            )
        nested_in = live.groups_holding(directory, settings, role_dn, GRANT, ROLE)
        plan = RolePlan("role delete", role_dn, f"Delete role {name}?")
        plan.steps = [_leave(settings, directory, group, role_dn) for group in nested_in]
        plan.steps.append(GroupStep(role_dn, remove=True))
        plan.lines.append(f"take {name} out of {live.names(nested_in) or 'no groups'}, then delete {role_dn}")
        event = ("deleted", {"grants": nested_in})
        plan.updates.append(RoleUpdate(name, role_dn, (), state=DELETED, events=(event,)))
        return run(settings, store, directory, plan, ticket, ask)


@dataclass(frozen=True)
class OnboardTarget:
    """What a joiner gets: existing roles, a new role with its grants, and direct extras (DNs)."""

    roles: tuple[str, ...] = ()
    new_role: str | None = None
    new_grants: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()


def onboard(
    settings: Settings,
    store: Store,
    user: str,
    role: str | None = None,
    new_role: str | None = None,
    grants: Sequence[str] = (),
    proposal: int | None = None,
    like: str | None = None,
    min_share: float = 0.5,
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> Outcome:
    """Give a joiner a role (creating it if needed); running it again changes nothing."""
    if sum(x is not None for x in (role, new_role, proposal)) != 1:
        raise UsageError("give exactly one of --role R, --new-role NAME or --proposal N")
    if new_role is not None and not grants:
        raise UsageError("--new-role needs the role's grants: --grant G (repeatable)")
    if role is not None and (grants or like):
        raise UsageError("--grant and --like go with --new-role or --proposal, not --role")
    settings.require("url", "user_base", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        joiner = live.find_user(directory, settings, user)
        if not joiner.enabled:
            raise RoleCommandError(f"user {joiner.name} is disabled: only active accounts are onboarded")
        if live.is_protected(settings, joiner.dn, joiner.name):
            raise RoleCommandError(f"user {joiner.name} is a protected account: rbac-migrate never changes it")
        if role is not None:
            target = OnboardTarget(roles=(live.find_group(directory, settings, role, ROLE),))
        elif new_role is not None:
            target = OnboardTarget(new_role=check_role_name(new_role), new_grants=tuple(grants))
        else:
            target = _from_proposal(settings, store, joiner, proposal, like, grants, min_share)
        plan = _plan_onboard(settings, directory, joiner, target)
        return run(settings, store, directory, plan, ticket, ask)


def _from_proposal(settings, store, joiner, number, like, grants, min_share) -> OnboardTarget:
    from ..proposals import NEW
    from .query import propose

    found = propose(settings, store, joiner, like=like, grants=grants, min_share=min_share)
    chosen = found.result.get(number)
    dn_of = found.graph.groups
    if chosen.kind == NEW:
        return OnboardTarget(new_role=chosen.new_role, new_grants=tuple(dn_of[g].dn for g in sorted(chosen.grants)))
    return OnboardTarget(roles=tuple(r.dn for r in chosen.roles), extras=tuple(dn_of[g].dn for g in chosen.extras))


def _plan_onboard(settings: Settings, directory, joiner: live.LiveUser, target: OnboardTarget) -> RolePlan:
    roles = list(target.roles)
    new_dn = None
    if target.new_role is not None:
        grant_dns = live.find_groups(directory, settings, target.new_grants, GRANT)
        existing = live.existing_role(directory, settings, target.new_role)
        if existing is None:
            new_dn = live.role_dn_for(settings, target.new_role)
        else:
            _same_grants(settings, directory, target.new_role, existing, grant_dns)
            roles.append(existing)
    plan = RolePlan("joiner onboard", new_dn or roles[0], f"Onboard {joiner.name}?")
    if new_dn is not None:
        _plan_new_role(settings, plan, target.new_role, grant_dns, None, [joiner.dn])
    for role_dn in roles:
        name = dnutil.first_value(role_dn)
        if live.contains(live.member_values(directory, settings, role_dn), joiner.dn):
            plan.lines.append(f"{joiner.name} already holds {name}")
            continue
        plan.steps.append(GroupStep(role_dn, add=[joiner.dn]))
        plan.lines.append(f"add {joiner.name} to role {name}")
        current = tuple(live.groups_holding(directory, settings, role_dn, GRANT))
        plan.updates.append(RoleUpdate(name, role_dn, current, events=(("holder added", {"user": joiner.dn}),)))
    for grant in target.extras:
        if not live.contains(live.member_values(directory, settings, grant), joiner.dn):
            plan.steps.append(GroupStep(grant, add=[joiner.dn]))
            plan.lines.append(f"add {joiner.name} to grant {dnutil.first_value(grant)} directly")
    return plan


def _same_grants(settings: Settings, directory, name: str, role_dn: str, grant_dns: list[str]) -> None:
    current = live.groups_holding(directory, settings, role_dn, GRANT)
    if {dnutil.normalize(g) for g in current} != {dnutil.normalize(g) for g in grant_dns}:
        raise RoleCommandError(
            f"role {name} already exists with other grants ({live.names(current)}): "
            f"use --role {name}, or choose another name"
        )
