"""Fresh reads of the directory for the engine: identities, memberships, effective access.

``LiveView`` caches what it read for the length of one command, and can say what a user's
effective access will be once a list of edits is applied (``expected_access``): the engine
verifies each unit against that promise, and plans are built from it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from .. import dn as dnutil
from ..changeset import ADD, CREATE, DELETE, REMOVE, Edit
from ..errors import RbacMigrateError

FAULT_ENV = "RBAC_MIGRATE_FAULT_KILL_AT"


class DriftError(RbacMigrateError):
    """The directory no longer looks the way the plan expects."""


def identity_attribute(settings) -> str:
    return "objectGUID" if settings.flavour == "ad" else "entryUUID"


def is_grant(settings, dn: str) -> bool:
    """A managed grant group: under grant_base and not under role_base."""
    return dnutil.is_within(dn, settings.grant_base) and not dnutil.is_within(dn, settings.role_base)


class LiveView:
    """Cached look-ups against the live directory, for one command."""

    def __init__(self, directory, settings):
        self.directory = directory
        self.settings = settings
        self._uuid: dict[str, str | None] = {}
        self._parents: dict[str, tuple[str, ...]] = {}
        self._spelling: dict[str, str] = {}  # normalised DN → as the server spells it

    def forget(self, entries: Iterable[str] = ()) -> None:
        """Drop memberships read so far (and the identities at these DNs): the directory was written."""
        self._parents.clear()
        for dn in entries:
            self._uuid.pop(dnutil.normalize(dn), None)

    def uuid_of(self, dn: str) -> str | None:
        """The identity of the entry at dn now, or None when there is none."""
        key = dnutil.normalize(dn)
        if key not in self._uuid:
            self._uuid[key] = entry_uuid(self.directory, self.settings, dn) if dn else None
        return self._uuid[key]

    def parents(self, value: str) -> tuple[str, ...]:
        """Normalised DNs of the managed groups (grants and roles) that hold value as a member."""
        key = dnutil.normalize(value)
        if key not in self._parents:
            found: set[str] = set()
            for base in (self.settings.grant_base, self.settings.role_base):
                for group_dn, _attrs in self.directory.groups_with_member(value, base, ["1.1"]):
                    key_of_group = dnutil.normalize(group_dn)
                    self._spelling.setdefault(key_of_group, group_dn)
                    found.add(key_of_group)
            self._parents[key] = tuple(sorted(found))
        return self._parents[key]

    def spelled(self, normalised_dn: str) -> str:
        """A group DN as the server spells it, for plans and messages people read."""
        return self._spelling.get(normalised_dn, normalised_dn)

    def access(self, user_dn: str) -> frozenset[str]:
        """The grant groups a user reaches now (normalised DNs), nesting included."""
        return self.expected_access(user_dn, ())

    def expected_access(self, user_dn: str, edits: Iterable[Edit]) -> frozenset[str]:
        """The grant groups the user would reach once ``edits`` are applied to the directory as it is."""
        added: dict[str, set[str]] = {}
        deleted: dict[str, set[str]] = {}
        removed: set[str] = set()
        for edit in edits:
            group = dnutil.normalize(edit.group.dn)
            if edit.op in (ADD, DELETE) and edit.member is not None:
                target = added if edit.op == ADD else deleted
                target.setdefault(dnutil.normalize(edit.member.dn), set()).add(group)
            elif edit.op == CREATE:
                removed.discard(group)
                for value in edit.attribute_map().get(self.settings.member_attribute, []):
                    added.setdefault(dnutil.normalize(value), set()).add(group)
            elif edit.op == REMOVE:
                removed.add(group)
        seen: set[str] = set()
        frontier = [user_dn]
        while frontier:
            value = frontier.pop()
            key = dnutil.normalize(value)
            groups = (set(self.parents(value)) - deleted.get(key, set())) | added.get(key, set())
            for group in groups - removed - seen:
                seen.add(group)
                frontier.append(group)
        return frozenset(g for g in seen if is_grant(self.settings, g))


def live_access(directory, settings, user_dn: str) -> frozenset[str]:
    """The grant groups a user reaches right now (normalised DNs), nesting included."""
    return LiveView(directory, settings).access(user_dn)


def entry_uuid(directory, settings, dn: str) -> str | None:
    """The identity of the entry at dn now, or None when there is none."""
    attribute = identity_attribute(settings)
    attrs = directory.read_entry(dn, [attribute])
    if attrs is None:
        return None
    return (attrs.get(attribute.lower()) or [None])[0]


class FaultInjector:
    """Kill this process with SIGKILL at the Nth write point, when the test environment asks for it.

    Write points are just before and just after every LDAP write; interruption tests use this to
    prove that a batch survives being killed anywhere (apply, resume and rollback alike).
    """

    def __init__(self) -> None:
        raw = os.environ.get(FAULT_ENV, "")
        self.kill_at = int(raw) if raw.isdigit() else None
        self.count = 0

    def point(self) -> None:
        self.count += 1
        if self.kill_at is not None and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
