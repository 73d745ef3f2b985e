"""Read-only queries behind the reports: the migration journal."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..model import MigrationBatch, identity_key
from .schema import batch_users, batches


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
        users[row.batch_id].append((identity_key(row.user_uuid, row.user_dn), row.state))
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
