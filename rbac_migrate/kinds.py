"""What an entry of a snapshot is, who it is across snapshots, and a snapshot's listing line.

Kept apart from ``model``'s data classes so that ``snapshot take``, which needs only these,
starts without building the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .dn import normalize

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
