"""Role commands that write: create, add-grant, remove-grant, delete, and joiner onboard.

Each command reads the directory as it is now and builds one change set; the write engine
(migration) checks its guard rails, writes the rollback point, writes, verifies every holder's
access and audits it, like any other batch. ``rbac-migrate rollback N`` undoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import changeset as cs
from .. import dn as dnutil
from ..config import Settings
from ..connections import Prompt, directory_for
from ..errors import RbacMigrateError, UsageError
from ..model import ACTIVE, DELETED, GRANT, ROLE, Batch, RoleUpdate
from ..store import Store
from . import live
from .catalogue import check_role_name


class RoleCommandError(RbacMigrateError):
    """A role command cannot go ahead as asked."""


@dataclass
class RolePlan:
    """What a command will do, shown before it asks, and what the catalogue records after."""

    action: str
    role_dn: str
    question: str
    changes: cs.ChangeSet
    lines: list[str] = field(default_factory=list)
    updates: list[RoleUpdate] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.changes.empty


@dataclass(frozen=True)
class Outcome:
    plan: RolePlan
    batch_id: int | None  # None when there was nothing to do


Ask = Callable[[RolePlan], None]


def _run(
    settings: Settings,
    store: Store,
    directory,
    plan: RolePlan,
    ticket: str | None,
    ask: Ask | None,
    output: str | None = None,
) -> Outcome:
    """Ask, then hand the change set to the engine; update the catalogue once it is verified.

    With ``output``, write the change set as a plan file instead, for review (and, where the store
    requires it, a second operator's approval) before ``rbac-migrate apply FILE``.
    """
    from ..migration.batches import check, execute, operator_lock
    from ..migration.engine import Engine

    if output is not None:
        return _write(store, plan, output)
    if plan.empty:
        return Outcome(plan, None)
    with operator_lock(store):  # refuse before asking, while another operator writes
        check(Engine(store, directory, settings), plan.changes, "run the command again")
    if ask is not None:
        ask(plan)
    batch = execute(
        store, directory, settings, plan.changes, ticket, lambda _text: None, replan="run the command again"
    )
    store.roles.record(plan.updates, ticket, batch.id)
    return Outcome(plan, batch.id)


class _Builder:
    """Live look-ups shared by the role commands, and the pieces of their change sets."""

    def __init__(self, directory, settings: Settings):
        from ..migration.live import LiveView

        self.directory = directory
        self.settings = settings
        self.view = LiveView(directory, settings)

    def ref(self, dn: str) -> cs.Ref:
        return cs.Ref(dn, self.view.uuid_of(dn), dnutil.first_value(dn))

    def holders(self, role_dn: str) -> list[str]:
        values = live.holders(live.member_values(self.directory, self.settings, role_dn))
        return [v for v in values if live.kind_of(self.settings, v) is None]

    def subjects(self, users: Sequence[str], edits: list[cs.Edit]) -> list[cs.Subject]:
        """Each user's access before, and as it will be once the edits are written."""
        found = []
        for user in users:
            ref = self.ref(user)
            found.append(cs.Subject(ref, self.view.access(user), self.view.expected_access(user, edits)))
        return found

    def leave(self, group_dn: str, value: cs.Ref) -> list[cs.Edit]:
        """Delete one member value; if it is the last, keep the group open with the placeholder."""
        remaining = [
            v
            for v in live.member_values(self.directory, self.settings, group_dn) or ()
            if not live.contains([v], value.dn)
        ]
        group = self.ref(group_dn)
        edits = [cs.Edit(cs.DELETE, group, value)]
        if self.settings.flavour != "ad" and not remaining:
            edits.insert(0, cs.Edit(cs.ADD, group, cs.Ref(live.PLACEHOLDER, None)))
        return edits

    def new_role(self, name: str, grant_dns: list[str], description: str | None, holders: list[str]) -> list[cs.Edit]:
        role_dn = live.role_dn_for(self.settings, name)
        attrs = live.new_group_attributes(self.settings, name, description, holders)
        role = cs.Ref(role_dn, None, name)
        edits = [cs.Edit(cs.CREATE, role, attributes=tuple((k, tuple(v)) for k, v in attrs.items()))]
        return edits + [cs.Edit(cs.ADD, self.ref(grant), role) for grant in grant_dns]

    def change_set(self, kind: str, title: str, intent: dict, role_dn: str, edits, users) -> cs.ChangeSet:
        unit = cs.Unit(dnutil.first_value(role_dn), list(edits), self.subjects(users, list(edits)))
        role = cs.Ref(role_dn, self.view.uuid_of(role_dn), dnutil.first_value(role_dn))
        return cs.ChangeSet(kind, title, intent, [unit] if unit.edits else [], role, self.directory.target)


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
    output: str | None = None,
) -> Outcome:
    """Create a role group under the role base and nest it into each of its grant groups (or, with
    ``output``, write that as a plan file)."""
    check_role_name(name)
    if bool(grants) == bool(from_user):
        raise UsageError("give the role's grants with --grant G (repeatable), or --from-user USER")
    settings.require("url", "grant_base", "role_base", *(["user_base"] if from_user else []))
    with directory_for(settings, prompt) as directory:
        existing = live.existing_role(directory, settings, name)
        if existing is not None:
            raise RoleCommandError(f"role {name} already exists ({existing})")
        if from_user:
            user = live.find_user(directory, settings, from_user)
            grant_dns = live.assigned_grants(directory, settings, user.dn)
        else:
            grant_dns = live.find_groups(directory, settings, grants, GRANT)
        if not grant_dns:
            raise RoleCommandError(f"{from_user} holds no grants to copy into role {name}")
        build = _Builder(directory, settings)
        plan = _create_plan(build, name, grant_dns, description)
        return _run(settings, store, directory, plan, ticket, ask, output)


def _create_plan(build: _Builder, name: str, grant_dns: list[str], description: str | None) -> RolePlan:
    role_dn = live.role_dn_for(build.settings, name)
    intent = {"action": "create", "name": name, "grants": grant_dns, "description": description}
    changes = build.change_set(
        "role-create", f"create role {name}", intent, role_dn, build.new_role(name, grant_dns, description, []), []
    )
    plan = RolePlan("role create", role_dn, f"Create role {name}?", changes)
    plan.lines.append(f"create role {name} ({role_dn})")
    plan.lines.append(f"nest it into {len(grant_dns)} grant groups: {live.names(grant_dns)}")
    events = (("created", {"grants": grant_dns, "description": description}),)
    plan.updates.append(RoleUpdate(name, role_dn, tuple(grant_dns), description=description or "", events=events))
    return plan


def role_add_grant(
    settings: Settings,
    store: Store,
    role: str,
    grants: Sequence[str],
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
    output: str | None = None,
) -> Outcome:
    """Nest a role into more grant groups: every holder gains that access."""
    return _change_grants(settings, store, role, grants, True, ticket, ask, prompt, output)


def role_remove_grant(
    settings: Settings,
    store: Store,
    role: str,
    grants: Sequence[str],
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
    output: str | None = None,
) -> Outcome:
    """Take a role out of grant groups: every holder loses that access unless held otherwise."""
    return _change_grants(settings, store, role, grants, False, ticket, ask, prompt, output)


def _change_grants(settings, store, role, grants, adding, ticket, ask, prompt, output) -> Outcome:
    if not grants:
        raise UsageError("name at least one grant")
    settings.require("url", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        role_dn = live.find_group(directory, settings, role, ROLE)
        asked = live.find_groups(directory, settings, grants, GRANT)
        plan = _grants_plan(_Builder(directory, settings), role_dn, asked, adding)
        return _run(settings, store, directory, plan, ticket, ask, output)


def _grants_plan(build: _Builder, role_dn: str, asked: list[str], adding: bool) -> RolePlan:
    name = dnutil.first_value(role_dn)
    current = live.groups_holding(build.directory, build.settings, role_dn, GRANT)
    held = {dnutil.normalize(g) for g in current}
    todo = [g for g in asked if (dnutil.normalize(g) in held) != adding]
    holders = build.holders(role_dn)
    role = build.ref(role_dn)
    edits: list[cs.Edit] = []
    for grant in todo:
        edits += [cs.Edit(cs.ADD, build.ref(grant), role)] if adding else build.leave(grant, role)
    verb, kind = ("add", "role-add-grant") if adding else ("remove", "role-remove-grant")
    intent = {"action": kind, "role": role_dn, "grants": asked}
    changes = build.change_set(kind, f"{verb} {len(todo)} grants of {name}", intent, role_dn, edits, holders)
    plan = RolePlan(
        kind.replace("-", " ", 1),
        role_dn,
        f"{verb.capitalize()} {len(todo)} grants for {len(holders)} holders of {name}?",
        changes,
    )
    effect = "gain it" if adding else "lose it unless they hold it another way"
    plan.lines.append(f"{name}: {verb} {live.names(todo) or 'nothing'}")
    plan.lines.append(f"holders who will {effect} ({len(holders)}): {live.names(holders) or 'none'}")
    gone = {dnutil.normalize(g) for g in todo}
    after = [*current, *todo] if adding else [g for g in current if dnutil.normalize(g) not in gone]
    event = ("grant added" if adding else "grant removed", {"grants": todo, "holders": len(holders)})
    plan.updates.append(RoleUpdate(name, role_dn, tuple(after), events=(event,)))
    return plan


def role_delete(
    settings: Settings,
    store: Store,
    role: str,
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
    output: str | None = None,
) -> Outcome:
    """Delete a role nobody holds: out of its grant groups first, then the entry."""
    settings.require("url", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        role_dn = live.find_group(directory, settings, role, ROLE)
        plan = _delete_plan(_Builder(directory, settings), role_dn)
        return _run(settings, store, directory, plan, ticket, ask, output)


def _delete_plan(build: _Builder, role_dn: str) -> RolePlan:
    name = dnutil.first_value(role_dn)
    holders = build.holders(role_dn)
    if holders:
        raise RoleCommandError(
            f"role {name} still has {len(holders)} holders ({live.names(holders, 5)}): "
            "only a role nobody holds can be deleted"
        )
    nested_in = live.groups_holding(build.directory, build.settings, role_dn, GRANT, ROLE)
    role = build.ref(role_dn)
    edits: list[cs.Edit] = []
    for group in nested_in:
        edits += build.leave(group, role)
    attrs = build.directory.read_entry(role_dn, ["objectClass", "cn", "description", build.settings.member_attribute])
    kept = tuple((k if k != "objectclass" else "objectClass", tuple(v)) for k, v in (attrs or {}).items())
    edits.append(cs.Edit(cs.REMOVE, role, attributes=kept))
    intent = {"action": "delete", "role": role_dn}
    changes = build.change_set("role-delete", f"delete role {name}", intent, role_dn, edits, [])
    plan = RolePlan("role delete", role_dn, f"Delete role {name}?", changes)
    plan.lines.append(f"take {name} out of {live.names(nested_in) or 'no groups'}, then delete {role_dn}")
    plan.updates.append(RoleUpdate(name, role_dn, (), state=DELETED, events=(("deleted", {"grants": nested_in}),)))
    return plan


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
    confirm_mismatch: bool = False,
    output: str | None = None,
) -> Outcome:
    """Give a joiner a role (creating it if needed); running it again changes nothing.

    ``proposal`` carries out proposal N as 'joiner propose' last showed it for this user; with
    ``output`` the change set is written as a plan file instead.
    """
    from .onboarding import check_peers, stored_target

    if sum(x is not None for x in (role, new_role, proposal)) != 1:
        raise UsageError("give exactly one of --role R, --new-role NAME or --proposal N")
    if new_role is not None and not grants:
        raise UsageError("--new-role needs the role's grants: --grant G (repeatable)")
    if role is not None and (grants or like):
        raise UsageError("--grant and --like go with --new-role or --proposal, not --role")
    if proposal is not None and (grants or like):
        raise UsageError("--proposal N carries out what 'joiner propose' showed: give --grant and --like to propose")
    settings.require("url", "user_base", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        joiner = live.find_user(directory, settings, user)
        if not joiner.enabled:
            raise RoleCommandError(f"user {joiner.name} is disabled: only active accounts are onboarded")
        build = _Builder(directory, settings)
        if role is not None:
            target = OnboardTarget(roles=(live.find_group(directory, settings, role, ROLE),))
        elif new_role is not None:
            target = OnboardTarget(new_role=check_role_name(new_role), new_grants=tuple(grants))
        else:
            target = stored_target(store, build.view, joiner, proposal)
        if not confirm_mismatch:
            for role_dn in target.roles:
                check_peers(build, joiner, role_dn)
        plan = _onboard_plan(build, joiner, target)
        return _run(settings, store, directory, plan, ticket, ask, output)


def _onboard_plan(build: _Builder, joiner: live.LiveUser, target: OnboardTarget) -> RolePlan:
    settings, directory = build.settings, build.directory
    roles = list(target.roles)
    edits: list[cs.Edit] = []
    lines: list[str] = []
    updates: list[RoleUpdate] = []
    member = build.ref(joiner.dn)
    new_dn = None
    if target.new_role is not None:
        grant_dns = live.find_groups(directory, settings, target.new_grants, GRANT)
        existing = live.existing_role(directory, settings, target.new_role)
        if existing is None:
            new_dn = live.role_dn_for(settings, target.new_role)
            edits += build.new_role(target.new_role, grant_dns, None, [joiner.dn])
            lines += [f"create role {target.new_role} ({new_dn})", f"nest it into {live.names(grant_dns)}"]
            lines.append(f"add {joiner.name} as its holder")
            events = (("created", {"grants": grant_dns}), ("holder added", {"user": joiner.dn}))
            updates.append(RoleUpdate(target.new_role, new_dn, tuple(grant_dns), description="", events=events))
        else:
            _same_grants(settings, directory, target.new_role, existing, grant_dns)
            roles.append(existing)
    for role_dn in roles:
        name = dnutil.first_value(role_dn)
        if live.contains(live.member_values(directory, settings, role_dn), joiner.dn):
            lines.append(f"{joiner.name} already holds {name}")
            continue
        edits.append(cs.Edit(cs.ADD, build.ref(role_dn), member))
        lines.append(f"add {joiner.name} to role {name}")
        current = tuple(live.groups_holding(directory, settings, role_dn, GRANT))
        updates.append(RoleUpdate(name, role_dn, current, events=(("holder added", {"user": joiner.dn}),)))
    for grant in target.extras:
        if not live.contains(live.member_values(directory, settings, grant), joiner.dn):
            edits.append(cs.Edit(cs.ADD, build.ref(grant), member))
            lines.append(f"add {joiner.name} to grant {dnutil.first_value(grant)} directly")
    role_dn = new_dn or (roles[0] if roles else joiner.dn)
    intent = {
        "action": "onboard",
        "user": joiner.dn,
        "roles": list(target.roles),
        "new_role": target.new_role,
        "new_grants": list(target.new_grants),
        "extras": list(target.extras),
    }
    changes = build.change_set("onboard", f"onboard {joiner.name}", intent, role_dn, edits, [joiner.dn])
    changes.units[:] = [_relabel(u, joiner.name) for u in changes.units]
    plan = RolePlan("joiner onboard", role_dn, f"Onboard {joiner.name}?", changes, lines, updates)
    return plan


def _write(store: Store, plan: RolePlan, output: str) -> Outcome:
    from ..migration import write_plan_file

    if plan.empty:
        raise RoleCommandError("nothing to do: " + ("; ".join(plan.lines) or "the directory is already as asked"))
    write_plan_file(store, plan.changes, output)
    return Outcome(plan, None)


def _relabel(unit: cs.Unit, label: str) -> cs.Unit:
    unit.label = label
    return unit


def _same_grants(settings: Settings, directory, name: str, role_dn: str, grant_dns: list[str]) -> None:
    current = live.groups_holding(directory, settings, role_dn, GRANT)
    if {dnutil.normalize(g) for g in current} != {dnutil.normalize(g) for g in grant_dns}:
        raise RoleCommandError(
            f"role {name} already exists with other grants ({live.names(current)}): "
            f"use --role {name}, or choose another name"
        )


def rebuild(settings: Settings, view, changes: cs.ChangeSet) -> cs.ChangeSet:
    """A role change set from a file, rebuilt from its intent against the directory now."""
    build = _Builder(view.directory, settings)
    build.view = view
    wanted = changes.intent
    action = wanted.get("action")
    if action == "create" and isinstance(wanted.get("name"), str) and isinstance(wanted.get("grants"), list):
        return _create_plan(
            build, check_role_name(wanted["name"]), [str(g) for g in wanted["grants"]], wanted.get("description")
        ).changes
    role = wanted.get("role")
    if (
        action in ("role-add-grant", "role-remove-grant")
        and isinstance(role, str)
        and isinstance(wanted.get("grants"), list)
    ):
        # Named again as the command names them: a role under the role base, grants under the grant base.
        role_dn = live.find_group(view.directory, settings, role, ROLE)
        asked = live.find_groups(view.directory, settings, [str(g) for g in wanted["grants"]], GRANT)
        return _grants_plan(build, role_dn, asked, action == "role-add-grant").changes
    if action == "delete" and isinstance(role, str):
        return _delete_plan(build, live.find_group(view.directory, settings, role, ROLE)).changes
    if action == "onboard" and isinstance(wanted.get("user"), str):
        return _onboard_plan(
            build, live.find_user(view.directory, settings, wanted["user"]), _target(view, settings, wanted)
        ).changes
    from .bulk import rebuild as rebuild_bulk

    found = rebuild_bulk(settings, build, changes)
    if found is None:
        raise RoleCommandError(f"a {changes.kind} change set is applied by its own command, not from a file")
    return found


def _target(view, settings: Settings, wanted: dict) -> OnboardTarget:
    """An onboarding's target from a plan file's intent, each DN named again as the command names it."""

    def texts(key: str) -> list[str]:
        found = wanted.get(key) or []
        if not isinstance(found, list):
            raise RoleCommandError(f"the plan's {key} is not a list")
        return [str(item) for item in found]

    new_role, extras = wanted.get("new_role"), texts("extras")
    return OnboardTarget(
        roles=tuple(live.find_group(view.directory, settings, r, ROLE) for r in texts("roles")),
        new_role=check_role_name(new_role) if isinstance(new_role, str) else None,
        new_grants=tuple(texts("new_grants")),
        extras=tuple(live.find_groups(view.directory, settings, extras, GRANT) if extras else ()),
    )


def catalogue_after_rollback(store: Store, directory, settings: Settings, batch: Batch, ticket: str | None) -> None:
    """The catalogue follows the directory back: each role the batch touched, as it is now."""
    _catalogue_follows(store, directory, settings, batch, ticket, "rolled back")


def catalogue_after_apply(settings: Settings, store: Store, batch: Batch, ticket: str | None, prompt=None) -> None:
    """After a role plan file was applied: the catalogue records each role it touched, as it is now."""
    with directory_for(settings, prompt) as directory:
        _catalogue_follows(store, directory, settings, batch, ticket, "applied from a plan file")


def _catalogue_follows(store: Store, directory, settings: Settings, batch: Batch, ticket, action: str) -> None:
    touched = {s.group_dn for s in batch.steps if s.is_entry} | ({batch.role_dn} if batch.role_dn else set())
    updates = []
    for role_dn in sorted(dn for dn in touched if live.kind_of(settings, dn) == ROLE):
        attrs = directory.read_entry(role_dn, ["description"])
        grants = tuple(live.groups_holding(directory, settings, role_dn, GRANT)) if attrs is not None else ()
        event = (action, {"batch": batch.id})
        state = ACTIVE if attrs is not None else DELETED
        description = (attrs or {}).get("description", [None])[0]
        name = dnutil.first_value(role_dn)
        updates.append(RoleUpdate(name, role_dn, grants, state=state, description=description, events=(event,)))
    if updates:
        store.roles.record(updates, ticket, batch.id)
