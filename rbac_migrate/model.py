"""Plain data shared by every layer: entries of a snapshot and the snapshot itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .kinds import DANGLING, EXTERNAL, GRANT, GROUP_KINDS, KINDS, ROLE, USER, SnapshotInfo, identity_key

__all__ = ["DANGLING", "EXTERNAL", "GRANT", "GROUP_KINDS", "KINDS", "ROLE", "USER", "SnapshotInfo", "identity_key"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A user, group or member target as seen in one snapshot."""

    idx: int
    kind: str
    dn: str
    name: str
    uuid: str | None = None
    enabled: bool = True
    attrs: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_group(self) -> bool:
        return self.kind in GROUP_KINDS


@dataclass
class Snapshot:
    """A point-in-time copy of users, groups and memberships.

    ``members`` maps a group's idx to the idx of each of its member values, in directory order.
    """

    taken_at: datetime
    source: str
    flavour: str
    bases: Mapping[str, str]
    entries: list[Entry]
    members: dict[int, tuple[int, ...]]
    id: int | None = None

    def of_kind(self, *kinds: str) -> list[Entry]:
        return [e for e in self.entries if e.kind in kinds]

    def info(self) -> SnapshotInfo:
        counts = {kind: 0 for kind in KINDS}
        for entry in self.entries:
            counts[entry.kind] += 1
        return SnapshotInfo(
            id=self.id or 0,
            taken_at=self.taken_at,
            source=self.source,
            users=counts[USER],
            grants=counts[GRANT],
            roles=counts[ROLE],
            memberships=sum(len(m) for m in self.members.values()),
        )


# -- the change journal ---------------------------------------------------------------------

STEP_PENDING, STEP_INFLIGHT, STEP_APPLIED, STEP_FAILED = "pending", "inflight", "applied", "failed"
STEP_UNDOING, STEP_UNDONE = "undoing", "undone"


@dataclass
class Step:
    """One change of a batch, journaled: a member value added or deleted, or a group created or removed.

    ``value`` is the member value (empty for entry steps); ``detail`` holds a created or removed
    entry's attributes, and ``{"dangling": true}`` for a value known to name no entry.
    """

    seq: int
    position: int  # which unit of the batch it belongs to
    op: str  # add | delete | create | remove
    group_dn: str
    group_uuid: str | None
    value: str
    state: str = STEP_PENDING
    value_uuid: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def present_after(self) -> bool:
        """Whether the value (or, for entry steps, the entry) is there once the step is applied."""
        return self.op in ("add", "create")

    @property
    def is_entry(self) -> bool:
        return self.op in ("create", "remove")


@dataclass(frozen=True)
class SubjectAccess:
    """A user whose effective access a unit must leave exactly at ``after`` (normalised grant DNs)."""

    dn: str
    uuid: str | None
    before: frozenset[str]
    after: frozenset[str]


@dataclass
class BatchUser:
    """One unit of a batch: its steps are written together, then every subject is verified."""

    position: int
    user_dn: str  # the unit's label entry: the user for per-user units, else the group changed
    user_uuid: str | None
    before_access: list[str]
    state: str = "pending"
    message: str | None = None
    subjects: list[SubjectAccess] = field(default_factory=list)


@dataclass
class Batch:
    """An applied (or applying) plan with its rollback point: the users, steps and prior access."""

    id: int
    kind: str
    role_dn: str | None
    role_uuid: str | None
    status: str
    operator: str
    ticket: str | None
    created_at: datetime
    finished_at: datetime | None
    holder: str | None
    message: str | None
    plan: dict  # the change set as written (changeset.to_dict)
    users: list[BatchUser] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def steps_of(self, position: int) -> list[Step]:
        return [s for s in self.steps if s.position == position]


@dataclass(frozen=True)
class MigrationBatch:
    """A migrate batch from the journal, with the latest state of each of its users."""

    id: int
    role_dn: str | None
    role_uuid: str | None
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    users: tuple[tuple[str, str], ...] = ()  # (user identity, state)


# -- the role catalogue -----------------------------------------------------------------------

ACTIVE, DELETED = "active", "deleted"


@dataclass(frozen=True)
class RoleDefinition:
    """A role as the catalogue in the store knows it; grants are grant-group DNs."""

    id: int
    name: str
    dn: str
    description: str | None
    grants: tuple[str, ...]
    state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RoleEvent:
    """One entry of a role's history."""

    at: datetime
    operator: str
    action: str
    ticket: str | None
    details: Mapping[str, Any]
    change_id: int | None = None


@dataclass(frozen=True)
class RoleUpdate:
    """What a finished role command leaves in the catalogue, and the history it adds.

    ``description`` None keeps the stored description; ``grants`` is the full list after the change.
    """

    name: str
    dn: str
    grants: tuple[str, ...]
    state: str = ACTIVE
    description: str | None = None
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


# -- findings: accepted exceptions and the register ------------------------------------------

OPEN, ACCEPTED, REMEDIATED, REAPPEARED = "open", "accepted", "remediated", "reappeared"


@dataclass(frozen=True)
class FindingException:
    """An accepted finding: this user may keep this group until ``expires``; keyed by identity."""

    id: int
    user_key: str
    user_name: str
    user_dn: str
    group_key: str
    group_name: str
    group_dn: str
    owner: str
    reason: str
    ticket: str | None
    expires: datetime  # the first moment it no longer applies
    created_at: datetime
    created_by: str

    def active(self, at: datetime) -> bool:
        return at < self.expires


@dataclass(frozen=True)
class RegisteredFinding:
    """A finding as the register keeps it across snapshots: dates, status and what fixed it."""

    key: str
    category: str
    user_key: str
    user_name: str
    group_key: str
    group_name: str
    member_value: str
    first_seen: datetime
    last_seen: datetime
    status: str  # open | accepted | remediated | reappeared
    status_at: datetime
    fixed_at: datetime | None = None
    fixed_batch: int | None = None
