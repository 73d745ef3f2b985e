"""The one writer: every change to the directory, whatever command asked for it, goes through here.

Order of events for every unit: the journal says a step is in flight, the directory is written,
the journal says it is applied; then every value is read back and every subject's effective
access must equal the unit's promise, or the unit is restored and the batch stops. A crash
between any two leaves steps "in flight"; they are settled by reading the directory back, never
by writing again blindly.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from ..directory.writes import ADD, DELETE, OBJECT_CLASS_VIOLATION, ConnectionLost, MemberChange, WriteError
from ..errors import RbacMigrateError
from ..model import (
    STEP_APPLIED,
    STEP_FAILED,
    STEP_INFLIGHT,
    STEP_PENDING,
    STEP_UNDOING,
    STEP_UNDONE,
    Batch,
    BatchUser,
    Step,
)
from ..store import journal
from .guards import PLACEHOLDER, GuardRails
from .live import FaultInjector, LiveView


class MigrationError(RbacMigrateError):
    """A batch stopped; the message says what happened and what to run next."""


class Engine:
    """Writes a batch's steps through one directory connection, journaling in the store."""

    def __init__(self, store, directory, settings, progress: Callable[[str], None] | None = None):
        self.store = store
        self.directory = directory
        self.settings = settings
        self.writer = directory.writer()
        self.view = LiveView(directory, settings)
        self.guards = GuardRails(self.view, settings)
        self.transactions = (
            settings.transactions == "auto" and settings.flavour != "ad" and directory.capabilities().transactions
        )
        self.faults = FaultInjector()
        self.progress = progress or (lambda _text: None)

    # -- journal --------------------------------------------------------------------------

    def mark_steps(self, batch: Batch, steps: list[Step], state: str) -> None:
        with self.store.begin() as conn:
            journal.set_steps(conn, batch.id, [s.seq for s in steps], state)
        for step in steps:
            step.state = state

    def mark_user(self, batch: Batch, user: BatchUser, state: str, message: str | None = None) -> None:
        with self.store.begin() as conn:
            journal.set_user(conn, batch.id, user.position, state, message)
        user.state, user.message = state, message

    # -- reading back ---------------------------------------------------------------------

    def is_present(self, step: Step) -> bool | None:
        """Whether the step's value (entry steps: the entry) is in the directory now; None: no group."""
        if step.is_entry:
            return self.directory.read_entry(step.group_dn, ["1.1"]) is not None
        return self.writer.has_member(step.group_dn, step.value)

    # -- writing --------------------------------------------------------------------------

    def write(self, batch: Batch, steps: list[Step], undo: bool) -> None:
        """Write steps (or their inverses) as one unit where the server offers transactions."""
        if not steps:
            return
        self.guards.check(steps, undo=undo, limits=False)
        inflight, done = (STEP_UNDOING, STEP_UNDONE) if undo else (STEP_INFLIGHT, STEP_APPLIED)
        units = [steps] if self.transactions else [[s] for s in steps]
        for unit in units:
            self.mark_steps(batch, unit, inflight)
            self.faults.point()
            try:
                with self.writer.transaction() if self.transactions else nullcontext():
                    for group_dn, changes in _by_group(unit, undo):
                        self._send(batch, unit, group_dn, changes, undo)
            except WriteError as exc:
                if not (self.transactions and exc.code == OBJECT_CLASS_VIOLATION):
                    raise
                # The transaction would empty a group: nothing was written; again value by value,
                # adding before deleting, so the modify that empties a group can keep it open.
                for group_dn, changes in _by_group(unit, undo):
                    self._send(batch, unit, group_dn, changes, undo)
            self.faults.point()
            self.view.forget(s.group_dn for s in unit if s.is_entry)
            self._record_created(batch, unit, undo)
            self.mark_steps(batch, unit, done)

    def _send(self, batch: Batch, unit: list[Step], group_dn: str, changes: list, undo: bool) -> None:
        if isinstance(changes, Step):
            step = changes
            creating = (step.op == "create") != undo
            if creating:
                attrs = {k: list(v) for k, v in step.detail.get("attributes", {}).items()}
                classes = attrs.pop("objectClass", None) or attrs.pop("objectclass", [])
                self.writer.add_entry(group_dn, classes, attrs)
            else:
                self.writer.delete_entry(group_dn)
            return
        try:
            self.writer.change_members(group_dn, changes)
        except WriteError as exc:
            deleting = any(c.op == DELETE for c in changes)
            if exc.code != OBJECT_CLASS_VIOLATION or self.settings.flavour == "ad" or not deleting:
                raise
            # groupOfNames keeps one value: the empty DN names nobody and holds the group open.
            self.writer.change_members(group_dn, [*changes, MemberChange(ADD, group_dn, PLACEHOLDER)])
            if not undo:  # journaled, so that rollback takes it away again with the values it restores
                self._journal_placeholder(batch, unit, group_dn)

    def _journal_placeholder(self, batch: Batch, unit: list[Step], group_dn: str) -> None:
        first = next(s for s in unit if s.group_dn == group_dn)
        step = Step(max(s.seq for s in batch.steps) + 1, first.position, ADD, group_dn, first.group_uuid, PLACEHOLDER)
        step.state = STEP_APPLIED
        step.detail = {"placeholder": True}
        with self.store.begin() as conn:
            journal.add_step(conn, batch.id, step)
        batch.steps.append(step)

    def _record_created(self, batch: Batch, steps: list[Step], undo: bool) -> None:
        """A created entry gets its identity from the server: journal it, so rollback knows it."""
        for step in steps:
            if step.is_entry and (step.op == "create") != undo:
                uuid = self.view.uuid_of(step.group_dn)
                with self.store.begin() as conn:
                    journal.set_step_uuid(conn, batch.id, step.seq, uuid)
                step.group_uuid = uuid

    def settle(self, batch: Batch, steps: list[Step]) -> None:
        """Decide in-flight steps by reading the directory: applied, or back to where they were."""
        for step in steps:
            if step.state not in (STEP_INFLIGHT, STEP_UNDOING):
                continue
            present = self.is_present(step)
            if step.state == STEP_INFLIGHT:
                self.mark_steps(batch, [step], STEP_APPLIED if present == step.present_after else STEP_PENDING)
            else:
                self.mark_steps(batch, [step], STEP_UNDONE if present != step.present_after else STEP_APPLIED)
            if step.is_entry and step.state == STEP_APPLIED and step.op == "create" and step.group_uuid is None:
                self._record_created(batch, [step], undo=False)

    # -- forwards -------------------------------------------------------------------------

    def apply_user(self, batch: Batch, user: BatchUser) -> None:
        """Apply a unit's pending steps (additions first), verify, or restore and stop."""
        steps = batch.steps_of(user.position)
        self.settle(batch, steps)
        pending = [s for s in steps if s.state == STEP_PENDING]
        # Without a transaction, adding before removing means no moment without access.
        pending.sort(key=lambda s: (_order(s.op), s.seq))
        try:
            self.write(batch, pending, undo=False)
        except ConnectionLost:
            raise
        except WriteError as exc:
            self.mark_steps(batch, [s for s in pending if s.state == STEP_INFLIGHT], STEP_FAILED)
            self.restore_user(batch, user)
            raise MigrationError(f"{user.user_dn}: {exc}; this unit was restored and the batch stopped") from None
        self.verify_user(batch, user)

    def verify_user(self, batch: Batch, user: BatchUser) -> None:
        problems = self.check_after(batch.steps_of(user.position), user, undone=False)
        if not problems:
            self.mark_user(batch, user, "verified")
            return
        self.restore_user(batch, user)
        raise MigrationError(f"{user.user_dn}: {problems[0]}; this unit was restored and the batch stopped")

    def check_after(self, steps: list[Step], user: BatchUser, undone: bool) -> list[str]:
        """Read back every value the unit touched and every subject's access; problems, or none."""
        problems = []
        for step in steps:
            if step.state not in ((STEP_UNDONE,) if undone else (STEP_APPLIED,)):
                continue
            want = step.present_after != undone
            if self.is_present(step) is not want:
                what = step.group_dn if step.is_entry else f"{step.value} in {step.group_dn}"
                problems.append(f"{what} is {'absent' if want else 'still present'} after the write")
        for subject in user.subjects:
            expected = subject.before if undone else subject.after
            now = self.view.access(subject.dn)
            if now != expected:
                gained, lost = sorted(now - expected), sorted(expected - now)
                problems.append(f"effective access of {subject.dn} changed (gained {gained}, lost {lost})")
        return problems

    # -- backwards ------------------------------------------------------------------------

    def restore_user(self, batch: Batch, user: BatchUser) -> None:
        """Undo what was applied for this unit (additions undone last)."""
        steps = batch.steps_of(user.position)
        self.settle(batch, steps)
        applied = [s for s in steps if s.state == STEP_APPLIED]
        applied.sort(key=lambda s: (-_order(s.op), -s.seq))
        self.write(batch, applied, undo=True)
        self.mark_user(batch, user, "restored")


def _order(op: str) -> int:
    """Entries are created first and removed last; values are added before others are deleted."""
    return {"create": 0, "add": 1, "delete": 2, "remove": 3}[op]


def _by_group(steps: list[Step], undo: bool) -> list[tuple[str, list[MemberChange] | Step]]:
    """Value changes grouped per entry (one atomic modify each), keeping order; entry steps alone."""
    grouped: list[tuple[str, list[MemberChange] | Step]] = []
    open_modify: dict[str, list[MemberChange]] = {}
    for step in steps:
        if step.is_entry:
            grouped.append((step.group_dn, step))
            open_modify.clear()
            continue
        op = step.op if not undo else ("delete" if step.op == "add" else "add")
        change = MemberChange(op, step.group_dn, step.value)
        if step.group_dn in open_modify:
            open_modify[step.group_dn].append(change)
        else:
            open_modify[step.group_dn] = [change]
            grouped.append((step.group_dn, open_modify[step.group_dn]))
    return grouped
