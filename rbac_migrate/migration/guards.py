"""Guard rails, checked against the live directory before every write, whatever asked for it.

Flags, a plan file, a journal row or a playbook all reach the directory through the engine, and
the engine calls ``GuardRails.check`` on exactly the steps it is about to write. Nothing here
trusts a name, a DN or an identity it was handed: protected accounts are resolved to identities
live, and every group and member value must be the entry it claims to be.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import dn as dnutil
from ..errors import RbacMigrateError
from ..model import Step
from .live import LiveView

# The empty DN names no entry: it holds a groupOfNames open once its last real member has left.
PLACEHOLDER = ""


class GuardError(RbacMigrateError):
    """A guard rail refused the write; nothing was written."""


class GuardRails:
    """The limits from the settings, with protected accounts resolved to live identities."""

    def __init__(self, view: LiveView, settings):
        self.view = view
        self.settings = settings
        self._protected: tuple[frozenset[str], frozenset[str]] | None = None

    def writable(self, group_dn: str) -> bool:
        """Only groups strictly under the grant or role base are ever written."""
        for base in (self.settings.grant_base, self.settings.role_base):
            if base and dnutil.is_within(group_dn, base) and dnutil.normalize(group_dn) != dnutil.normalize(base):
                return True
        return False

    def protected(self) -> tuple[frozenset[str], frozenset[str]]:
        """(identities, normalised DNs) of the protected accounts as the directory has them now."""
        if self._protected is None:
            uuids: set[str] = set()
            dns: set[str] = set()
            for item in self.settings.protected_accounts:
                for dn in self._resolve(item):
                    dns.add(dnutil.normalize(dn))
                    uuid = self.view.uuid_of(dn)
                    if uuid:
                        uuids.add(uuid.lower())
            self._protected = (frozenset(uuids), frozenset(dns))
        return self._protected

    def _resolve(self, item: str) -> list[str]:
        item = item.strip()
        if not item:
            return []
        if "=" in item:
            return [item]
        from ..directory import escape_filter_chars

        if not self.settings.user_base:
            raise GuardError(f"protected_accounts names '{item}' by id: set user_base so it can be found")
        id_attr = self.settings.id_attribute
        search_filter = f"({id_attr}={escape_filter_chars(item)})"
        found = [dn for dn, _ in self.view.directory.search(self.settings.user_base, search_filter, ["1.1"])]
        return found

    def is_protected(self, dn: str, uuid: str | None) -> bool:
        uuids, dns = self.protected()
        return (uuid is not None and uuid.lower() in uuids) or dnutil.normalize(dn) in dns

    def check(self, steps: Iterable[Step], *, undo: bool = False, limits: bool = True) -> None:
        """Refuse, naming the first problem, unless every step may be written as it stands."""
        steps = list(steps)
        if limits:
            self._check_limits(steps, undo)
        for step in steps:
            self._check_step(step, undo)

    def _check_limits(self, steps: list[Step], undo: bool) -> None:
        ops = [_effective_op(step, undo) for step in steps]
        removals = sum(1 for op in ops if op == "delete")
        if removals > self.settings.max_removals_per_run:
            raise GuardError(
                f"{removals} member values would be deleted, more than max_removals_per_run "
                f"{self.settings.max_removals_per_run}: split the change into smaller batches"
            )
        accounts = {
            dnutil.normalize(step.value)
            for step in steps
            if not step.is_entry and step.value and not self.writable(step.value)
        }
        if len(accounts) > self.settings.max_batch_size:
            raise GuardError(
                f"{len(accounts)} accounts would change, more than max_batch_size "
                f"{self.settings.max_batch_size}: split the change into smaller batches"
            )

    def _check_step(self, step: Step, undo: bool) -> None:
        if not self.writable(step.group_dn):
            raise GuardError(f"{step.group_dn} is outside grant_base and role_base: it is never written")
        op = _effective_op(step, undo)
        if step.is_entry:
            self._check_entry(step, op)
            return
        if step.value and self.is_protected(step.value, step.value_uuid):
            raise GuardError(f"{step.value} is a protected account: it is never changed")
        self._check_identity(step.group_dn, step.group_uuid, "group")
        if step.value == PLACEHOLDER or step.detail.get("created_here"):
            return  # the empty DN names nobody; an entry this batch creates has no identity before it
        live = self.view.uuid_of(step.value)
        if step.detail.get("dangling"):
            # Deleted as naming nobody; only rollback puts such a value back, and only while it still names nobody.
            if live is not None or (op != "delete" and not undo):
                raise GuardError(f"{step.value} is not a dangling member value: refusing to {op} it as one")
            return
        if step.value_uuid is None:
            raise GuardError(f"{step.value} has no recorded identity: refusing to change its memberships")
        if live is None:
            raise GuardError(f"{step.value} does not exist in the directory: refusing to change its memberships")
        if live.lower() != step.value_uuid.lower():
            raise GuardError(f"{step.value} is not the entry the change was made for (it was deleted and re-created)")

    def _check_entry(self, step: Step, op: str) -> None:
        if op == "create":
            if self.view.uuid_of(step.group_dn) is not None:
                raise GuardError(f"{step.group_dn} already exists: refusing to create it")
            attributes = step.detail.get("attributes", {})
            members = [v for k, vs in attributes.items() if k.lower() in ("member", "uniquemember") for v in vs]
            for value in members:
                if value and self.is_protected(value, self.view.uuid_of(value)):
                    raise GuardError(f"{value} is a protected account: it is never changed")
            return
        self._check_identity(step.group_dn, step.group_uuid, "group")

    def _check_identity(self, dn: str, uuid: str | None, what: str) -> None:
        if uuid is None:
            raise GuardError(f"{what} {dn} has no recorded identity: refusing to write it")
        live = self.view.uuid_of(dn)
        if live is None:
            raise GuardError(f"{what} {dn} does not exist in the directory")
        if live.lower() != uuid.lower():
            raise GuardError(f"{what} {dn} is not the entry the change was made for (it was deleted and re-created)")


def _effective_op(step: Step, undo: bool) -> str:
    if not undo:
        return step.op
    return {"add": "delete", "delete": "add", "create": "remove", "remove": "create"}[step.op]
