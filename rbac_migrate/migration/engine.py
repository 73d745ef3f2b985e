"""Apply, resume and undo value-level steps user by user, journaling each as it happens.

Order of events for every user: the journal says a step is in flight, the directory is written,
the journal says it is applied. A crash between any two leaves steps "in flight"; they are settled
by reading the directory back, never by writing again blindly.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from ..directory.writes import ConnectionLost, MemberChange, WriteError
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
from .live import FaultInjector, live_access


class MigrationError(RbacMigrateError):
    """A batch stopped; the message says what happened and what to run next."""


class Engine:
    """Writes a batch's steps through one directory connection, journaling in the store."""

    def __init__(self, store, directory, settings, progress: Callable[[str], None] | None = None):
        self.store = store
        self.directory = directory
        self.settings = settings
        self.writer = directory.writer()
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

    # -- writing --------------------------------------------------------------------------

    def write(self, batch: Batch, steps: list[Step], undo: bool) -> None:
        """Write steps (or their inverses) as one unit where the server offers transactions."""
        if not steps:
            return
        inflight, done = (STEP_UNDOING, STEP_UNDONE) if undo else (STEP_INFLIGHT, STEP_APPLIED)
        units = [steps] if self.transactions else [[s] for s in steps]
        for unit in units:
            self.mark_steps(batch, unit, inflight)
            self.faults.point()
            with self.writer.transaction() if self.transactions else nullcontext():
                for group_dn, changes in _by_group(unit, undo):
                    self.writer.change_members(group_dn, changes)
            self.faults.point()
            self.mark_steps(batch, unit, done)

    def settle(self, batch: Batch, steps: list[Step]) -> None:
        """Decide in-flight steps by reading the directory: applied, or back to where they were."""
        for step in steps:
            if step.state not in (STEP_INFLIGHT, STEP_UNDOING):
                continue
            present = self.writer.has_member(step.group_dn, step.value)
            if step.state == STEP_INFLIGHT:
                self.mark_steps(batch, [step], STEP_APPLIED if present == step.present_after else STEP_PENDING)
            else:
                self.mark_steps(batch, [step], STEP_UNDONE if present != step.present_after else STEP_APPLIED)

    # -- forwards -------------------------------------------------------------------------

    def apply_user(self, batch: Batch, user: BatchUser) -> None:
        """Apply a user's pending steps (role first), verify access, or restore and stop."""
        steps = batch.steps_of(user.position)
        self.settle(batch, steps)
        pending = [s for s in steps if s.state == STEP_PENDING]
        # Without a transaction, adding the role before removing grants means no moment without access.
        pending.sort(key=lambda s: (s.op != "add", s.seq))
        try:
            self.write(batch, pending, undo=False)
        except ConnectionLost:
            raise
        except WriteError as exc:
            self.mark_steps(batch, [s for s in pending if s.state == STEP_INFLIGHT], STEP_FAILED)
            self.restore_user(batch, user)
            raise MigrationError(f"{user.user_dn}: {exc}; this user was restored and the batch stopped") from None
        self.verify_user(batch, user)

    def verify_user(self, batch: Batch, user: BatchUser) -> None:
        before = set(user.before_access)
        approved = set(_approved_gain(batch, user))
        now = set(live_access(self.directory, self.settings, user.user_dn))
        if now == before | approved:
            self.mark_user(batch, user, "verified")
            return
        gained, lost = sorted(now - before - approved), sorted(before - now)
        self.restore_user(batch, user)
        raise MigrationError(
            f"{user.user_dn}: effective access changed (gained {gained}, lost {lost}); "
            "this user was restored and the batch stopped"
        )

    # -- backwards ------------------------------------------------------------------------

    def restore_user(self, batch: Batch, user: BatchUser) -> None:
        """Undo what was applied for this user (grants back before the role goes)."""
        steps = batch.steps_of(user.position)
        self.settle(batch, steps)
        applied = [s for s in steps if s.state == STEP_APPLIED]
        applied.sort(key=lambda s: (s.op != "delete", -s.seq))
        self.write(batch, applied, undo=True)
        self.mark_user(batch, user, "restored")


def _by_group(steps: list[Step], undo: bool) -> list[tuple[str, list[MemberChange]]]:
    """Group changes per entry (one atomic modify each), keeping first-seen order."""
    grouped: dict[str, list[MemberChange]] = {}
    for step in steps:
        op = step.op if not undo else ("delete" if step.op == "add" else "add")
        grouped.setdefault(step.group_dn, []).append(MemberChange(op, step.group_dn, step.value))
    return list(grouped.items())


def _approved_gain(batch: Batch, user: BatchUser) -> list[str]:
    for planned in batch.plan.get("users", []):
        if planned["dn"] == user.user_dn:
            return planned.get("gain", [])
    return []
