"""Plans: the exact value-level changes that move users from direct grants onto a role. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import dn as dnutil
from ..access import AccessGraph
from ..errors import RbacMigrateError, UsageError
from ..model import GRANT, ROLE, Entry

PLAN_VERSION = 1


class PlanError(RbacMigrateError):
    """The plan cannot be made or used as asked."""


class NothingToMigrate(PlanError):
    """No user is left whose access the role covers."""


@dataclass(frozen=True)
class Limits:
    """Guard rails that every plan and every apply checks."""

    max_batch_size: int
    max_removals: int
    protected: frozenset[str]  # lower-case ids and normalised DNs
    grant_base: str
    role_base: str

    def is_protected(self, user: Entry) -> bool:
        return user.name.lower() in self.protected or dnutil.normalize(user.dn) in self.protected

    def writable(self, group_dn: str) -> bool:
        return dnutil.is_within(group_dn, self.grant_base) or dnutil.is_within(group_dn, self.role_base)


def limits_from(settings) -> Limits:
    protected = {p.strip().lower() for p in settings.protected_accounts if "=" not in p}
    protected |= {dnutil.normalize(p) for p in settings.protected_accounts if "=" in p}
    return Limits(
        max_batch_size=settings.max_batch_size,
        max_removals=settings.max_removals_per_run,
        protected=frozenset(protected),
        grant_base=settings.grant_base,
        role_base=settings.role_base,
    )


@dataclass
class UserPlan:
    """What happens to one user: join the role, lose the direct grants it now provides."""

    name: str
    dn: str
    uuid: str | None
    adds: list[dict] = field(default_factory=list)  # {"group_dn", "group_uuid", "group"}
    deletes: list[dict] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # direct grants the role does not cover
    before: list[str] = field(default_factory=list)  # effective grants, normalised DNs
    gain: list[str] = field(default_factory=list)  # grants the role adds (approved with --allow-gain)


def _group_ref(entry: Entry) -> dict:
    return {"group": entry.name, "group_dn": entry.dn, "group_uuid": entry.uuid}


def plan_user(graph: AccessGraph, role: Entry, user: Entry, allow_gain: bool) -> UserPlan:
    """The changes for one user, or PlanError when the role would give them new access."""
    role_grants = graph.effective_grants(role.idx)
    before = graph.effective_grants(user.idx)
    gain = role_grants - before
    if gain and not allow_gain:
        names = ", ".join(sorted(graph.by_idx[g].name for g in gain))
        raise PlanError(
            f"{user.name}: the role would add access they do not have ({names}); use --allow-gain {user.name}"
        )
    direct = [g for g in graph.direct_groups(user.idx) if g.kind == GRANT]
    holds_role = any(g.idx == role.idx for g in graph.direct_groups(user.idx))
    result = UserPlan(
        name=user.name,
        dn=user.dn,
        uuid=user.uuid,
        adds=[] if holds_role else [_group_ref(role)],
        deletes=[_group_ref(g) for g in sorted(direct, key=lambda e: e.name.lower()) if g.idx in role_grants],
        kept=sorted(g.name for g in direct if g.idx not in role_grants),
        before=sorted(dnutil.normalize(graph.by_idx[g].dn) for g in before),
        gain=sorted(dnutil.normalize(graph.by_idx[g].dn) for g in gain),
    )
    if not result.adds and not result.deletes:
        raise PlanError(f"{user.name} already holds {role.name} and has no direct grant it covers")
    return result


def candidates(graph: AccessGraph, role: Entry, limits: Limits) -> list[Entry]:
    """Enabled, unprotected users whose access already covers the role, most explained first."""
    role_grants = graph.effective_grants(role.idx)
    scored = []
    for user in graph.snapshot.entries:
        if user.kind != "user" or not user.enabled or limits.is_protected(user):
            continue
        if any(g.idx == role.idx for g in graph.direct_groups(user.idx)):
            continue
        direct = {g.idx for g in graph.direct_groups(user.idx) if g.kind == GRANT}
        covered = direct & role_grants
        if covered and role_grants <= graph.effective_grants(user.idx):
            scored.append((-len(covered), user.name.lower(), user))
    return [user for *_key, user in sorted(scored, key=lambda item: item[:2])]


def make_plan(
    graph: AccessGraph,
    role: Entry,
    users: list[Entry],
    limits: Limits,
    allow_gain: frozenset[str] = frozenset(),
    directory: str = "",
) -> dict:
    """A reviewable plan for these users, checked against every guard rail."""
    if role.kind != ROLE:
        raise UsageError(f"{role.name} is not a role (it is not under the role base)")
    if not users:
        hint = f"'rbac-migrate role candidates {role.name}' lists them"
        raise NothingToMigrate(f"no user to migrate onto {role.name}: {hint}")
    if len(users) > limits.max_batch_size:
        raise PlanError(f"{len(users)} users exceed max_batch_size {limits.max_batch_size}: plan a smaller batch")
    plans = []
    for user in users:
        if limits.is_protected(user):
            raise PlanError(f"{user.name} is a protected account: it is never changed")
        if not user.enabled:
            raise PlanError(f"{user.name} is disabled: leavers are not migrated (see 'report orphans')")
        plans.append(plan_user(graph, role, user, user.name.lower() in allow_gain))
    plan = {
        "version": PLAN_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "snapshot": graph.snapshot.id,
        "directory": directory,
        "role": {"name": role.name, "dn": role.dn, "uuid": role.uuid},
        "users": [vars(p) for p in plans],
    }
    check_limits(plan, limits)
    return plan


def check_limits(plan: dict, limits: Limits) -> None:
    """Guard rails again, for a plan that may have been edited since it was written."""
    users = plan.get("users") or []
    if len(users) > limits.max_batch_size:
        raise PlanError(f"the plan has {len(users)} users, more than max_batch_size {limits.max_batch_size}")
    removals = sum(len(u["deletes"]) for u in users)
    if removals > limits.max_removals:
        raise PlanError(
            f"the plan deletes {removals} member values, more than max_removals_per_run {limits.max_removals}"
        )
    for user in users:
        if user["name"].lower() in limits.protected or dnutil.normalize(user["dn"]) in limits.protected:
            raise PlanError(f"{user['name']} is a protected account: it is never changed")
        for change in user["adds"] + user["deletes"]:
            if not limits.writable(change["group_dn"]):
                raise PlanError(f"{change['group_dn']} is outside the grant and role bases: it is never written")


def load_plan(text: str, source: str) -> dict:
    """Parse a plan file, with a clear error for anything that is not one."""
    import json

    try:
        plan = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{source} is not a plan (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION or "users" not in plan or "role" not in plan:
        raise PlanError(f"{source} is not a plan written by 'rbac-migrate migrate plan'")
    return plan


def expected_members(user: dict, applied: bool) -> list[tuple[dict, bool]]:
    """Each group change of a planned user, with whether the user's DN is in that group
    before the plan is applied (``applied=False``) or after it (``applied=True``)."""
    return [(c, applied) for c in user["adds"]] + [(c, not applied) for c in user["deletes"]]


def plan_rows(plan: dict) -> list[dict]:
    """One row per change, for table and CSV output."""
    rows = []
    for user in plan["users"]:
        for change in user["adds"]:
            rows.append({"user": user["name"], "change": "add", "group": change["group"], "value": user["dn"]})
        for change in user["deletes"]:
            rows.append({"user": user["name"], "change": "delete", "group": change["group"], "value": user["dn"]})
        for kept in user["kept"]:
            rows.append({"user": user["name"], "change": "keep", "group": kept, "value": "(not covered by the role)"})
    return rows


def plan_ldif(plan: dict, member_attribute: str) -> str:
    """The plan as LDIF change records that ldapmodify applies value by value."""
    records = []
    for user in plan["users"]:
        for op, changes in (("add", user["adds"]), ("delete", user["deletes"])):
            for change in changes:
                records.append(
                    f"dn: {change['group_dn']}\nchangetype: modify\n{op}: {member_attribute}\n"
                    f"{member_attribute}: {user['dn']}\n-\n"
                )
    header = f"# rbac-migrate plan: {len(plan['users'])} users onto {plan['role']['name']}\n"
    return header + "\n".join(records)
