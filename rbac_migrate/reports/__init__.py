"""Reports for the auditor: one function per command, reading the store and calling pure code.

The computations live in orphans.py and progress.py (pure, over snapshots); html.py renders them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..audit import AuditRecord, Checkpoint, head_checkpoint, operator, verify
from ..bulkwork import bulk_work
from ..model import ACCEPTED, OPEN, RegisteredFinding, Snapshot, SnapshotInfo
from .auditlog import Person
from .hrfeed import read_hr_feed
from .orphans import CATEGORIES, Finding, OrphanReport, TrendPoint, filled, find_orphans, orphan_report
from .outliers import OutlierSettings
from .progress import ProgressPoint, ProgressReport, progress_report
from .provenance import as_utc, iso
from .register import findings_metrics

if TYPE_CHECKING:  # the store pulls in SQLAlchemy; only its methods are used here
    from ..store import Store

__all__ = [
    "CATEGORIES",
    "AuditCheck",
    "Finding",
    "OrphanReport",
    "OutlierSettings",
    "ProgressReport",
    "audit_log",
    "audit_verify",
    "bulk_work",
    "find_orphans",
    "orphans",
    "progress",
]


class _History:
    """The stored snapshots up to the reported one, oldest first, each loaded once, one at a time.

    It knows how many there are, so a report can tell the newest from the earlier ones before
    it reaches it (earlier ones need less work).
    """

    def __init__(self, store: Store, snapshot: str | int | None):
        reported = store.snapshot_info(snapshot)
        self.store = store
        self.ids = [info.id for info in store.snapshots() if info.id <= reported.id]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Snapshot]:
        return map(self.store.load_snapshot, self.ids)


def orphans(
    store: Store,
    hr_feed: Path | None = None,
    snapshot: str | int | None = None,
    outliers: OutlierSettings | None = None,
) -> OrphanReport:
    """Orphaned and leftover rights in a snapshot (latest by default)."""
    hr_ids = read_hr_feed(hr_feed) if hr_feed is not None else None
    now = datetime.now(timezone.utc)
    exceptions = store.findings.exceptions()
    with bulk_work():
        report = orphan_report(_History(store, snapshot), hr_ids, outliers, exceptions, now)
        # The register's tens of thousands of keys, made while the snapshot is still loaded.
        _register(store, report)
    kept = _kept(store, report.snapshot.id)
    report.trend[:0] = [TrendPoint(info, dict(found["summary"]), found["accepted"]) for info, _, found in kept]
    if hr_feed is not None:
        report.hr_feed = f"{hr_feed.name} ({len(hr_ids or ())} ids)"
    report.provenance = provenance(report.snapshot, now)
    return report


def _kept(store: Store, reported: int) -> list[tuple[SnapshotInfo, dict, dict]]:
    """What reports kept of snapshots pruned from before the reported one: trends still start at the first."""
    return [point for point in store.kept_points() if point[0].id < reported]


def history_points(store: Store) -> dict[int, dict]:
    """What reports would keep of each stored snapshot, were it pruned: its progress and findings
    counts, by snapshot id. Brings the findings register up to date on the way, so every finding
    keeps its first sighting."""
    found = orphans(store)
    with bulk_work():
        points = progress_report(_History(store, None), []).points
    trend = {p.snapshot.id: {"summary": p.summary, "accepted": p.accepted} for p in found.trend}
    counted = [f.name for f in fields(ProgressPoint) if f.name != "snapshot"]  # what ProgressPoint(info, **…) takes
    return {
        p.snapshot.id: {"progress": {name: getattr(p, name) for name in counted}, "findings": trend[p.snapshot.id]}
        for p in points
        if p.snapshot.id in trend
    }


def provenance(info: SnapshotInfo, now: datetime | None = None) -> dict:
    """What an auditor hands on with the data: which directory, which snapshot, who, which tool."""
    return {
        "directory": info.source,
        "snapshot": info.id,
        "snapshot_taken_at": iso(info.taken_at),
        "generated_at": iso(now or datetime.now(timezone.utc)),
        "operator": operator(),
        "tool_version": __version__,
    }


def _register(store: Store, report: OrphanReport) -> None:
    """Keep the findings register up to date with a report of the newest snapshot; note each status.

    Only the findings the register knows otherwise (an earlier first sighting, a reappearance)
    are changed; a register row is made only for a finding it has not seen before.
    """
    seen_at = as_utc(report.snapshot.taken_at)
    times: dict[str, datetime] = {}  # findings share the few times their snapshots were taken
    reported: dict[str, tuple[str, datetime]] = {}
    found: dict[str, tuple[Finding, str]] = {}
    for status, findings in ((OPEN, report.findings), (ACCEPTED, [a.finding for a in report.accepted])):
        for finding in findings:
            reported[finding.key] = (status, _moment(finding.first_seen, times))
            found[finding.key] = (finding, status)
    differs = store.findings.update(report.snapshot.id, seen_at, reported, lambda key: _registered(*found[key], times))
    if not differs:
        return

    def known(finding: Finding) -> Finding:
        # The register remembers first sightings older than the snapshots still kept (after a prune).
        status, first_seen = differs[finding.key]
        first = iso(first_seen)
        if status == finding.status and first >= finding.first_seen:
            return finding
        return replace(finding, status=status, first_seen=min(first, finding.first_seen))

    report.findings = [known(f) if f.key in differs else f for f in report.findings]


def _moment(text: str, times: dict[str, datetime]) -> datetime:
    """An ISO time as a datetime, parsed once per distinct time."""
    moment = times.get(text)
    if moment is None:
        moment = times[text] = datetime.fromisoformat(text)
    return moment


def _registered(finding: Finding, status: str, times: dict[str, datetime]) -> RegisteredFinding:
    first = _moment(finding.first_seen, times)
    return filled(
        RegisteredFinding,
        key=finding.key,
        category=finding.category,
        user_key=finding.user_key,
        user_name=finding.user_id,
        group_key=finding.group_key,
        group_name=finding.group,
        member_value=finding.member_value,
        first_seen=first,
        last_seen=first,
        status=status,
        status_at=first,
        fixed_at=None,
        fixed_batch=None,
    )


def progress(store: Store) -> ProgressReport:
    """Role coverage over every snapshot, and each role's migration state from the journal."""
    with bulk_work():
        result = progress_report(_History(store, None), store.migration_batches())
    result.points[:0] = [ProgressPoint(info, **counts) for info, counts, _ in _kept(store, result.snapshot.id)]
    found = orphans(store)  # brings the findings register up to the newest snapshot
    result.findings = findings_metrics(found.trend, store.findings.register())
    result.provenance = found.provenance
    return result


def audit_log(store: Store, since: datetime | None = None, user: str | None = None) -> list[AuditRecord]:
    """Audit records at or after ``since``, by operator ``user`` or touching user ``user`` (by identity)."""
    records = store.audit_records(as_utc(since) if since else None)
    if user:
        person = Person(store, user)
        records = [r for r in records if person.concerns(r)]
    return records


@dataclass(frozen=True)
class AuditCheck:
    records: int
    problems: list[str]
    head: Checkpoint
    signed: int = 0  # records carrying an HMAC
    batches: int = 0  # batches in the store, each needing an audit record


def audit_verify(store: Store, checkpoint: Checkpoint | None = None) -> AuditCheck:
    """Walk the whole chain; problems name each edited, deleted, inserted or reordered record,
    records cut from the end (against the checkpoint and the store's batches), and bad HMACs."""
    records, head, batches = store.audit_state()
    problems = verify(records, head, key=store.audit_key, checkpoint=checkpoint, batches=batches)
    signed = sum(r.signed_by is not None for r in records)
    return AuditCheck(len(records), problems, head_checkpoint(records), signed, len(batches))
