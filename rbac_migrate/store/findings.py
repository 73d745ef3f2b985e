"""Accepted exceptions and the findings register in the store.

The register keeps every finding ever reported, keyed by the identities it rests on: when it was
first seen, its status (open, accepted, remediated, reappeared), and when and by which batch it
was fixed. ``sync`` brings it up to date with a report; ``mark_remediated`` is for the batch that
removes findings, and ``open_findings`` answers which are open and not accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, select, type_coerce, update

from ..audit import AuditRecord
from ..errors import NotFoundError
from ..model import ACCEPTED, OPEN, REAPPEARED, REMEDIATED, FindingException, RegisteredFinding
from . import audit as audit_store
from .schema import UTCDateTime, finding_exceptions, findings_register

if TYPE_CHECKING:
    from . import Store

LIVE = (OPEN, ACCEPTED, REAPPEARED)  # statuses of a finding still present in the directory


class FindingsStore:
    """Exceptions and the findings register over one store (``Store.findings``)."""

    def __init__(self, store: Store):
        self.store = store

    # -- exceptions -----------------------------------------------------------------------

    def exceptions(self) -> list[FindingException]:
        query = select(finding_exceptions).order_by(finding_exceptions.c.id)
        with self.store.connect() as conn:
            return [FindingException(**row._mapping) for row in conn.execute(query)]

    def add_exception(self, exception: FindingException, record: AuditRecord) -> FindingException:
        """Store an exception and its audit record in one transaction; returns it with its id."""
        values = {k: v for k, v in vars(exception).items() if k != "id"}
        with self.store.begin() as conn:
            new_id = conn.execute(finding_exceptions.insert().values(**values)).inserted_primary_key[0]
            audit_store.append(conn, [_with(record, exception=new_id)])
        return FindingException(**{**values, "id": new_id})

    def remove_exception(self, exception_id: int, record: AuditRecord) -> FindingException:
        """Delete an exception and record it, in one transaction."""
        with self.store.begin() as conn:
            row = conn.execute(select(finding_exceptions).where(finding_exceptions.c.id == exception_id)).first()
            if row is None:
                raise NotFoundError(f"no exception {exception_id}: 'rbac-migrate exception list' shows them")
            found = FindingException(**row._mapping)
            conn.execute(delete(finding_exceptions).where(finding_exceptions.c.id == exception_id))
            audit_store.append(conn, [_with(record, exception=exception_id, removed=_summary(found))])
        return found

    # -- the register ---------------------------------------------------------------------

    def register(self) -> list[RegisteredFinding]:
        query = select(findings_register).order_by(findings_register.c.first_seen, findings_register.c.key)
        with self.store.connect() as conn:
            return [_registered(row) for row in conn.execute(query)]

    def open_findings(self) -> list[RegisteredFinding]:
        """Findings present at the last report, neither accepted nor fixed: what remediation may remove."""
        return [f for f in self.register() if f.status in (OPEN, REAPPEARED)]

    def mark_remediated(self, keys: Iterable[str], batch_id: int, at: datetime) -> int:
        """Record that batch ``batch_id`` fixed these findings at ``at``; returns how many it marked."""
        keys = list(keys)
        if not keys:
            return 0
        with self.store.begin() as conn:
            done = conn.execute(
                update(findings_register)
                .where(findings_register.c.key.in_(keys))
                .values(status=REMEDIATED, status_at=at, fixed_at=at, fixed_batch=batch_id)
            )
        return done.rowcount

    def sync(
        self, snapshot_id: int, seen_at: datetime, current: list[RegisteredFinding]
    ) -> dict[str, tuple[str, datetime]] | None:
        """Bring the register up to a report of snapshot ``snapshot_id`` taken at ``seen_at``.

        New findings are added; known ones keep their first-seen time; a fixed one that is back
        becomes 'reappeared'; a live one the report no longer has is 'remediated' (by nobody
        known, unless a batch marked it first). A report of an older snapshot changes nothing.
        """
        with self.store.begin() as conn:
            latest = conn.execute(select(func.max(findings_register.c.last_snapshot))).scalar()
            if latest is not None and snapshot_id < latest:
                return None
            known = _known(conn)
            inserts, moved = [], []
            now: dict[str, tuple[str, datetime]] = {}
            for finding in current:
                row = known.get(finding.key)
                if row is None:
                    inserts.append(_new_row(finding, snapshot_id, seen_at))
                    continue
                stored, first = row
                # Most findings are seen again as they were: only a move of status is written.
                status = stored if stored == finding.status != REMEDIATED else _next_status(stored, finding.status)
                if status != stored:
                    moved.append({"k": finding.key, "status": status, "status_at": seen_at})
                now[finding.key] = (status, first)
            present = {f.key for f in current}
            gone = [k for k, (status, _first) in known.items() if status in LIVE and k not in present]
            # Thousands of findings per report: a handful of statements, whatever their number.
            if gone:
                conn.execute(
                    update(findings_register)
                    .where(findings_register.c.key.in_(gone))
                    .values(status=REMEDIATED, status_at=seen_at, fixed_at=seen_at)
                )
            if moved:
                conn.execute(_UPDATE_STATUS, moved)
            # Every finding still live is in this report (the rest were just marked fixed).
            conn.execute(
                update(findings_register)
                .where(findings_register.c.status.in_(LIVE))
                .values(last_seen=seen_at, last_snapshot=snapshot_id)
            )
            if inserts:
                conn.execute(findings_register.insert(), inserts)
            now.update((row["key"], (row["status"], row["first_seen"])) for row in inserts)
        return now


def _known(conn) -> dict[str, tuple[str, datetime]]:
    """Key → (status, first seen) of every registered finding.

    Findings share the few times their snapshots were taken: each distinct time is made
    timezone-aware once (as UTCDateTime does) rather than once per row.
    """
    first_seen = type_coerce(findings_register.c.first_seen, UTCDateTime.impl)
    rows = conn.execute(select(findings_register.c.key, findings_register.c.status, first_seen)).all()
    aware: dict[datetime, datetime] = {}
    known = {}
    for key, status, first in rows:
        moment = aware.get(first)
        if moment is None:
            moment = aware[first] = UTCDateTime().process_result_value(first, conn.dialect)
        known[key] = (status, moment)
    return known


_UPDATE_STATUS = (
    update(findings_register)
    .where(findings_register.c.key == bindparam("k"))
    .values(status=bindparam("status"), status_at=bindparam("status_at"))
)


def _new_row(finding: RegisteredFinding, snapshot_id: int, seen_at: datetime) -> dict:
    live = ACCEPTED if finding.status == ACCEPTED else OPEN
    return {**vars(finding), "status": live, "status_at": seen_at, "last_snapshot": snapshot_id}


def _next_status(stored: str, reported: str) -> str:
    """A known finding seen again: accepted or open as reported, and 'reappeared' after a fix."""
    live = ACCEPTED if reported == ACCEPTED else OPEN
    if stored == REMEDIATED:
        return ACCEPTED if live == ACCEPTED else REAPPEARED
    if stored == REAPPEARED and live == OPEN:
        return REAPPEARED
    return live


def _registered(row) -> RegisteredFinding:
    values = dict(row._mapping)
    values.pop("last_snapshot")
    return RegisteredFinding(**values)


def _summary(found: FindingException) -> dict:
    return {
        "user": found.user_dn,
        "user_key": found.user_key,
        "group": found.group_dn,
        "owner": found.owner,
        "reason": found.reason,
        "expires": found.expires.isoformat(),
    }


def _with(record: AuditRecord, **details) -> AuditRecord:
    return AuditRecord(**{**vars(record), "details": {**record.details, **details}})
