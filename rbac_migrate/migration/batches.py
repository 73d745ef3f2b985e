"""Executing, resuming and rolling back batches: lock, guard rails, write-ahead journal, audit.

Every write command hands a ``ChangeSet`` to ``execute``; ``resume`` and ``rollback`` work from
the journal rows of a batch, and run the same guard rails on exactly what they are about to write.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import changeset as cs
from .. import dn as dnutil
from ..audit import new_record
from ..directory.writes import ConnectionLost
from ..errors import RbacMigrateError
from ..model import STEP_APPLIED, STEP_INFLIGHT, STEP_UNDOING, STEP_UNDONE, Batch, BatchUser, Step, SubjectAccess
from ..store import journal
from .engine import Engine, MigrationError
from .live import DriftError

LOCK = "migration"
Progress = Callable[[str], None]


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
        if batch.status == "rolling_back":
            raise MigrationError(
                f"the rollback of batch {batch.id} was interrupted: run 'rbac-migrate rollback {batch.id}' to finish it"
            )
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


def journal_rows(changes: cs.ChangeSet) -> tuple[list[BatchUser], list[Step]]:
    """The change set as journal rows: one unit row per unit, one step per edit."""
    users, steps = [], []
    for position, unit in enumerate(changes.units):
        subjects = [SubjectAccess(s.user.dn, s.user.uuid, s.before, s.after) for s in unit.subjects]
        label = unit.subjects[0].user if unit.subjects else (unit.edits[0].group if unit.edits else cs.Ref("", None))
        before = sorted(unit.subjects[0].before) if unit.subjects else []
        users.append(BatchUser(position, label.dn, label.uuid, before, subjects=subjects))
        for edit in unit.edits:
            detail: dict = {}
            if edit.attributes:
                detail["attributes"] = edit.attribute_map()
            if edit.dangling:
                detail["dangling"] = True
            member = edit.member or cs.Ref("", None)
            steps.append(
                Step(
                    len(steps),
                    position,
                    edit.op,
                    edit.group.dn,
                    edit.group.uuid,
                    member.dn,
                    value_uuid=member.uuid,
                    detail=detail,
                )
            )
    return users, steps


def preconditions(engine: Engine, users: list[BatchUser], steps: list[Step]) -> list[tuple[str, str]]:
    """(who, what) for every way the directory differs from what the change set rests on."""
    found = []
    labels = {u.position: u.user_dn for u in users}
    for step in steps:
        present = engine.is_present(step)
        if present is None:
            found.append((labels[step.position], f"group {step.group_dn} no longer exists"))
        elif present == step.present_after:
            what = (
                step.group_dn
                if step.is_entry
                else f"{step.group_dn} already {'holds' if step.op == 'add' else 'lacks'} {step.value}"
            )
            found.append(
                (
                    labels[step.position],
                    what if not step.is_entry else f"{what} already {'exists' if step.op == 'create' else 'is gone'}",
                )
            )
    for user in users:
        for subject in user.subjects:
            now = engine.view.access(subject.dn)
            if now != subject.before:
                gained, lost = sorted(now - subject.before), sorted(subject.before - now)
                found.append(
                    (
                        user.user_dn,
                        f"access of {subject.dn} changed since (+{len(gained)} -{len(lost)}: {(gained + lost)[:2]})",
                    )
                )
    return found


def drift_summary(drifts: list[tuple[str, str]], replan: str) -> str:
    """One short line: how many differences per unit, the first few, and what to run."""
    per: dict[str, list[str]] = {}
    for who, what in drifts:
        per.setdefault(who, []).append(what)
    parts = [f"{dnutil.first_value(who) or who}: {len(items)} ({items[0]})" for who, items in list(per.items())[:3]]
    more = f" and {len(per) - 3} more" if len(per) > 3 else ""
    return f"the directory changed since the plan for {len(per)} of them: {'; '.join(parts)}{more}; {replan}"


def execute(
    store,
    directory,
    settings,
    changes: cs.ChangeSet,
    ticket: str | None,
    progress: Progress,
    plan_digest: str | None = None,
    replan: str = "plan it again",
) -> Batch:
    """Check, journal, write and verify a change set, unit by unit; returns the finished batch."""
    engine = Engine(store, directory, settings, progress)
    with operator_lock(store) as holder:
        refuse_if_unfinished(store)
        users, steps = check(engine, changes, replan)
        with store.begin() as conn:  # the rollback point, committed before the first write
            batch_id = journal.create_batch(
                conn,
                kind=changes.kind,
                plan=cs.to_dict(changes),
                role_dn=changes.role.dn if changes.role else None,
                role_uuid=changes.role.uuid if changes.role else None,
                operator=new_record("", "").operator,
                ticket=ticket,
                holder=holder,
                users=users,
                steps=steps,
            )
            if plan_digest:
                journal.plan_applied(conn, plan_digest, batch_id)
            # In the same transaction: a batch never exists without its first audit record.
            store.audit_in(
                conn,
                new_record(
                    f"{changes.kind}.start",
                    changes.role.dn if changes.role else changes.title,
                    ticket,
                    batch=batch_id,
                    title=changes.title,
                    users=[u.user_dn for u in users],
                ),
            )
        batch = store.batch(batch_id)
        return _run(store, engine, batch, progress)


def check(engine: Engine, changes: cs.ChangeSet, replan: str = "plan it again") -> tuple[list[BatchUser], list[Step]]:
    """Every guard rail and precondition, live; the journal rows when the change set may go ahead."""
    if changes.empty:
        raise RbacMigrateError("nothing to do: the directory is already as asked")
    users, steps = journal_rows(changes)
    mark_created(steps)
    engine.guards.check(steps)
    drifts = preconditions(engine, users, steps)
    if drifts:
        raise DriftError(drift_summary(drifts, replan))
    return users, steps


def mark_created(steps: list[Step]) -> None:
    """Values naming an entry this very batch creates or removes: that entry's own step checks its identity.

    A created entry has no identity before it exists, and a removed one is re-created (with a new
    identity) by rollback before it is nested back where it was.
    """
    entries = {dnutil.normalize(s.group_dn) for s in steps if s.is_entry}
    for step in steps:
        if not step.is_entry and step.value and dnutil.normalize(step.value) in entries:
            step.detail["created_here"] = True


def _run(store, engine: Engine, batch: Batch, progress: Progress) -> Batch:
    for user in batch.users:
        if user.state == "verified":
            continue
        progress(f"  {user.user_dn}")
        try:
            engine.apply_user(batch, user)
        except ConnectionLost as exc:
            raise _interrupted(store, batch, exc) from None
        except RbacMigrateError as exc:
            _finish(store, batch, "failed", str(exc))
            raise MigrationError(str(exc)) from None
        store.audit(
            new_record(
                f"{batch.kind}.unit",
                user.user_dn,
                batch.ticket,
                batch=batch.id,
                changes=[_change_record(s) for s in batch.steps_of(user.position)],
                access={s.dn: "verified" for s in user.subjects},
            )
        )
    count = len(batch.users)
    _finish(store, batch, "applied", f"{count} unit{'s' if count != 1 else ''} verified")
    return store.batch(batch.id)


def _change_record(step: Step, undo: bool = False) -> dict:
    """One value (or entry) as it was before the write and as the write left it."""
    states = ("absent", "present") if step.present_after != undo else ("present", "absent")
    return {"op": step.op, "group": step.group_dn, "value": step.value, "before": states[0], "after": states[1]}


def _finish(store, batch: Batch, status: str, message: str) -> None:
    with store.begin() as conn:
        journal.set_batch(conn, batch.id, status, message)
    store.audit(new_record(f"batch.{status}", batch.role_dn or "", batch.ticket, batch=batch.id, message=message))


def resume(store, directory, settings, batch_id: int, progress: Progress) -> Batch:
    """Finish an interrupted batch: read back every in-flight step, then carry on."""
    with operator_lock(store) as holder:
        batch = store.batch(batch_id)
        if batch.status == "rolling_back":
            raise MigrationError(f"batch {batch_id} was being rolled back: run 'rbac-migrate rollback {batch_id}'")
        if batch.status != "running":
            raise MigrationError(f"batch {batch_id} is {batch.status}: nothing to resume")
        if journal.holder_alive(batch.holder) and batch.holder != holder:
            raise MigrationError(f"batch {batch_id} is still being applied by {batch.holder}")
        engine = Engine(store, directory, settings, progress)
        mark_created(batch.steps)
        engine.guards.check([s for s in batch.steps if s.state != STEP_APPLIED])
        with store.begin() as conn:
            journal.set_batch(conn, batch.id, "running", "resumed", holder=holder)
        store.audit(new_record("batch.resume", batch.role_dn or "", batch.ticket, batch=batch.id))
        return _run(store, engine, batch, progress)


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
                        _change_record(s, undo=True)
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


__all__ = ["execute", "resume", "rollback", "RollbackReport", "STEP_UNDONE"]
