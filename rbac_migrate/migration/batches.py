"""apply, resume and rollback of whole batches: locks, write-ahead journal, audit, outcomes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..audit import new_record
from ..directory.writes import ConnectionLost
from ..errors import RbacMigrateError
from ..model import STEP_APPLIED, STEP_INFLIGHT, STEP_UNDOING, STEP_UNDONE, Batch, BatchUser, Step
from ..store import journal
from .engine import Engine, MigrationError
from .live import DriftError, check_drift, entry_uuid, live_access
from .plan import check_limits, limits_from

LOCK = "migration"


@contextmanager
def operator_lock(store):
    """One operator writes at a time, per store; a lock left by a dead process is taken over."""
    holder = journal.holder_id()
    with store.begin() as conn:
        journal.acquire_lock(conn, LOCK, holder)
    try:
        yield holder
    finally:
        with store.begin() as conn:
            journal.release_lock(conn, LOCK, holder)


def refuse_if_unfinished(store) -> None:
    for batch in store.unfinished_batches():
        raise MigrationError(
            f"batch {batch.id} was interrupted: run 'rbac-migrate migrate resume {batch.id}' "
            f"or 'rbac-migrate rollback {batch.id}' first"
        )


def _interrupted(store, batch: Batch, exc: Exception) -> MigrationError:
    with store.begin() as conn:
        journal.set_batch(conn, batch.id, "running", f"interrupted: {exc}", holder=None)
    return MigrationError(
        f"batch {batch.id} interrupted: {exc}; the outcome of the last write is read back by "
        f"'rbac-migrate migrate resume {batch.id}' (or undo it with 'rbac-migrate rollback {batch.id}')"
    )


def _steps_from_plan(plan: dict) -> tuple[list[BatchUser], list[Step]]:
    users, steps = [], []
    for position, user in enumerate(plan["users"]):
        users.append(BatchUser(position, user["dn"], user["uuid"], user["before"]))
        for op, changes in (("add", user["adds"]), ("delete", user["deletes"])):
            for change in changes:
                steps.append(Step(len(steps), position, op, change["group_dn"], change["group_uuid"], user["dn"]))
    return users, steps


def apply_plan(store, directory, settings, plan: dict, ticket: str | None, progress: Callable[[str], None]) -> Batch:
    """Check, journal, write and verify a plan, user by user; returns the finished batch."""
    check_limits(plan, limits_from(settings))
    with operator_lock(store) as holder:
        refuse_if_unfinished(store)
        drifts = check_drift(directory, settings, plan)
        if drifts:
            raise DriftError(f"the directory changed since the plan ({len(drifts)}): " + "; ".join(map(str, drifts)))
        users, steps = _steps_from_plan(plan)
        with store.begin() as conn:  # the rollback point, committed before the first write
            batch_id = journal.create_batch(
                conn,
                kind="migrate",
                plan=plan,
                role_dn=plan["role"]["dn"],
                role_uuid=plan["role"]["uuid"],
                operator=new_record("", "").operator,
                ticket=ticket,
                holder=holder,
                users=users,
                steps=steps,
            )
        batch = store.batch(batch_id)
        store.audit(
            new_record("migrate.start", plan["role"]["dn"], ticket, batch=batch_id, users=[u.user_dn for u in users])
        )
        return _run(store, directory, settings, batch, progress)


def _run(store, directory, settings, batch: Batch, progress: Callable[[str], None]) -> Batch:
    engine = Engine(store, directory, settings, progress)
    for user in batch.users:
        if user.state == "verified":
            continue
        progress(f"  {user.user_dn}")
        try:
            engine.apply_user(batch, user)
        except ConnectionLost as exc:
            raise _interrupted(store, batch, exc) from None
        except MigrationError as exc:
            _finish(store, batch, "failed", str(exc))
            raise
        store.audit(
            new_record(
                "migrate.user",
                user.user_dn,
                batch.ticket,
                batch=batch.id,
                changes=[_change_record(s) for s in batch.steps_of(user.position)],
                access="verified unchanged",
            )
        )
    count = len(batch.users)
    _finish(store, batch, "applied", f"{count} user{'s' if count != 1 else ''} verified")
    return store.batch(batch.id)


def _change_record(step: Step) -> dict:
    """One member value as it was before the batch and as the batch left it."""
    states = ("absent", "present") if step.op == "add" else ("present", "absent")
    return {"group": step.group_dn, "value": step.value, "before": states[0], "after": states[1]}


def _finish(store, batch: Batch, status: str, message: str) -> None:
    with store.begin() as conn:
        journal.set_batch(conn, batch.id, status, message)
    store.audit(new_record(f"batch.{status}", batch.role_dn or "", batch.ticket, batch=batch.id, message=message))


def resume(store, directory, settings, batch_id: int, progress: Callable[[str], None]) -> Batch:
    """Finish an interrupted batch: read back every in-flight step, then carry on."""
    with operator_lock(store) as holder:
        batch = store.batch(batch_id)
        if batch.status != "running":
            raise MigrationError(f"batch {batch_id} is {batch.status}: nothing to resume")
        if journal.holder_alive(batch.holder) and batch.holder != holder:
            raise MigrationError(f"batch {batch_id} is still being applied by {batch.holder}")
        with store.begin() as conn:
            journal.set_batch(conn, batch.id, "running", "resumed", holder=holder)
        store.audit(new_record("migrate.resume", batch.role_dn or "", batch.ticket, batch=batch.id))
        return _run(store, directory, settings, batch, progress)


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
    progress: Callable[[str], None],
) -> RollbackReport:
    """Restore exactly what the batch changed, user by user, unless someone changed it since."""
    report = RollbackReport(batch_id, dry_run=dry_run)
    with operator_lock(store):
        batch = store.batch(batch_id)
        engine = Engine(store, directory, settings, progress)
        chosen = [u for u in batch.users if users is None or _matches(u, users)]
        if users is not None and not chosen:
            raise RbacMigrateError(f"batch {batch_id} has no user {', '.join(sorted(users))}")
        for user in chosen:
            _rollback_user(engine, batch, user, report, dry_run, force)
        if not dry_run:
            status = "rolled_back" if all(u.state in ("rolled_back", "restored") for u in batch.users) else batch.status
            status = "partially_rolled_back" if status == batch.status and report.restored else status
            with store.begin() as conn:
                journal.set_batch(conn, batch.id, status, f"rollback: {len(report.restored)} users restored")
            store.audit(
                new_record(
                    "rollback",
                    batch.role_dn or "",
                    batch.ticket,
                    batch=batch.id,
                    restored=report.restored,
                    conflicts=report.conflicts,
                )
            )
    return report


def _matches(user: BatchUser, names: set[str]) -> bool:
    lowered = {n.lower() for n in names}
    return user.user_dn.lower() in lowered or user.user_dn.split(",")[0].split("=", 1)[-1].lower() in lowered


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
    changed = [s for s in todo if engine.writer.has_member(s.group_dn, s.value) == s.present_after]
    for step in todo:
        if step not in changed:  # already back at its prior value: someone restored it by hand
            engine.mark_steps(batch, [step], STEP_UNDONE)
    changed.sort(key=lambda s: (s.op != "delete", -s.seq))
    engine.write(batch, changed, undo=True)
    now = live_access(engine.directory, engine.settings, user.user_dn)
    if set(now) != set(user.before_access) and not force:
        raise MigrationError(f"{user.user_dn}: access after rollback differs from before the batch")
    engine.mark_user(batch, user, "rolled_back")
    report.restored.append(user.user_dn)


def _conflicts(engine: Engine, batch: Batch, user: BatchUser, steps: list[Step]) -> list[str]:
    """Three-way check: values that are neither what we wrote nor what was there before."""
    found = []
    if entry_uuid(engine.directory, engine.settings, user.user_dn) != user.user_uuid:
        found.append(f"{user.user_dn} is no longer the same account")
    for step in steps:
        if step.state != STEP_APPLIED:
            continue
        present = engine.writer.has_member(step.group_dn, step.value)
        if present is None:
            found.append(f"{step.group_dn} no longer exists")
        elif present != step.present_after:
            verb = "removed from" if step.op == "add" else "re-added to"
            found.append(f"{step.value} was {verb} {step.group_dn} since the batch")
    return found


__all__ = ["apply_plan", "resume", "rollback", "RollbackReport", "STEP_UNDONE"]
