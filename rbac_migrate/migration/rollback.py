"""Rollback of any batch: exact prior values back, unit by unit, or an honest conflict.

Three-way per value: what was there before the batch, what the batch wrote, what is there now.
A unit someone changed since is left alone (and reported) unless forced. The batch is marked
"rolling back" first, so a rollback killed half-way is found and finished by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import dn as dnutil
from ..audit import new_record
from ..errors import RbacMigrateError
from ..model import STEP_APPLIED, STEP_INFLIGHT, STEP_UNDOING, STEP_UNDONE, Batch, BatchUser, Step
from ..store import journal
from .batches import Progress, change_record, mark_created, operator_lock, refuse_if_unfinished
from .engine import Engine, MigrationError


@dataclass
class RollbackReport:
    batch: int
    restored: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False


def rollback(
    store,
    directory,
    settings,
    batch_id: int,
    users: set[str] | None,
    dry_run: bool,
    force: bool,
    progress: Progress,
    ticket: str | None = None,
) -> RollbackReport:
    """Restore exactly what the batch changed, unit by unit, unless someone changed it since."""
    report = RollbackReport(batch_id, dry_run=dry_run)
    with operator_lock(store) as holder:
        batch = store.batch(batch_id)
        if batch.status == "running" and journal.holder_alive(batch.holder) and batch.holder != holder:
            raise MigrationError(f"batch {batch_id} is still being applied by {batch.holder}")
        for other in store.unfinished_batches():
            if other.id != batch_id:
                refuse_if_unfinished(store)
        engine = Engine(store, directory, settings, progress)
        mark_created(batch.steps)
        chosen = [u for u in batch.users if users is None or _matches(u, users)]
        if users is not None and not chosen:
            raise RbacMigrateError(f"batch {batch_id} has no user {', '.join(sorted(users))}")
        todo_steps = [s for u in chosen for s in batch.steps_of(u.position) if s.state != "pending"]
        engine.guards.check(todo_steps, undo=True)
        if not dry_run:  # a rollback killed half-way is found by the next run, like an apply
            with store.begin() as conn:
                journal.set_batch(conn, batch.id, "rolling_back", "rollback started", holder=holder)
        for user in chosen:
            _rollback_user(engine, batch, user, report, dry_run, force)
        if not dry_run:
            # An interrupted apply counts as failed once rolled back in part; a killed rollback's batch was applied.
            previous = {"running": "failed", "rolling_back": "applied"}.get(batch.status, batch.status)
            status = "rolled_back" if all(u.state in ("rolled_back", "restored") for u in batch.users) else previous
            status = "partially_rolled_back" if status == previous and report.restored else status
            with store.begin() as conn:
                journal.set_batch(conn, batch.id, status, f"rollback: {len(report.restored)} units restored")
            store.audit(
                new_record(
                    "rollback",
                    batch.role_dn or "",
                    ticket or batch.ticket,
                    batch=batch.id,
                    restored=report.restored,
                    conflicts=report.conflicts,
                    changes=[
                        change_record(s, undo=True)
                        for u in chosen
                        if u.user_dn in report.restored
                        for s in batch.steps_of(u.position)
                        if s.state == STEP_UNDONE
                    ],
                )
            )
    return report


def _matches(user: BatchUser, names: set[str]) -> bool:
    lowered = {n.lower() for n in names}
    normalised = {dnutil.normalize(n) for n in names if "=" in n}
    return (
        dnutil.normalize(user.user_dn) in normalised
        or dnutil.first_value(user.user_dn).lower() in lowered
        or any(s.dn and dnutil.first_value(s.dn).lower() in lowered for s in user.subjects[:1])
    )


def _rollback_user(
    engine: Engine, batch: Batch, user: BatchUser, report: RollbackReport, dry_run: bool, force: bool
) -> None:
    steps = batch.steps_of(user.position)
    if not dry_run:
        engine.settle(batch, steps)
    conflicts = _conflicts(engine, batch, user, steps)
    todo = [s for s in steps if s.state in (STEP_APPLIED, STEP_INFLIGHT, STEP_UNDOING)]
    if not todo:
        if not dry_run and user.state not in ("rolled_back", "restored"):
            engine.mark_user(batch, user, "rolled_back", "nothing had been applied")
        report.already.append(user.user_dn)
        return
    if conflicts:
        report.conflicts[user.user_dn] = conflicts
        if not force:
            if not dry_run:
                engine.mark_user(batch, user, "conflict", "; ".join(conflicts))
            return
    if dry_run:
        report.restored.append(user.user_dn)
        return
    engine.progress(f"  restoring {user.user_dn}")
    changed = [s for s in todo if engine.is_present(s) == s.present_after]
    for step in todo:
        if step not in changed:  # already back at its prior value: someone restored it by hand
            engine.mark_steps(batch, [step], STEP_UNDONE)
    changed.sort(key=lambda s: (-{"create": 0, "add": 1, "delete": 2, "remove": 3}[s.op], -s.seq))
    engine.write(batch, changed, undo=True)
    problems = engine.check_after(steps, user, undone=True)
    if problems and not force:
        raise MigrationError(f"{user.user_dn}: after rollback, {problems[0]}")
    engine.mark_user(batch, user, "rolled_back")
    report.restored.append(user.user_dn)


def _conflicts(engine: Engine, batch: Batch, user: BatchUser, steps: list[Step]) -> list[str]:
    """Three-way check: values that are neither what we wrote nor what was there before."""
    found = []
    for subject in user.subjects:
        if subject.uuid and engine.view.uuid_of(subject.dn) != subject.uuid:
            found.append(f"{subject.dn} is no longer the same account")
    for step in steps:
        if step.state != STEP_APPLIED:
            continue
        present = engine.is_present(step)
        if present is None:
            found.append(f"{step.group_dn} no longer exists")
        elif present != step.present_after:
            if step.is_entry:
                found.append(
                    f"{step.group_dn} was {'deleted' if step.op == 'create' else 're-created'} since the batch"
                )
            else:
                verb = "removed from" if step.op == "add" else "re-added to"
                found.append(f"{step.value} was {verb} {step.group_dn} since the batch")
        elif step.op == "create":
            found += _created_changed(engine, step)
    return found


def _created_changed(engine: Engine, step: Step) -> list[str]:
    """An entry the batch created is removed by rollback only while its members are as created."""
    attribute = engine.settings.member_attribute
    created = {
        dnutil.normalize(v)
        for k, vs in step.detail.get("attributes", {}).items()
        if k.lower() == attribute.lower()
        for v in vs
    }
    attrs = engine.directory.read_entry(step.group_dn, [attribute]) or {}
    now = {dnutil.normalize(v) for v in attrs.get(attribute.lower(), [])}
    if now != created:
        return [f"{step.group_dn} has other members than it was created with ({len(now - created)} added since)"]
    return []
