"""Read-only queries behind the reports: whole snapshots at bulk speed, and the migration journal."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..model import GROUP_KINDS, Entry, Snapshot
from ..reports.progress import MigrationBatch
from .schema import batch_users, batches, snapshot_entries, snapshots

ROW_COLUMNS = (
    snapshot_entries.c.idx,
    snapshot_entries.c.kind,
    snapshot_entries.c.dn,
    snapshot_entries.c.name,
    snapshot_entries.c.uuid,
    snapshot_entries.c.enabled,
    # As text: thousands of users share each set of peer attributes, so each is decoded once.
    cast(snapshot_entries.c.attrs, Text),
    snapshot_entries.c.members,
)


def load_snapshot(conn: Connection, snapshot_id: int, unpack: Callable[[bytes], tuple[int, ...]]) -> Snapshot:
    """A whole snapshot for a report that reads every entry.

    Store.load_snapshot decodes each user's attributes and builds each entry by column name;
    at 100,000 users that takes several times as long as reading the rows, which here come
    straight from the driver. Entries built here share their (read-only) attribute mappings.
    """
    head = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).one()
    query = (
        select(*ROW_COLUMNS)
        .where(snapshot_entries.c.snapshot_id == int(snapshot_id))
        .order_by(snapshot_entries.c.idx)
    )
    # The only parameter is an integer, so inlining it spares each driver's own parameter style.
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    decoded: dict[str | None, Any] = {None: {}}
    entries, members = [], {}
    for idx, kind, dn, name, uuid, enabled, attrs, packed in rows:
        found = decoded.get(attrs)
        if found is None:
            found = decoded[attrs] = json.loads(attrs) or {}
        entries.append(Entry(idx, kind, dn, name, uuid, bool(enabled), found))
        if kind in GROUP_KINDS:
            members[idx] = unpack(packed)
    return Snapshot(head.taken_at, head.source, head.flavour, head.bases, entries, members, id=snapshot_id)


def migration_batches(conn: Connection) -> list[MigrationBatch]:
    """Every migrate batch, oldest first, with the state of each of its users."""
    rows = conn.execute(
        select(
            batches.c.id,
            batches.c.role_dn,
            batches.c.role_uuid,
            batches.c.status,
            batches.c.created_at,
            batches.c.finished_at,
        )
        .where(batches.c.kind == "migrate")
        .order_by(batches.c.id)
    ).all()
    users: dict[int, list[tuple[str, str]]] = defaultdict(list)
    query = (
        select(batch_users.c.batch_id, batch_users.c.user_uuid, batch_users.c.user_dn, batch_users.c.state)
        .join(batches, batches.c.id == batch_users.c.batch_id)
        .where(batches.c.kind == "migrate")
        .order_by(batch_users.c.batch_id, batch_users.c.position)
    )
    for row in conn.execute(query):
        # The same identity the snapshots use, so a renamed user stays one person.
        users[row.batch_id].append((row.user_uuid or f"dn:{dnutil.normalize(row.user_dn)}", row.state))
    return [
        MigrationBatch(
            id=row.id,
            role_dn=row.role_dn,
            role_uuid=row.role_uuid,
            status=row.status,
            created_at=row.created_at,
            finished_at=row.finished_at,
            users=tuple(users[row.id]),
        )
        for row in rows
    ]
