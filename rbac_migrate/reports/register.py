"""Metrics of the findings register: open findings over time and the mean time to remediate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model import REMEDIATED, RegisteredFinding
from .orphans import TrendPoint
from .provenance import as_utc, iso


@dataclass(frozen=True)
class FindingsMetrics:
    """What an auditor's continual-improvement register reports."""

    over_time: list[tuple[int, str, int, int]]  # snapshot, taken at, open, accepted
    statuses: dict[str, int] = field(default_factory=dict)  # open, accepted, remediated, reappeared
    remediated: int = 0
    by_batch: int = 0  # of the remediated, those a recorded batch fixed
    mean_days_to_remediate: float | None = None

    def document(self) -> dict:
        return {
            "over_time": [{"snapshot": s, "taken_at": at, "open": o, "accepted": a} for s, at, o, a in self.over_time],
            "statuses": self.statuses,
            "remediated": self.remediated,
            "remediated_by_batch": self.by_batch,
            "mean_days_to_remediate": self.mean_days_to_remediate,
        }

    @property
    def summary(self) -> str:
        if self.mean_days_to_remediate is None:
            mttr = "none remediated yet"
        else:
            mttr = f"mean time to remediate {self.mean_days_to_remediate:.1f} days over {self.remediated}"
        counts = ", ".join(f"{n} {status}" for status, n in self.statuses.items())
        return f"findings register: {counts or 'empty'}; {mttr}"


def findings_metrics(trend: Iterable[TrendPoint], register: Iterable[RegisteredFinding]) -> FindingsMetrics:
    """Open and accepted findings in each snapshot, and the register's statuses and clock."""
    rows = list(register)
    statuses = Counter(f.status for f in rows)
    fixed = [f for f in rows if f.status == REMEDIATED and f.fixed_at is not None]
    days = [(as_utc(f.fixed_at) - as_utc(f.first_seen)).total_seconds() / 86400 for f in fixed]
    return FindingsMetrics(
        over_time=[(p.snapshot.id, iso(p.snapshot.taken_at), p.open, p.accepted) for p in trend],
        statuses={s: statuses.get(s, 0) for s in ("open", "accepted", "remediated", "reappeared")},
        remediated=len(fixed),
        by_batch=sum(1 for f in fixed if f.fixed_batch is not None),
        mean_days_to_remediate=round(sum(days) / len(days), 2) if days else None,
    )
