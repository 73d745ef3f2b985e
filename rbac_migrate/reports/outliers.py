"""Peer outliers: rights few of a user's current peers hold, found on any single snapshot.

Peers are the enabled users with the same peer attributes (a job). A direct grant that at most
``max_share`` of the job holds is an outlier. When several of a user's outliers are typical of
one other job (held by at least ``typical_share`` of it), they are most likely what the user kept
from an earlier job: they come first, with the evidence of both jobs. The rest are personal
one-off rights, listed below them for review. A job with fewer than ``min_peers`` members is too
small to judge, and the report says how many users that leaves out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, compress
from operator import itemgetter

from ..access import MembershipGraph
from ..model import USER, Entry, Snapshot

OTHER_JOB, ONE_OFF = "other-job", "one-off"
SIGNAL_RANK = {OTHER_JOB: 0, ONE_OFF: 1}


@dataclass(frozen=True)
class OutlierSettings:
    """Thresholds of the peer-outlier category; the defaults suit teams of five and more."""

    max_share: float = 0.2  # a right at most this share of the job holds is an outlier
    min_peers: int = 5  # a job with fewer members is not judged
    typical_share: float = 0.6  # a right at least this share of a job holds is typical of that job
    min_bundle: int = 2  # this many outliers typical of one other job mark an earlier job

    def check(self) -> OutlierSettings:
        for name in ("max_share", "typical_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name.replace('_', '-')} must be above 0 and at most 1")
        if self.min_peers < 2 or self.min_bundle < 1:
            raise ValueError("min-peers must be at least 2 and min-bundle at least 1")
        return self


@dataclass(frozen=True)
class Outlier:
    user: Entry
    group: Entry
    signal: str  # other-job | one-off
    reason: str


@dataclass(frozen=True)
class OutlierScan:
    outliers: list[Outlier]
    unjudged_users: int  # enabled users whose job has too few members (or who have no peer attributes)
    unjudged_jobs: int

    @property
    def note(self) -> str:
        if not self.unjudged_users:
            return ""
        return (
            f"peer-outlier: {self.unjudged_users} users in {self.unjudged_jobs} jobs not judged "
            "(too few peers, or no peer attributes)"
        )


def job_key(attrs: Mapping[str, str]) -> tuple:
    """Peer attributes compared as the directory does: names and values ignore case."""
    return tuple(sorted((name.lower(), value.strip().lower()) for name, value in attrs.items()))


def job_label(attrs: Mapping[str, str]) -> str:
    return " / ".join(value for value in attrs.values() if value) or "(no peer attributes)"


class _Jobs:
    """Enabled users by job, and how many of each job reach each grant group."""

    def __init__(self, graph: MembershipGraph, users: list[Entry]):
        self.graph = graph
        self.members: dict[tuple, list[Entry]] = defaultdict(list)
        self.number: dict[tuple, int] = {}  # job → its number in self.keys
        self.job_of = table = _job_table(graph)
        keys: dict[int, tuple[tuple, int]] = {}  # peers share one attribute mapping: each is keyed once
        for user in users:
            found = keys.get(id(user.attrs))
            if found is None:
                key = job_key(user.attrs)
                found = keys[id(user.attrs)] = (key, self.number.setdefault(key, len(self.number)))
            self.members[found[0]].append(user)
            table[user.idx] = found[1]
        self.keys = list(self.number)
        self.held: dict[tuple, Counter] = {key: Counter() for key in self.members}
        self._evidence: dict[tuple[tuple, int], str] = {}
        # Each grant's holders counted by job, a pass over its member values looped in C rather
        # than every user's groups looked up one by one.
        for grant in graph.grant_ids:
            below = graph.below(grant)
            values = graph.members.get(grant, ()) if len(below) == 1 else _values(graph, below)
            counts = Counter(_jobs_of(self.job_of, set(values)))
            counts.pop(None, None)
            for job, count in counts.items():
                self.held[self.keys[job]][grant] = count

    def size(self, key: tuple) -> int:
        return len(self.members[key])

    def share(self, key: tuple, group: int) -> float:
        return self.held[key][group] / self.size(key)

    def evidence(self, key: tuple, group: int) -> str:
        found = self._evidence.get((key, group))
        if found is None:
            label = job_label(self.members[key][0].attrs)
            found = self._evidence[(key, group)] = f"held by {self.held[key][group]} of {self.size(key)} {label}"
        return found

    def rare(self, judged: Iterable[tuple], max_share: float) -> dict[int, list[int]]:
        """User → the grants they hold directly that at most ``max_share`` of their (judged) job holds."""
        rare_in: dict[int, set[int]] = defaultdict(set)  # grant → the jobs few of whom hold it
        for key in judged:
            size = self.size(key)
            for group, count in self.held[key].items():
                if count / size <= max_share:
                    rare_in[group].add(self.number[key])
        found: dict[int, list[int]] = defaultdict(list)
        for group, jobs in rare_in.items():
            values = self.graph.members.get(group, ())
            # The direct members whose job holds this grant rarely, picked out in C.
            for user in set(compress(values, map(jobs.__contains__, _jobs_of(self.job_of, values)))):
                found[user].append(group)
        return found


def _job_table(graph: MembershipGraph) -> list[int | None]:
    """Room for each entry's job number (None for all but users), as a list indexed by idx.

    Looked up by the million: a list index is several times quicker than a dict look-up.
    """
    highest = max(graph.by_idx, default=0)
    highest = max([highest, *(max(values) for values in graph.members.values() if values)])
    return [None] * (highest + 1)


def _jobs_of(table: list[int | None], values: Collection[int]) -> tuple:
    """The job number of each value, in order (one C call for the lot)."""
    if len(values) > 1:
        return itemgetter(*values)(table)
    return tuple(table[value] for value in values)


def _values(graph: MembershipGraph, groups: Iterable[int]) -> set[int]:
    """Member values of all these groups."""
    return set().union(*(graph.members.get(group, ()) for group in groups))


def find_outliers(
    snap: Snapshot, settings: OutlierSettings | None = None, graph: MembershipGraph | None = None, judge: bool = True
) -> OutlierScan:
    """Peer outliers of every enabled user in one snapshot; earlier-job bundles first.

    ``judge=False`` finds the same outliers, unordered and without signal or reason: what a
    count of them needs.
    """
    settings = settings or OutlierSettings()
    graph = graph if graph is not None else MembershipGraph(snap)
    users = [e for e in snap.entries if e.kind == USER and e.enabled]
    jobs = _Jobs(graph, [u for u in users if u.attrs])
    judged = {key for key in jobs.members if key and jobs.size(key) >= settings.min_peers}
    rare_of = jobs.rare(judged, settings.max_share)
    found: list[Outlier] = []
    if not judge:
        by_idx = graph.by_idx
        found = [Outlier(by_idx[user], by_idx[group], "", "") for user, groups in rare_of.items() for group in groups]
        return _scan(found, jobs, judged, users)
    typical = _typical(jobs, judged, settings.typical_share)
    for key in sorted(judged):
        verdicts: dict[tuple, list[tuple[Entry, str, str]]] = {}  # rare direct grants → what they say
        for user in jobs.members[key]:
            groups = rare_of.get(user.idx)
            if not groups:
                continue
            rare = tuple(sorted(groups))
            verdict = verdicts.get(rare)
            if verdict is None:
                # Many people of a job share their few rare grants: each set is judged once.
                verdict = verdicts[rare] = [
                    (graph.by_idx[group], signal, reason)
                    for group, signal, reason in _verdict(list(rare), key, jobs, typical, settings)
                ]
            found += [Outlier(user, group, signal, reason) for group, signal, reason in verdict]
    found.sort(key=lambda o: (SIGNAL_RANK[o.signal], o.user.name.lower(), o.group.name.lower()))
    return _scan(found, jobs, judged, users)


def _scan(found: list[Outlier], jobs: _Jobs, judged: set[tuple], users: list[Entry]) -> OutlierScan:
    unjudged = [key for key in jobs.members if key not in judged]
    no_attrs = sum(1 for u in users if not u.attrs)
    return OutlierScan(found, sum(jobs.size(k) for k in unjudged) + no_attrs, len(unjudged) + bool(no_attrs))


def _typical(jobs: _Jobs, judged: Iterable[tuple], share: float) -> dict[int, dict[tuple, float]]:
    """Grant group → the judged jobs it is typical of, with the share of each that holds it."""
    out: dict[int, dict[tuple, float]] = defaultdict(dict)
    for key in judged:
        size = jobs.size(key)
        for group, count in jobs.held[key].items():
            if count / size >= share:
                out[group][key] = count / size
    return out


def _verdict(rare: list[int], key, jobs: _Jobs, typical, settings) -> list[tuple[int, str, str]]:
    """(group, signal, reason) for each of these rare direct grants of anyone in this job."""
    if not rare:
        return []
    other, bundle = _other_job(rare, key, typical)
    # One right typical of a neighbouring job (same department, say) is a move inside it; from an
    # unrelated job it takes a bundle, since a single right can be typical of some job by chance.
    if len(bundle) < (1 if other and _related(other, key) else settings.min_bundle):
        other, bundle = None, set()
    out = []
    for group in rare:
        here = jobs.evidence(key, group)
        if other is not None and group in bundle:
            count = f"{len(bundle)} rights" if len(bundle) > 1 else "1 right"
            reason = f"{here}; {jobs.evidence(other, group)} ({count} typical of that job)"
            out.append((group, OTHER_JOB, reason))
        else:
            out.append((group, ONE_OFF, f"{here}; personal: typical of no other job"))
    return out


def _related(job: tuple, own: tuple) -> bool:
    """Jobs that share a peer attribute value (the same department, or the same title elsewhere)."""
    return not set(job).isdisjoint(own)


def _other_job(rare: list[int], own: tuple, typical) -> tuple[tuple | None, set[int]]:
    """The other job most of these rights are typical of; ties go to a related job, then higher shares."""
    tally = Counter(chain.from_iterable(typical.get(group, ()) for group in rare))
    tally.pop(own, None)
    if not tally:
        return None, set()
    # The most rights first; the rest of the order only decides among jobs with that many.
    most = max(tally.values())
    tied = [job for job, count in tally.items() if count == most]
    if len(tied) == 1:
        best = tied[0]
    else:
        shares = {job: sum(typical[g][job] for g in rare if job in typical.get(g, ())) for job in tied}
        best = max(tied, key=lambda job: (_related(job, own), shares[job], job))
    return best, {group for group in rare if best in typical.get(group, ())}
