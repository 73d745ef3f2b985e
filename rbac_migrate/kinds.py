"""What an entry of a snapshot is, who it is across snapshots, and a snapshot's listing line.

Kept apart from ``model``'s data classes so that ``snapshot take``, which needs only these,
starts without building the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .dn import normalize
from .errors import NotFoundError

USER = "user"
GRANT = "grant"
ROLE = "role"
EXTERNAL = "external"  # exists in the directory, outside the managed users and groups
DANGLING = "dangling"  # a member value that points at no entry
GROUP_KINDS = (GRANT, ROLE)
# The object classes a grant or role group may have: OpenLDAP's two, and Active Directory's.
GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
KINDS = (USER, GRANT, ROLE, EXTERNAL, DANGLING)


def identity_key(uuid: str | None, dn: str) -> str:
    """Who an entry is across snapshots and batches: its entryUUID / objectGUID, else its DN.

    Identity, not DN: an account re-created under an old DN is a different person.
    """
    return uuid or f"dn:{normalize(dn)}"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What a snapshot listing shows."""

    id: int
    taken_at: datetime
    source: str
    users: int
    grants: int
    roles: int
    memberships: int


def pick_snapshot(listing: Sequence[SnapshotInfo], ref: int | str | None) -> SnapshotInfo:
    """The snapshot named by id, 'latest' / None, or a negative offset (-1 = previous)."""
    if not listing:
        raise NotFoundError("no snapshot yet: run 'rbac-migrate snapshot take'")
    if ref in (None, "latest"):
        return listing[-1]
    try:
        number = int(ref)
    except (TypeError, ValueError):
        raise NotFoundError(f"snapshot '{ref}' is not a number or 'latest'") from None
    if number < 0 and -number <= len(listing):
        return listing[number - 1]
    for info in listing:
        if info.id == number:
            return info
    raise NotFoundError(f"no snapshot {ref}: 'rbac-migrate snapshot list' shows them")
