"""The migration commands as plain functions: plan, apply, resume, rollback, verify, status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import connections
from ..access import AccessGraph, find_one, match_entries
from ..config import Settings
from ..model import GRANT, ROLE, USER, Batch
from .batches import RollbackReport, apply_plan, resume, rollback
from .engine import MigrationError
from .live import DriftError, live_access
from .plan import (
    NothingToMigrate,
    PlanError,
    candidates,
    expected_members,
    limits_from,
    load_plan,
    make_plan,
    plan_ldif,
    plan_rows,
)

__all__ = [
    "DriftError",
    "MigrationError",
    "NothingToMigrate",
    "PlanError",
    "RollbackReport",
    "apply",
    "load_plan",
    "plan",
    "plan_ldif",
    "plan_rows",
    "resume_batch",
    "rollback_batch",
    "status",
    "verify_plan",
]

Progress = Callable[[str], None]


def plan(
    settings: Settings,
    store,
    role: str,
    users: list[str] | None = None,
    batch_size: int | None = None,
    allow_gain: list[str] = (),
) -> dict:
    """A plan for the named users, or for the next N safe candidates, from the latest snapshot."""
    settings.require("grant_base", "role_base")
    snap = store.load_snapshot()
    graph = AccessGraph(snap)
    role_entry = find_one(match_entries(snap, role, (ROLE,)), "role", role)
    limits = limits_from(settings)
    if users:
        chosen = [find_one(match_entries(snap, name, (USER,)), "user", name) for name in users]
    else:
        chosen = candidates(graph, role_entry, limits)[: batch_size or limits.max_batch_size]
    return make_plan(graph, role_entry, chosen, limits, frozenset(u.lower() for u in allow_gain), snap.source)


def apply(settings: Settings, store, plan: dict, ticket: str | None, progress: Progress, prompt=None) -> Batch:
    """Apply a reviewed plan; see migration.batches.apply_plan for the order of events."""
    with connections.directory_for(settings, prompt) as directory:
        return apply_plan(store, directory, settings, plan, ticket, progress)


def resume_batch(settings: Settings, store, batch_id: int, progress: Progress, prompt=None) -> Batch:
    with connections.directory_for(settings, prompt) as directory:
        return resume(store, directory, settings, batch_id, progress)


def rollback_batch(
    settings: Settings,
    store,
    batch_id: int,
    users: set[str] | None,
    dry_run: bool,
    force: bool,
    progress: Progress,
    prompt=None,
) -> RollbackReport:
    with connections.directory_for(settings, prompt) as directory:
        return rollback(store, directory, settings, batch_id, users, dry_run, force, progress)


def verify_plan(settings: Settings, plan: dict, prompt=None) -> list[str]:
    """After the plan was applied by other means (LDIF): problems found, empty when all is well."""
    problems = []
    with connections.directory_for(settings, prompt) as directory:
        writer = directory.writer()
        for user in plan["users"]:
            for change, expect in expected_members(user, applied=True):
                if writer.has_member(change["group_dn"], user["dn"]) is not expect:
                    state = "does not hold" if expect else "still holds"
                    problems.append(f"{change['group_dn']} {state} {user['dn']}")
            now = live_access(directory, settings, user["dn"])
            expected = set(user["before"]) | set(user.get("gain", []))
            if now != expected:
                problems.append(
                    f"{user['name']}: access differs (gained {sorted(now - expected)}, lost {sorted(expected - now)})"
                )
    return problems


@dataclass
class RoleProgress:
    role: str
    holders: int
    migrated: int
    direct_remaining: int
    batches: int


def status(store) -> list[RoleProgress]:
    """Per role: holders now, users migrated by batches, direct grants it could still absorb."""
    snap = store.load_snapshot()
    graph = AccessGraph(snap)
    batches = store.batches()
    rows = []
    for role in snap.of_kind(ROLE):
        provides = graph.effective_grants(role.idx)
        holders = [m for m in snap.members.get(role.idx, ()) if graph.by_idx[m].kind == USER]
        remaining = sum(1 for user in holders for group in graph.direct_groups(user, GRANT) if group.idx in provides)
        mine = [b for b in batches if b.role_dn and b.role_dn.lower() == role.dn.lower()]
        migrated = sum(len(b.plan.get("users", [])) for b in mine if b.status == "applied")
        rows.append(RoleProgress(role.name, len(holders), migrated, remaining, len(mine)))
    return rows
