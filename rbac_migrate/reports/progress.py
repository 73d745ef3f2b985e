"""Migration progress: pure, from snapshots (who holds roles) and the migration journal (batches)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .. import dn as dnutil
from ..access import MembershipGraph
from ..model import GRANT, ROLE, USER, MigrationBatch, Snapshot, SnapshotInfo
from .provenance import iso, snapshot_fields

if TYPE_CHECKING:
    from .register import FindingsMetrics

MIGRATED = ("applied", "verified")
UNDONE = ("restored", "rolled_back")
UNFINISHED = ("prepared", "running", "interrupted")


@dataclass(frozen=True)
class ProgressPoint:
    """Where one snapshot stood: role coverage and direct grants still held by enabled users."""

    snapshot: SnapshotInfo
    users: int
    with_roles: int
    direct_grants: int
    covered: int  # direct grants the holder's roles also give: ready to remove
    holders: dict[str, int] = field(default_factory=dict)  # role name → enabled holders

    @property
    def share(self) -> float:
        return self.with_roles / self.users if self.users else 0.0


@dataclass(frozen=True)
class RoleProgress:
    """One role now: holders from the latest snapshot, migration state from the journal."""

    role: str
    dn: str
    holders: int
    still_direct: int  # holders who still hold a direct grant the role gives
    batches: int
    migrated: int
    rolled_back: int
    conflicts: int
    pending: int
    state: str


@dataclass
class ProgressReport:
    snapshot: SnapshotInfo
    flavour: str
    bases: Mapping[str, str]
    points: list[ProgressPoint]
    roles: list[RoleProgress]
    findings: FindingsMetrics | None = None  # the findings register, when the store has one
    provenance: dict = field(default_factory=dict)

    def document(self) -> dict:
        return {
            "snapshot": snapshot_fields(self.snapshot, self.flavour, self.bases),
            "provenance": self.provenance,
            "findings": self.findings.document() if self.findings else None,
            "over_time": [
                {
                    "snapshot": p.snapshot.id,
                    "taken_at": iso(p.snapshot.taken_at),
                    "users": p.users,
                    "with_roles": p.with_roles,
                    "share_with_roles": round(p.share, 4),
                    "direct_grants": p.direct_grants,
                    "covered_by_roles": p.covered,
                    "holders": p.holders,
                }
                for p in self.points
            ],
            "roles": [vars(r) for r in self.roles],
        }


def progress_report(snapshots: Iterable[Snapshot], batches: Iterable[MigrationBatch]) -> ProgressReport:
    """Progress over the snapshots (oldest to newest) and per role in the newest."""
    points: list[ProgressPoint] = []
    last: tuple[Snapshot, dict[int, tuple[int, int]]] | None = None
    for position, snap in enumerate(snapshots, start=1):
        info = replace(snap.info(), id=snap.id if snap.id is not None else position)
        point, per_role = _coverage(info, snap)
        points.append(point)
        last = (snap, per_role)
    if last is None:
        raise ValueError("progress_report needs at least one snapshot")
    snap, per_role = last
    roles = _roles(snap, per_role, list(batches))
    return ProgressReport(points[-1].snapshot, snap.flavour, dict(snap.bases), points, roles)


def _coverage(info: SnapshotInfo, snap: Snapshot) -> tuple[ProgressPoint, dict[int, tuple[int, int]]]:
    """The snapshot's totals, and per role: enabled holders and how many still hold a grant it gives directly."""
    graph = MembershipGraph(snap)
    by_idx = graph.by_idx
    enabled = {e.idx for e in snap.entries if e.kind == USER and e.enabled}
    roles = {u: r for u, r in graph.roles_by_user().items() if u in enabled}
    graph.index(roles)
    direct = sum(len(enabled.intersection(m)) for g, m in snap.members.items() if by_idx[g].kind == GRANT)
    covered = 0
    holders: Counter[int] = Counter()
    still: Counter[int] = Counter()
    for user, held in roles.items():
        grants = graph.grant_ids.intersection(graph.groups_of(user))
        given = set().union(*(graph.above(r) for r in held))
        covered += len(grants & given)
        for role in held:
            holders[role] += 1
            still[role] += bool(grants & graph.above(role))
    names = {e.name: holders[e.idx] for e in snap.entries if e.kind == ROLE}
    point = ProgressPoint(info, len(enabled), len(roles), direct, covered, dict(sorted(names.items())))
    return point, {role: (holders[role], still[role]) for role in holders}


def _roles(snap: Snapshot, counts: dict[int, tuple[int, int]], batches: list[MigrationBatch]) -> list[RoleProgress]:
    """Every role in the snapshot, plus roles that batches touched and that are gone from it."""
    roles = [e for e in snap.entries if e.kind == ROLE]
    by_uuid = {r.uuid: r.idx for r in roles if r.uuid}
    by_dn = {dnutil.normalize(r.dn): r.idx for r in roles}
    own: dict[int, list[MigrationBatch]] = {r.idx: [] for r in roles}
    gone: dict[str, list[MigrationBatch]] = {}
    for batch in batches:
        dn = dnutil.normalize(batch.role_dn or "")
        idx = by_uuid.get(batch.role_uuid or "", by_dn.get(dn))
        if idx is None:
            gone.setdefault(dn, []).append(batch)
        else:
            own[idx].append(batch)
    out = [_role_progress(r.name, r.dn, *counts.get(r.idx, (0, 0)), own[r.idx]) for r in roles]
    for found in gone.values():
        dn = found[-1].role_dn or ""
        out.append(_role_progress(dnutil.first_value(dn) if dn else "(no role)", dn, 0, 0, found))
    return sorted(out, key=lambda r: r.role.lower())


def _role_progress(name: str, dn: str, holders: int, still: int, batches: list[MigrationBatch]) -> RoleProgress:
    batches = sorted(batches, key=lambda b: b.id)
    latest: dict[str, str] = {}
    for batch in batches:  # a user migrated again after a rollback counts once, as they stand now
        latest.update(batch.users)
    states = Counter(latest.values())
    return RoleProgress(
        role=name,
        dn=dn,
        holders=holders,
        still_direct=still,
        batches=len(batches),
        migrated=sum(states[s] for s in MIGRATED),
        rolled_back=sum(states[s] for s in UNDONE),
        conflicts=states["conflict"],
        pending=states["pending"],
        state=_state(batches),
    )


def _state(batches: list[MigrationBatch]) -> str:
    if not batches:
        return "not started"
    open_ = [b for b in batches if b.status in UNFINISHED]
    if open_:
        return f"batch {open_[-1].id} {open_[-1].status}"
    return f"batch {batches[-1].id} {batches[-1].status}"
