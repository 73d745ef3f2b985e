"""Hash-chained audit records: each record's hash covers its content and the previous hash.

Editing, deleting, inserting or reordering a record breaks the chain, and `verify` names where.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64


def operator() -> str:
    """Who is acting: RBAC_MIGRATE_OPERATOR, else the login name, with the host."""
    name = os.environ.get("RBAC_MIGRATE_OPERATOR")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = f"uid {os.getuid()}"
    return f"{name}@{socket.gethostname()}"


@dataclass(frozen=True)
class AuditRecord:
    """One change, with what it looked like before and after."""

    id: int
    at: datetime
    operator: str
    action: str
    target: str
    ticket: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def content(self) -> str:
        """The canonical text the hash covers."""
        at = self.at.astimezone(timezone.utc).isoformat(timespec="microseconds")
        body = [self.id, at, self.operator, self.action, self.target, self.ticket, self.details]
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.content()).encode("utf-8")).hexdigest()


def chain(record: AuditRecord, prev_id: int, prev_hash: str) -> AuditRecord:
    """The record placed after (prev_id, prev_hash), with its hash filled in."""
    placed = AuditRecord(
        id=prev_id + 1,
        at=record.at,
        operator=record.operator,
        action=record.action,
        target=record.target,
        ticket=record.ticket,
        details=record.details,
        prev_hash=prev_hash,
    )
    return AuditRecord(**{**placed.__dict__, "hash": placed.compute_hash()})


def verify(records: Iterable[AuditRecord], head: tuple[int, str] | None = None) -> list[str]:
    """Problems found in the chain, in order; an empty list means intact."""
    problems: list[str] = []
    expected_id, expected_prev = 1, GENESIS
    for record in records:
        if record.id != expected_id:
            problems.append(f"record {record.id}: expected record {expected_id} here (deleted, inserted or reordered)")
        if record.prev_hash != expected_prev:
            problems.append(f"record {record.id}: does not follow the record before it")
        if record.compute_hash() != record.hash:
            problems.append(f"record {record.id}: content does not match its hash (edited)")
        expected_id, expected_prev = record.id + 1, record.hash
    if head is not None and head != (expected_id - 1, expected_prev):
        problems.append(
            f"the log ends at record {expected_id - 1} but {head[0]} were written (records removed at the end)"
        )
    return problems


def new_record(action: str, target: str, ticket: str | None = None, **details: Any) -> AuditRecord:
    """An unplaced record stamped now, by the current operator."""
    return AuditRecord(
        id=0,
        at=datetime.now(timezone.utc),
        operator=operator(),
        action=action,
        target=target,
        ticket=ticket,
        details=details,
    )
