"""Role plans and how they are carried out.

A plan is value-level steps on groups. Carrying it out: read the prior member values of every
group it touches and commit them to the store (the rollback point); write all steps in one
RFC 5805 transaction where the server offers one (else in order, undoing on refusal); then
update the catalogue, its history and the audit log in one store transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from .audit import new_record
from .config import Settings
from .errors import RbacMigrateError
from .model import RoleUpdate
from .roles import live
from .store import Store
from .store.roles import GroupPrior


class RoleCommandError(RbacMigrateError):
    """A role command cannot go ahead as asked."""


@dataclass
class GroupStep:
    """One LDAP operation on one group: create it, change member values, or remove it."""

    dn: str
    create: dict[str, list[str]] | None = None
    add: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    remove: bool = False

    @property
    def empty(self) -> bool:
        return self.create is None and not self.add and not self.delete and not self.remove

    def changes(self) -> tuple[tuple[str, str], ...]:
        if self.create is not None:
            return (("create", self.dn),)
        if self.remove:
            return (("remove", self.dn),)
        return tuple([("add", v) for v in self.add] + [("delete", v) for v in self.delete])

    def values(self) -> list[str]:
        members = (self.create or {}).get("member", []) + (self.create or {}).get("uniqueMember", [])
        return [v for v in [*members, *self.add, *self.delete] if v]


@dataclass
class RolePlan:
    """What a command will do, shown before it asks, and what the catalogue records after."""

    action: str
    role_dn: str
    question: str
    lines: list[str] = field(default_factory=list)
    steps: list[GroupStep] = field(default_factory=list)
    updates: list[RoleUpdate] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return all(step.empty for step in self.steps)


@dataclass(frozen=True)
class Outcome:
    plan: RolePlan
    change_id: int | None  # the rollback point; None when there was nothing to do


Ask = Callable[[RolePlan], None]


def run(settings: Settings, store: Store, directory, plan: RolePlan, ticket: str | None, ask: Ask | None) -> Outcome:
    """Check the guard rails, ask, and carry the plan out; a plan with nothing to do is not asked about."""
    if plan.empty:
        return Outcome(plan, None)
    _guard(settings, plan)
    if ask is not None:
        ask(plan)
    return Outcome(plan, _execute(settings, store, directory, plan, ticket))


def _guard(settings: Settings, plan: RolePlan) -> None:
    """Only groups under the grant and role bases are written; protected accounts never move."""
    for step in plan.steps:
        if live.kind_of(settings, step.dn) is None:
            raise RoleCommandError(f"refusing to write {step.dn}: it is outside grant_base and role_base")
        for value in step.values():
            if live.kind_of(settings, value) is None and live.is_protected(settings, value):
                raise RoleCommandError(f"refusing to change the groups of {value}: it is a protected account")


def _execute(settings: Settings, store: Store, directory, plan: RolePlan, ticket: str | None) -> int | None:
    priors = []
    for step in plan.steps:
        values = live.member_values(directory, settings, step.dn)
        # Someone may have made part of the change since the plan was shown: skip it, do not fail on it.
        step.add = [v for v in step.add if not live.contains(values, v)]
        step.delete = [v for v in step.delete if live.contains(values, v)]
        step.remove = step.remove and values is not None
        priors.append(GroupPrior(step.dn, values is not None, tuple(values or ()), step.changes()))
    if plan.empty:
        return None
    from .directory.writes import WriteError  # ldap3 loads only when something is written

    change_id = store.roles.begin_change(plan.action, plan.role_dn, ticket, priors)
    try:
        _write(settings, directory, [s for s in plan.steps if not s.empty])
    except WriteError as exc:  # refused: the transaction was aborted, or the steps before it undone
        store.roles.fail_change(change_id, str(exc))
        raise RoleCommandError(f"{exc}; nothing was changed (rollback point {change_id})") from None
    except RbacMigrateError as exc:
        store.roles.fail_change(change_id, str(exc))
        raise RoleCommandError(
            f"{exc}; the directory may be partly changed: compare it with rollback point {change_id}"
        ) from None
    records = [_record(plan, step, prior, change_id, ticket) for step, prior in zip(plan.steps, priors, strict=True)]
    store.roles.finish_change(change_id, ticket, plan.updates, [r for r in records if r is not None])
    return change_id


def _write(settings: Settings, directory, steps: list[GroupStep]) -> None:
    """All steps in one RFC 5805 transaction, or in order with the done ones undone on failure."""
    from .directory.writes import WriteError

    writer = directory.writer()
    transactions = (
        settings.values.get("transactions", "auto") == "auto"
        and settings.flavour != "ad"
        and directory.capabilities().transactions
    )
    done: list[GroupStep] = []
    try:
        with writer.transaction() if transactions else nullcontext():
            for step in steps:
                _apply(writer, step)
                done.append(step)
    except WriteError:
        if transactions:
            raise
        try:
            for step in reversed(done):
                _apply(writer, _inverse(step))
        except RbacMigrateError as undo_error:
            raise RbacMigrateError(
                f"a write was refused and undoing the ones before it failed ({undo_error})"
            ) from None
        raise


def _apply(writer, step: GroupStep) -> None:
    from .directory.writes import ADD, DELETE, MemberChange

    if step.create is not None:
        attrs = {k: v for k, v in step.create.items() if k != "objectClass"}
        writer.add_entry(step.dn, step.create["objectClass"], attrs)
    elif step.remove:
        writer.delete_entry(step.dn)
    else:
        changes = [MemberChange(ADD, step.dn, v) for v in step.add]
        writer.change_members(step.dn, changes + [MemberChange(DELETE, step.dn, v) for v in step.delete])


def _inverse(step: GroupStep) -> GroupStep:
    if step.create is not None:
        return GroupStep(step.dn, remove=True)
    return GroupStep(step.dn, add=list(step.delete), delete=list(step.add))


def _record(plan: RolePlan, step: GroupStep, prior: GroupPrior, change_id: int, ticket: str | None):
    if step.empty:
        return None
    before_members = list(prior.prior_members)
    if step.create is not None:
        before, after = None, dict(step.create)
    elif step.remove:
        before, after = {"member": before_members}, None
    else:
        touched = [*step.add, *step.delete]
        before = {"member": [v for v in touched if live.contains(before_members, v)]}
        after = {"member": list(step.add)}
    op = "create" if step.create is not None else "remove" if step.remove else "modify"
    return new_record(
        plan.action, step.dn, ticket, change=change_id, role=plan.role_dn, op=op, before=before, after=after
    )
