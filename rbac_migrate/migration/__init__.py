"""The write commands as plain functions: plan, apply, resume, rollback, verify, status.

Every write in rbac-migrate goes through ``execute_change_set`` (or resume / rollback of a batch it
wrote): one engine with one set of guard rails, one journal and one audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import changeset as cs
from .. import connections
from .. import dn as dnutil
from ..access import MembershipGraph, find_one, match_entries
from ..audit import operator
from ..config import Settings
from ..files import write_private
from ..model import ROLE, USER, Batch
from ..store.journal import holder_alive
from .batches import execute, journal_rows, mark_created, resume
from .engine import Engine, MigrationError
from .guards import GuardError, GuardRails
from .live import DriftError, LiveView
from .plan import NothingToMigrate, PlanError, build, candidates, entry_ref, plan_ldif, plan_rows
from .rollback import RollbackReport, rollback

__all__ = [
    "AlreadyApplied",
    "DriftError",
    "GuardError",
    "MigrationError",
    "NothingToMigrate",
    "PlanError",
    "RollbackReport",
    "apply_file",
    "execute_change_set",
    "plan",
    "plan_ldif",
    "plan_rows",
    "read_plan_file",
    "resume_batch",
    "rollback_batch",
    "status",
    "verify_plan",
    "write_plan_file",
]

Progress = Callable[[str], None]


class AlreadyApplied(PlanError):
    """The plan file was applied before."""


def plan(
    settings: Settings,
    store,
    role: str,
    users: list[str] | None = None,
    batch_size: int | None = None,
    allow_gain: list[str] = (),
    prompt=None,
) -> cs.ChangeSet:
    """A plan for the named users, or for the next N safe candidates, built against the live directory."""
    settings.require("grant_base", "role_base")
    snap = store.load_snapshot()
    graph = MembershipGraph(snap)
    role_entry = find_one(match_entries(snap, role, (ROLE,)), "role", role)
    with connections.directory_for(settings, prompt) as directory:
        view = LiveView(directory, settings)
        guards = GuardRails(view, settings)
        limit = None
        if users:
            chosen = [find_one(match_entries(snap, name, (USER,)), "user", name) for name in users]
        else:
            unprotected = lambda e: guards.is_protected(e.dn, e.uuid)  # noqa: E731
            chosen = candidates(graph, role_entry, unprotected)
            limit = batch_size or settings.max_batch_size
        for user in chosen if limit is None else ():
            if guards.is_protected(user.dn, user.uuid):
                raise PlanError(f"{user.name} is a protected account: it is never changed")
            if not user.enabled:
                raise PlanError(f"{user.name} is disabled: leavers are not migrated (see 'report orphans')")
        if limit is None and len(chosen) > settings.max_batch_size:
            raise PlanError(
                f"{len(chosen)} users exceed max_batch_size {settings.max_batch_size}: plan a smaller batch"
            )
        wanted = {
            "role": vars(entry_ref(role_entry)),
            "users": [vars(entry_ref(u)) for u in chosen],
            "allow_gain": sorted(a.lower() for a in allow_gain),
        }
        changes = build(view, settings, wanted, directory.target, snap.id, limit)
        guards.check(journal_rows(changes)[1])
        return changes


def write_plan_file(store, changes: cs.ChangeSet, path: str) -> None:
    """Write a plan file owner-only and remember its digest: apply accepts only files written so."""
    data = cs.dumps(changes).encode("utf-8")
    write_private(path, data)
    store.record_plan(cs.digest(data), changes.kind, str(path), operator())


def read_plan_file(store, path: str) -> tuple[cs.ChangeSet, str]:
    """Parse a plan file and check the store wrote it, unedited, and it was not applied yet."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror}") from None
    changes = cs.loads(data, path)
    digest = cs.digest(data)
    record = store.plan_record(digest)
    if record is None:
        raise PlanError(
            f"{path} is not a plan this store wrote, or it was edited since: plans are reviewed, never edited; "
            "write a new one with 'rbac-migrate migrate plan ... -o FILE'"
        )
    applied = store.batch(record[1]) if record[1] is not None else None
    if applied is not None and applied.status == "running" and holder_alive(applied.holder):
        raise MigrationError(
            f"another operator is applying {path} right now (batch {applied.id}): wait for it to finish"
        )
    if applied is not None and applied.status == "running":
        raise MigrationError(
            f"batch {applied.id} was interrupted: run 'rbac-migrate migrate resume {applied.id}' "
            f"or 'rbac-migrate rollback {applied.id}' first"
        )
    if applied is not None and applied.status not in ("rolled_back", "failed"):
        raise AlreadyApplied(
            f"{path} was already applied as batch {record[1]}: 'rbac-migrate batches show {record[1]}'"
        )
    return changes, digest


def rebuild(settings, view: LiveView, changes: cs.ChangeSet, directory_name: str) -> cs.ChangeSet:
    """The change set the plan's intent produces against the live directory now."""
    if changes.kind == "migrate":
        return build(view, settings, changes.intent, directory_name, changes.snapshot)
    if changes.kind == "remediate":
        from ..remediation import build as build_remediation

        return build_remediation(view, settings, changes.intent, None, directory_name)
    from ..roles.commands import rebuild as rebuild_role_change

    return rebuild_role_change(settings, view, changes)


def differences(planned: cs.ChangeSet, rebuilt: cs.ChangeSet) -> list[str]:
    """What the file asks for that the intent does not produce now, and the other way round."""

    def keyed(changes: cs.ChangeSet) -> dict[tuple, str]:
        found = {}
        for unit in changes.units:
            for edit in unit.edits:
                member = edit.member.dn if edit.member else ""
                key = (
                    edit.op,
                    dnutil.normalize(edit.group.dn),
                    dnutil.normalize(member),
                    edit.member.uuid if edit.member else None,
                )
                found[key] = f"{edit.op} {member or edit.group.dn}{' in ' + edit.group.dn if member else ''}"
            for subject in unit.subjects:
                found[("access", dnutil.normalize(subject.user.dn), tuple(sorted(subject.after)))] = (
                    f"access of {subject.user.dn} after the change"
                )
        return found

    mine, theirs = keyed(planned), keyed(rebuilt)
    extra = [f"the file asks to {mine[k]}" for k in mine if k not in theirs]
    missing = [f"the directory now needs {theirs[k]}" for k in theirs if k not in mine]
    return extra + missing


def apply_file(
    settings: Settings, store, path: str, ticket: str | None, progress: Progress, prompt=None, confirm=None
) -> Batch:
    """Apply a reviewed plan file: rebuilt from its intent, refused if the file asks for anything else."""
    changes, digest = read_plan_file(store, path)
    with connections.directory_for(settings, prompt) as directory:
        view = LiveView(directory, settings)
        _, steps = journal_rows(changes)
        mark_created(steps)
        GuardRails(view, settings).check(steps)  # whatever the file says, before anything is rebuilt from it
        try:
            rebuilt = rebuild(settings, view, changes, directory.target)
        except PlanError as exc:
            raise DriftError(f"the directory changed since the plan {path}: {exc}; {_replan(changes)}") from None
        found = differences(changes, rebuilt)
        if found:
            shown = "; ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            raise DriftError(
                f"the directory changed since the plan {path}, or the file was edited ({len(found)} differences: "
                f"{shown}); {_replan(changes)}"
            )
        if confirm is not None:
            confirm(rebuilt)
        batch = execute(store, directory, settings, rebuilt, ticket, progress, digest, _replan(changes))
    if batch.kind == "remediate":
        from ..remediation import mark_fixed

        mark_fixed(store, rebuilt, batch.id)
    return batch


def execute_change_set(
    settings: Settings, store, changes: cs.ChangeSet, ticket: str | None, progress: Progress, prompt=None
) -> Batch:
    """Hand a change set built moments ago to the engine."""
    with connections.directory_for(settings, prompt) as directory:
        return execute(store, directory, settings, changes, ticket, progress, replan=_replan(changes))


def _replan(changes: cs.ChangeSet) -> str:
    if changes.kind == "migrate" and changes.role is not None:
        users = ",".join(u["name"] for u in changes.intent.get("users", []) if isinstance(u, dict) and u.get("name"))
        return f"plan again: rbac-migrate migrate plan --role {changes.role.name} --users {users} -o FILE"
    if changes.kind == "remediate":
        return f"plan again: rbac-migrate remediate plan --category {changes.intent.get('category')} -o FILE"
    return "plan it again"


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
    ticket: str | None = None,
) -> RollbackReport:
    with connections.directory_for(settings, prompt) as directory:
        report = rollback(store, directory, settings, batch_id, users, dry_run, force, progress, ticket)
        batch = store.batch(batch_id)
        if not dry_run and report.restored and (batch.kind.startswith("role-") or batch.kind == "onboard"):
            from ..roles.commands import catalogue_after_rollback

            catalogue_after_rollback(store, directory, settings, batch, ticket)
    return report


def verify_plan(settings: Settings, path: str, prompt=None) -> list[str]:
    """After a plan was applied by other means (LDIF): problems found, empty when all is well."""
    try:
        changes = cs.loads(Path(path).read_bytes(), path)
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror}") from None
    problems = []
    with connections.directory_for(settings, prompt) as directory:
        engine = Engine(None, directory, settings)
        users, steps = journal_rows(changes)
        for step in steps:
            step.state = "applied"
        for user in users:
            problems += engine.check_after([s for s in steps if s.position == user.position], user, undone=False)
    return problems


def status(store) -> list:
    """Per role, counted exactly as 'report progress' counts it (the same computation, latest snapshot only)."""
    from ..reports.progress import progress_report

    return progress_report([store.load_snapshot()], store.migration_batches()).roles
