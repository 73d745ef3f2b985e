"""Fresh reads of the directory: effective access now, and whether a plan still holds."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from .. import dn as dnutil
from ..errors import RbacMigrateError
from .plan import expected_members

FAULT_ENV = "RBAC_MIGRATE_FAULT_KILL_AT"


class DriftError(RbacMigrateError):
    """The directory no longer looks the way the plan expects."""


def live_access(directory, settings, user_dn: str) -> frozenset[str]:
    """The grant groups a user reaches right now (normalised DNs), nesting included."""
    seen: set[str] = set()
    frontier = [user_dn]
    while frontier:
        value = frontier.pop()
        for base in (settings.grant_base, settings.role_base):
            for group_dn, _attrs in directory.groups_with_member(value, base, ["1.1"]):
                norm = dnutil.normalize(group_dn)
                if norm not in seen:
                    seen.add(norm)
                    frontier.append(group_dn)
    return frozenset(
        g for g in seen if dnutil.is_within(g, settings.grant_base) and not dnutil.is_within(g, settings.role_base)
    )


def entry_uuid(directory, settings, dn: str) -> str | None:
    """The identity of the entry at dn now, or None when there is none."""
    attribute = "objectGUID" if settings.flavour == "ad" else "entryUUID"
    attrs = directory.read_entry(dn, [attribute])
    if attrs is None:
        return None
    return (attrs.get(attribute.lower()) or [None])[0]


@dataclass
class Drift:
    what: str

    def __str__(self) -> str:
        return self.what


def check_drift(directory, settings, plan: dict) -> list[Drift]:
    """Every way the directory differs from what the plan expects; empty when it still holds."""
    drifts: list[Drift] = []
    writer = directory.writer()
    role = plan["role"]
    if entry_uuid(directory, settings, role["dn"]) != role["uuid"]:
        drifts.append(Drift(f"role {role['dn']} is not the entry the plan was made for"))
    for user in plan["users"]:
        if entry_uuid(directory, settings, user["dn"]) != user["uuid"]:
            drifts.append(Drift(f"{user['dn']} is not the account the plan was made for (deleted or re-created)"))
            continue
        for change, expect in expected_members(user, applied=False):
            if entry_uuid(directory, settings, change["group_dn"]) != change["group_uuid"]:
                drifts.append(Drift(f"group {change['group_dn']} is not the group the plan was made for"))
            elif writer.has_member(change["group_dn"], user["dn"]) is not expect:
                state = "no longer holds" if expect else "already holds"
                drifts.append(Drift(f"{change['group_dn']} {state} {user['dn']}"))
        now = live_access(directory, settings, user["dn"])
        if now != frozenset(user["before"]):
            gained, lost = sorted(now - set(user["before"])), sorted(set(user["before"]) - now)
            drifts.append(Drift(f"{user['name']}: effective access changed since the plan (+{gained} -{lost})"))
    return drifts


class FaultInjector:
    """Kill this process with SIGKILL at the Nth write point, when the test environment asks for it.

    Write points are just before and just after every LDAP write; interruption tests use this to
    prove that a batch survives being killed anywhere.
    """

    def __init__(self) -> None:
        raw = os.environ.get(FAULT_ENV, "")
        self.kill_at = int(raw) if raw.isdigit() else None
        self.count = 0

    def point(self) -> None:
        self.count += 1
        if self.kill_at is not None and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
