"""Snapshot storage: each entry's versions with the snapshots they are valid for.

A version is valid for every snapshot ``s`` with ``since <= s < until`` (``until`` NULL while
current), so a snapshot in which an entry did not change costs nothing for that entry: the store
grows with change, not with the size of the directory. Entries are numbered by entity, one
number per identity (entryUUID / objectGUID, else the normalised DN), and a group's members are a
packed array of those numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Connection

from ..kinds import SnapshotInfo
from .driver import aware
from .lean import as_json
from .schema import entry_versions, history_points, snapshots

V = entry_versions.c
LISTED = ("taken_at", "source", "users", "grants", "roles", "memberships")  # a snapshot's listing line


def valid_at(snapshot_id: int, latest: bool = False):
    """The condition selecting the versions a snapshot holds."""
    if latest:
        return V.until.is_(None)
    return and_(V.since <= snapshot_id, or_(V.until.is_(None), V.until > snapshot_id))


# -- pruning ------------------------------------------------------------------------------------


def prune(
    conn: Connection, keep: int | None, older_than: datetime | None, points: Mapping[int, Mapping] | None = None
) -> list[int]:
    """Remove snapshots beyond the newest ``keep`` or taken before ``older_than``; never the latest.

    Versions no remaining snapshot holds go with them. ``points`` holds, by snapshot id, what
    reports keep of a removed snapshot ({"progress": ..., "findings": ...}); it is written in the
    same transaction, so no snapshot goes without its point. Returns the ids removed.
    """
    listing = conn.execute(select(snapshots).order_by(snapshots.c.id)).all()
    if not listing:
        return []
    doomed = set()
    if keep is not None:
        doomed |= {row.id for row in listing[: max(len(listing) - keep, 0)]}
    if older_than is not None:
        doomed |= {row.id for row in listing if aware(row.taken_at) < older_than}
    doomed.discard(listing[-1].id)
    if not doomed:
        return []
    kept_already = set(conn.execute(select(history_points.c.snapshot_id)).scalars())
    for row in listing:
        if row.id in doomed and row.id not in kept_already and points and row.id in points:
            conn.execute(
                history_points.insert().values(
                    snapshot_id=row.id,
                    **{name: getattr(row, name) for name in LISTED},
                    progress=as_json(points[row.id]["progress"]),
                    findings=as_json(points[row.id]["findings"]),
                )
            )
    conn.execute(delete(snapshots).where(snapshots.c.id.in_(sorted(doomed))))
    kept = snapshots.alias("kept")
    still_held = select(kept.c.id).where(kept.c.id >= V.since, or_(V.until.is_(None), kept.c.id < V.until)).exists()
    conn.execute(delete(entry_versions).where(~still_held))
    return sorted(doomed)


def kept_points(conn: Connection) -> list[tuple[SnapshotInfo, dict, dict]]:
    """What reports kept of pruned snapshots, oldest first: (listing line, progress, findings)."""
    rows = conn.execute(select(history_points).order_by(history_points.c.snapshot_id)).all()
    return [
        (
            SnapshotInfo(row.snapshot_id, *(getattr(row, name) for name in LISTED)),
            json.loads(row.progress),
            json.loads(row.findings),
        )
        for row in rows
    ]
