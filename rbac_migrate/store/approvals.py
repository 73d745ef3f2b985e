"""Four eyes: which plan files were approved, by whom (the planner is in the plans table)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import select

from . import journal
from .schema import plan_approvals

if TYPE_CHECKING:
    from . import Store


def planner(store: Store, digest: str) -> str | None:
    """The operator who wrote the plan file with this digest, or None for a file the store never wrote."""
    with store.connect() as conn:
        row = journal.find_plan(conn, digest)
    return row.operator if row is not None else None


def approve(store: Store, digest: str, operator: str, ticket: str | None) -> None:
    with store.begin() as conn:
        conn.execute(plan_approvals.delete().where(plan_approvals.c.digest == digest))
        conn.execute(
            plan_approvals.insert().values(
                digest=digest, operator=operator, ticket=ticket, approved_at=datetime.now(timezone.utc)
            )
        )


def approval(store: Store, digest: str) -> tuple[str, datetime] | None:
    """(approver, when) for an approved plan file, else None."""
    with store.connect() as conn:
        row = conn.execute(select(plan_approvals).where(plan_approvals.c.digest == digest)).first()
    return (row.operator, row.approved_at) if row is not None else None
