"""Appending to and reading the audit log; appends are serialised through audit_head.

Records are signed with the store's audit key (see ``Store.audit_key``) whichever code appends
them: the key travels with every connection the store hands out.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ..audit import GENESIS, AuditRecord, chain
from .schema import audit_head, audit_log, batches

KEY_INFO = "rbac_migrate.audit_key"  # where a store's connections carry its audit key


def append(conn: Connection, records: list[AuditRecord], key: bytes | None = None) -> list[AuditRecord]:
    """Chain and insert records inside the caller's transaction, signed with ``key`` or the store's key."""
    if key is None:
        key = conn.info.get(KEY_INFO)
    # Taking the write lock first means two operators never chain onto the same head.
    locked = conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=audit_head.c.last_id))
    if locked.rowcount == 0:
        conn.execute(audit_head.insert().values(id=1, last_id=0, last_hash=GENESIS))
    head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
    last_id, last_hash = head.last_id, head.last_hash
    placed = []
    for record in records:
        record = chain(record, last_id, last_hash, key)
        conn.execute(audit_log.insert().values(**_row(record)))
        last_id, last_hash = record.id, record.hash
        placed.append(record)
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=last_id, last_hash=last_hash))
    return placed


def _row(record: AuditRecord) -> dict:
    return {
        "id": record.id,
        "at": record.at,
        "operator": record.operator,
        "action": record.action,
        "target": record.target,
        "ticket": record.ticket,
        "details": json.dumps(record.details, sort_keys=True, default=str),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def read(conn: Connection, since: datetime | None = None) -> list[AuditRecord]:
    """Records in the order they were stored (by id)."""
    query = select(audit_log).order_by(audit_log.c.id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    return [
        AuditRecord(
            id=row.id,
            at=row.at,
            operator=row.operator,
            action=row.action,
            target=row.target,
            ticket=row.ticket,
            details=json.loads(row.details),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )
        for row in conn.execute(query).all()
    ]


def head(conn: Connection) -> tuple[int, str] | None:
    row = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
    return (row.last_id, row.last_hash) if row else None


def batch_ids(conn: Connection) -> list[int]:
    """Every batch in the journal: each must keep at least one audit record."""
    return list(conn.execute(select(batches.c.id).order_by(batches.c.id)).scalars())
