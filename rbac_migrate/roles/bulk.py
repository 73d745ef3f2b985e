"""Role commands over many entries: mined roles created from a roles file, and rule-based assignment.

Both build one change set for the write engine, like every other role command: one batch, one
``rbac-migrate rollback N``. Both can be written as a reviewable plan file instead, which
``rbac-migrate apply FILE`` rebuilds from its intent against the directory as it is then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .. import changeset as cs
from .. import dn as dnutil
from ..config import Settings
from ..connections import Prompt, directory_for
from ..errors import NotFoundError, UsageError
from ..model import GRANT, ROLE, RoleUpdate
from ..store import Store
from . import live
from .catalogue import check_role_name, matches
from .commands import Ask, Outcome, RoleCommandError, RolePlan, _Builder, _run, _same_grants

CREATE_MANY, SYNC = "create-many", "sync"


@dataclass(frozen=True)
class NewRole:
    name: str
    grants: tuple[str, ...]
    description: str = ""


def roles_from_file(path: str) -> list[NewRole]:
    """The roles a reviewed roles file asks for (``role mine -o``), named and checked."""
    from ..mining.rolesfile import load_roles_file

    found = load_roles_file(path)
    if not found.roles:
        raise RoleCommandError(f"{path} holds no roles to create")
    seen: set[str] = set()
    for role in found.roles:
        if role.name.lower() in seen:
            raise RoleCommandError(f"{path}: role {role.name} is named twice")
        seen.add(role.name.lower())
        if not role.grants:
            raise RoleCommandError(f"{path}: role {role.name} has no grants")
    return [NewRole(check_role_name(r.name), tuple(r.grants), r.description) for r in found.roles]


def create_many(
    settings: Settings,
    store: Store,
    path: str,
    output: str | None = None,
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> Outcome:
    """Create every role of a roles file as one change set (one batch, one rollback), or write it as a plan."""
    wanted = roles_from_file(path)
    settings.require("url", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        plan = _create_many_plan(_Builder(directory, settings), wanted, path)
        return _run(settings, store, directory, plan, ticket, ask, output)


def _create_many_plan(build: _Builder, wanted: Sequence[NewRole], source: str) -> RolePlan:
    settings, directory = build.settings, build.directory
    units: list[cs.Unit] = []
    lines: list[str] = []
    updates: list[RoleUpdate] = []
    for role in wanted:
        grant_dns = live.find_groups(directory, settings, role.grants, GRANT)
        existing = live.existing_role(directory, settings, role.name)
        if existing is not None:
            _same_grants(settings, directory, role.name, existing, grant_dns)
            lines.append(f"{role.name} already exists with these grants: left as it is")
            continue
        role_dn = live.role_dn_for(settings, role.name)
        units.append(cs.Unit(role.name, build.new_role(role.name, grant_dns, role.description or None, [])))
        lines.append(f"create role {role.name}, nested into {len(grant_dns)} grants: {live.names(grant_dns, 5)}")
        events = (("created", {"grants": grant_dns, "description": role.description, "from": source}),)
        updates.append(RoleUpdate(role.name, role_dn, tuple(grant_dns), description=role.description, events=events))
    intent = {
        "action": CREATE_MANY,
        "roles": [{"name": r.name, "grants": list(r.grants), "description": r.description} for r in wanted],
    }
    title = f"create {len(units)} roles from {source}"
    changes = cs.ChangeSet("role-create", title, intent, units, None, directory.target)
    plan = RolePlan("role create", settings.role_base, f"Create {len(units)} roles?", changes, lines, updates)
    return plan


# -- assignment rules ----------------------------------------------------------------------------


def parse_rule(settings: Settings, pairs: Sequence[str]) -> dict[str, str]:
    """ATTRIBUTE=VALUE pairs on configured peer attributes, spelled as configured."""
    known = {name.lower(): name for name in settings.peer_attributes or ()}
    rule: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"a rule is ATTRIBUTE=VALUE pairs, got '{pair}'")
        spelled = known.get(name.strip().lower())
        if spelled is None:
            raise UsageError(
                f"'{name.strip()}' is not a peer attribute (peer_attributes: {', '.join(known.values()) or 'none'})"
            )
        if spelled in rule:
            raise UsageError(f"{spelled} is given twice: a rule holds one value per attribute")
        rule[spelled] = value.strip()
    if not rule:
        raise UsageError("give the rule as ATTRIBUTE=VALUE pairs, e.g. departmentNumber=Finance title=Accountant")
    return rule


def set_rule(settings: Settings, store: Store, role: str, pairs: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Give a role (in the catalogue or the latest snapshot) its assignment rule; returns (DN, rule)."""
    rule = parse_rule(settings, pairs)
    role_dn = role_in_store(store, role)
    store.roles.set_rule(dnutil.first_value(role_dn), role_dn, rule)
    return role_dn, rule


def role_in_store(store: Store, role: str) -> str:
    """A role's DN from the catalogue, else from the latest snapshot."""
    definition = store.roles.find(role)
    if definition is not None:
        return definition.dn
    from .query import role_show

    try:
        return role_show(store, role).summary.dn
    except NotFoundError:
        raise NotFoundError(f"no role '{role}' in the role catalogue or the latest snapshot") from None


@dataclass
class SyncPlan:
    """Matching users who lack the role (to add, in this batch and later), and holders who no longer match."""

    plan: RolePlan
    rule: dict[str, str]
    adding: list[live.LiveUser] = field(default_factory=list)
    waiting: int = 0  # matching users left for later batches
    movers: list[live.LiveUser] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # matching users never changed, and why


def sync(
    settings: Settings,
    store: Store,
    role: str,
    batch_size: int | None = None,
    output: str | None = None,
    ticket: str | None = None,
    ask: Ask | None = None,
    prompt: Prompt | None = None,
) -> tuple[SyncPlan, Outcome | None]:
    """Give the role to the next users its rule matches; list holders who no longer match, unchanged.

    With ``output`` the change set is written as a plan file; without, it is applied (after ``ask``).
    The outcome is None when there is nobody to add.
    """
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    settings.require("url", "user_base", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        role_dn = live.find_group(directory, settings, role, ROLE)
        rule = store.roles.rule(role_dn)
        if rule is None:
            name = dnutil.first_value(role_dn)
            raise RoleCommandError(
                f"role {name} has no assignment rule: "
                f"set one with 'rbac-migrate role rule set {name} ATTRIBUTE=VALUE ...'"
            )
        build = _Builder(directory, settings)
        found = _sync_plan(build, role_dn, rule, batch_size or settings.max_batch_size, None)
        if found.plan.empty:
            return found, None
        return found, _run(settings, store, directory, found.plan, ticket, ask, output)


def _sync_plan(
    build: _Builder, role_dn: str, rule: dict[str, str], batch_size: int, users: Sequence[str] | None
) -> SyncPlan:
    """The sync change set; ``users`` (DNs, from a plan file's intent) fixes who is added."""
    settings, directory = build.settings, build.directory
    values = live.member_values(directory, settings, role_dn)
    holding = {dnutil.normalize(v) for v in live.holders(values)}
    name = dnutil.first_value(role_dn)
    found = SyncPlan(RolePlan("role sync", role_dn, "", cs.ChangeSet("role-sync", "", {})), rule)
    matching = []
    for user in live.users_with(directory, settings, rule):
        if dnutil.normalize(user.dn) in holding:
            continue
        if not user.enabled:
            found.skipped.append(f"{user.name}: disabled")
        elif live.is_protected(settings, user.dn, user.name):
            found.skipped.append(f"{user.name}: protected account")
        else:
            matching.append(user)
    if users is None:
        chosen = matching[:batch_size]
    else:
        by_dn = {dnutil.normalize(u.dn): u for u in matching}
        missing = [dn for dn in users if dnutil.normalize(dn) not in by_dn]
        if missing:
            raise RoleCommandError(f"{dnutil.first_value(missing[0])} no longer matches the rule or holds {name} now")
        chosen = [by_dn[dnutil.normalize(dn)] for dn in users]
    found.adding, found.waiting = chosen, len(matching) - len(chosen)
    found.movers = _movers(directory, settings, holding, rule)
    role = build.ref(role_dn)
    units = []
    for user in chosen:
        edits = [cs.Edit(cs.ADD, role, build.ref(user.dn))]
        units.append(cs.Unit(user.name, edits, build.subjects([user.dn], edits)))
    intent = {"action": SYNC, "role": role_dn, "rule": rule, "users": [u.dn for u in chosen]}
    found.plan.changes = cs.ChangeSet("role-sync", f"sync {name} to its rule", intent, units, role, directory.target)
    found.plan.question = f"Give {name} to {len(chosen)} users its rule matches?"
    found.plan.lines += [f"add {u.name} to {name}" for u in chosen]
    if found.waiting:
        found.plan.lines.append(f"{found.waiting} more matching users are left for the next batches")
    if chosen:
        events = (("holders added by rule", {"users": [u.dn for u in chosen]}),)
        current = tuple(live.groups_holding(directory, settings, role_dn, GRANT))
        found.plan.updates.append(RoleUpdate(name, role_dn, current, events=events))
    return found


def _movers(directory, settings: Settings, holding: set[str], rule: Mapping[str, str]) -> list[live.LiveUser]:
    """Holders whose peer attributes no longer match the rule: listed for review, never changed."""
    movers = []
    for dn in sorted(holding):
        if live.kind_of(settings, dn) is not None:
            continue  # a group nested in the role, not a person
        attrs = directory.read_entry(dn, [settings.id_attribute, *settings.peer_attributes])
        if attrs is None:
            continue
        user = live.live_user(settings, dn, attrs, True)
        if not matches(rule, user.attrs):
            movers.append(user)
    return movers


def _new_role(raw: Mapping) -> NewRole:
    grants = tuple(str(g) for g in raw.get("grants") or ())
    return NewRole(check_role_name(str(raw.get("name"))), grants, str(raw.get("description") or ""))


def rebuild(settings: Settings, build: _Builder, changes: cs.ChangeSet) -> cs.ChangeSet | None:
    """The change set a create-many or sync intent produces now; None for other intents."""
    wanted = changes.intent
    action = wanted.get("action")
    if action == CREATE_MANY and isinstance(wanted.get("roles"), list):
        roles = [_new_role(r) for r in wanted["roles"] if isinstance(r, dict)]
        return _create_many_plan(build, roles, "a plan file").changes
    if action == SYNC and isinstance(wanted.get("users"), list) and isinstance(wanted.get("role"), str):
        role_dn = live.find_group(build.directory, settings, wanted["role"], ROLE)
        rule = wanted.get("rule") if isinstance(wanted.get("rule"), dict) else {}
        users = [str(u) for u in wanted["users"]]
        return _sync_plan(build, role_dn, {str(k): str(v) for k, v in rule.items()}, len(users), users).plan.changes
    return None
