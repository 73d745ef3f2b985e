"""Accepted exceptions and the findings register in the store.

The register keeps every finding ever reported, keyed by the identities it rests on: when it was
first seen, its status (open, accepted, remediated, reappeared), and when and by which batch it
was fixed. ``sync`` brings it up to date with a report; ``mark_remediated`` is for the batch that
removes findings, and ``open_findings`` answers which are open and not accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, or_, select, update

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
        Returns key → (status, first seen) of every reported finding as the register now has it.
        """
        reported = {f.key: (f.status, f.first_seen) for f in current}
        by_key = {f.key: f for f in current}
        differs = self.update(snapshot_id, seen_at, reported, by_key.__getitem__)
        if differs is None:
            return None
        return {key: differs.get(key, seen) for key, seen in reported.items()}

    def update(
        self,
        snapshot_id: int,
        seen_at: datetime,
        reported: Mapping[str, tuple[str, datetime]],
        describe: Callable[[str], RegisteredFinding],
    ) -> dict[str, tuple[str, datetime]] | None:
        """``sync`` for a report given as key → (status, first seen); ``describe`` makes the row of
        a finding the register does not know yet.

        Returns (status, first seen) as the register now has them, for only the findings where
        either differs from the report (None for a report of an older snapshot). A report run
        again on the same snapshot writes nothing; one of a newer snapshot writes the findings
        that come, go or change status, and moves the last sighting of those still present.
        """
        with self.store.begin() as conn:
            latest = conn.execute(select(func.max(findings_register.c.last_snapshot))).scalar()
            if latest is not None and snapshot_id < latest:
                return None
            known = _known(conn)
            inserts, moved = [], []
            differs: dict[str, tuple[str, datetime]] = {}
            for key, seen in reported.items():
                row = known.pop(key, None)
                if row is None:
                    inserts.append(_new_row(describe(key), snapshot_id, seen_at))
                    now = (inserts[-1]["status"], inserts[-1]["first_seen"])
                else:
                    stored, first = row
                    # Most findings are seen again as they were: only a move of status is written.
                    status = stored if stored == seen[0] != REMEDIATED else _next_status(stored, seen[0])
                    if status != stored:
                        moved.append({"k": key, "status": status, "status_at": seen_at})
                    now = (status, first)
                if now != seen:
                    differs[key] = now
            # What is left of ``known`` is not in this report: a live one has been fixed.
            gone = [k for k, (status, _first) in known.items() if status in LIVE]
            _write(conn, snapshot_id, seen_at, gone, moved, inserts)
        return differs


def _write(conn, snapshot_id: int, seen_at: datetime, gone: list[str], moved: list[dict], inserts: list[dict]) -> None:
    """The handful of statements a report's changes take, whatever their number."""
    if gone:
        conn.execute(
            update(findings_register)
            .where(findings_register.c.key.in_(gone))
            .values(status=REMEDIATED, status_at=seen_at, fixed_at=seen_at)
        )
    if moved:
        conn.execute(_UPDATE_STATUS, moved)
    # Every finding still live is in this report (the rest were just marked fixed); those already
    # last seen in it (a report run again) are left as they are.
    conn.execute(
        update(findings_register)
        .where(findings_register.c.status.in_(LIVE))
        .where(or_(findings_register.c.last_snapshot != snapshot_id, findings_register.c.last_seen != seen_at))
        .values(last_seen=seen_at, last_snapshot=snapshot_id)
    )
    if inserts:
        conn.execute(findings_register.insert(), inserts)


def _known(conn) -> dict[str, tuple[str, datetime]]:
    """Key → (status, first seen) of every registered finding, read straight from the driver.

    Findings share the few times their snapshots were taken: each distinct stored time is
    turned into an aware datetime once (as UTCDateTime does) rather than once per row.
    """
    dialect = conn.dialect
    parse = UTCDateTime.impl.dialect_impl(dialect).result_processor(dialect, None) or (lambda value: value)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute("SELECT key, status, first_seen FROM findings_register")
        rows = cursor.fetchall()
    finally:
        cursor.close()
    aware: dict = {}
    known = {}
    for key, status, first in rows:
        moment = aware.get(first)
        if moment is None:
            moment = aware[first] = UTCDateTime().process_result_value(parse(first), dialect)
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
