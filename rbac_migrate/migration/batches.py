"""Executing, resuming and rolling back batches: lock, guard rails, write-ahead journal, audit.

Every write command hands a ``ChangeSet`` to ``execute``; ``resume`` and ``rollback`` work from
the journal rows of a batch, and run the same guard rails on exactly what they are about to write.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

from .. import changeset as cs
from .. import dn as dnutil
from ..audit import new_record
from ..directory.writes import ConnectionLost
from ..errors import RbacMigrateError
from ..model import STEP_APPLIED, Batch, BatchUser, Step, SubjectAccess
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
    """(unit, what) for every way the directory differs from what the change set rests on."""
    labels = {u.position: u.user_dn for u in users}
    found = [(labels[step.position], problem) for step in steps if (problem := _not_as_planned(engine, step))]
    for user in users:
        for subject in user.subjects:
            now = engine.view.access(subject.dn)
            if now != subject.before:
                changed = sorted(now ^ subject.before)
                found.append((user.user_dn, f"access of {subject.dn} changed since ({len(changed)}: {changed[:2]})"))
    return found


def _not_as_planned(engine: Engine, step: Step) -> str | None:
    """Why the step's starting point no longer holds, or None when it does."""
    present = engine.is_present(step)
    if present is None:
        return f"group {step.group_dn} no longer exists"
    if present != step.present_after:
        return None
    if step.is_entry:
        return f"{step.group_dn} already {'exists' if step.op == 'create' else 'is gone'}"
    return f"{step.group_dn} already {'holds' if step.op == 'add' else 'lacks'} {step.value}"


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
                changes=[change_record(s) for s in batch.steps_of(user.position)],
                access={s.dn: "verified" for s in user.subjects},
            )
        )
    count = len(batch.users)
    _finish(store, batch, "applied", f"{count} unit{'s' if count != 1 else ''} verified")
    return store.batch(batch.id)


def change_record(step: Step, undo: bool = False) -> dict:
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


__all__ = ["check", "execute", "journal_rows", "mark_created", "operator_lock", "refuse_if_unfinished", "resume"]
