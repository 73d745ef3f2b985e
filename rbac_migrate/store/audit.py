"""Appending to and reading the audit log; appends are serialised through audit_head."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ..audit import GENESIS, AuditRecord, chain
from .schema import audit_head, audit_log


def append(conn: Connection, records: list[AuditRecord]) -> list[AuditRecord]:
    """Chain and insert records inside the caller's transaction."""
    # Taking the write lock first means two operators never chain onto the same head.
    locked = conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=audit_head.c.last_id))
    if locked.rowcount == 0:
        conn.execute(audit_head.insert().values(id=1, last_id=0, last_hash=GENESIS))
    head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
    last_id, last_hash = head.last_id, head.last_hash
    placed = []
    for record in records:
        record = chain(record, last_id, last_hash)
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
