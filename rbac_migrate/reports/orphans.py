"""Orphaned and leftover rights: pure functions over snapshots, oldest to newest.

Every snapshot of the history is scanned once, so each finding knows the first snapshot of the
unbroken run that ends at the reported one, and the report can chart counts over time.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TypeVar

from .. import dn as dnutil
from ..access import MembershipGraph
from ..model import DANGLING, GRANT, ROLE, USER, Entry, FindingException, Snapshot, SnapshotInfo, identity_key
from .outliers import SIGNAL_RANK, OutlierSettings, find_outliers
from .provenance import iso, snapshot_fields

# Stable identifiers: scripts and spreadsheets key on them, so never rename one.
CATEGORIES: dict[str, str] = {
    "leaver-grant": "memberships held by accounts the disabled filter matches",
    "not-in-hr": "memberships held by enabled accounts missing from the HR feed",
    "dangling-member": "member values that point at no entry",
    "redundant-grant": "direct grants the user's roles already give (safe to remove)",
    "unexplained-grant": "direct grants no role of the user explains (exceptions to review)",
    "empty-group": "grant groups with no members, or only disabled accounts and dangling values",
    "unused-role": "roles no enabled account holds",
    "mover-leftover": "memberships of users who moved that none of their new peers hold",
    "peer-outlier": "direct grants few current peers hold; rights typical of another job first",
}
ACTIONS: dict[str, str] = {
    "leaver-grant": "remove membership",
    "not-in-hr": "confirm with HR, then remove membership",
    "dangling-member": "delete member value",
    "redundant-grant": "remove direct grant (the role keeps the access)",
    "unexplained-grant": "review: add to a role, or remove",
    "empty-group": "retire group",
    "unused-role": "assign or retire role",
    "mover-leftover": "review: remove unless the new job needs it",
    "peer-outlier": "review: remove unless the job needs it",
}
ORDER = {name: i for i, name in enumerate(CATEGORIES)}

Key = tuple[str, ...]
T = TypeVar("T")
# A finding as a scan makes it: identity key, category, user, group, member value, reason, signal.
Hit = tuple[Key, str, "Entry | None", Entry, str, str, str]


@dataclass(frozen=True)
class Finding:
    """One right that should not be there, with why we think so and what to do."""

    category: str
    user_id: str
    user_dn: str
    member_value: str
    group: str
    first_snapshot: int
    action: str
    key: str = ""  # stable across snapshots: category and the identities it rests on
    user_key: str = ""  # entryUUID / objectGUID of the user (else dn:…)
    group_key: str = ""
    group_dn: str = ""
    reason: str = ""
    first_seen: str = ""  # when the snapshot that first showed it was taken (ISO time, UTC)
    status: str = "open"  # open or reappeared (after a fix), as the findings register has it
    signal: str = ""  # peer-outlier: other-job (an earlier job's rights) or one-off


@dataclass(frozen=True)
class TrendPoint:
    """Counts per category in one snapshot of the history."""

    snapshot: SnapshotInfo
    summary: dict[str, int]  # open findings: accepted exceptions left out
    accepted: int = 0

    @property
    def open(self) -> int:
        return sum(self.summary.values())


@dataclass(frozen=True)
class Accepted:
    """A finding an exception accepts: listed apart, counted apart, back when the exception expires."""

    finding: Finding
    exception: FindingException

    def document(self) -> dict:
        e = self.exception
        return {
            **vars(self.finding),
            "exception": e.id,
            "owner": e.owner,
            "exception_reason": e.reason,
            "ticket": e.ticket,
            "expires": iso(e.expires),
        }


@dataclass
class OrphanReport:
    """Findings of the reported (newest) snapshot, with the history they were computed over."""

    snapshot: SnapshotInfo
    flavour: str
    bases: Mapping[str, str]
    findings: list[Finding]
    trend: list[TrendPoint]
    categories: list[str] = field(default_factory=list)  # those checked: not-in-hr needs an HR feed
    hr_feed: str | None = None  # where the staff ids came from, for provenance
    notes: list[str] = field(default_factory=list)  # what the report could not judge
    accepted: list[Accepted] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)  # who produced the report, when, with which version

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.findings, self.categories)

    def document(self) -> dict:
        """The JSON form: snapshot and provenance, summary first, then findings and the trend."""
        return {
            "snapshot": snapshot_fields(self.snapshot, self.flavour, self.bases, hr_feed=self.hr_feed),
            "provenance": self.provenance,
            "summary": self.summary,
            "accepted_count": len(self.accepted),
            "notes": self.notes,
            "findings": [dict(vars(f)) for f in self.findings],
            "accepted": [a.document() for a in self.accepted],
            "trend": [
                {
                    "snapshot": p.snapshot.id,
                    "taken_at": iso(p.snapshot.taken_at),
                    "summary": p.summary,
                    "accepted": p.accepted,
                }
                for p in self.trend
            ],
        }


def summarize(findings: Iterable[Finding], categories: Iterable[str]) -> dict[str, int]:
    return _count((f.category for f in findings), categories)


def _count(found: Iterable[str], categories: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(categories, 0)
    for category in found:
        counts[category] += 1
    return counts


def checked_categories(hr_ids: set[str] | None) -> list[str]:
    """A category left unchecked is absent rather than zero, so a count of 0 always means 'none found'."""
    return [c for c in CATEGORIES if c != "not-in-hr" or hr_ids is not None]


def find_orphans(snapshots: Iterable[Snapshot], hr_ids: set[str] | None = None) -> list[Finding]:
    """Findings of the last snapshot; ``snapshots`` run oldest to newest."""
    return orphan_report(snapshots, hr_ids).findings


def orphan_report(
    snapshots: Iterable[Snapshot],
    hr_ids: set[str] | None = None,
    outliers: OutlierSettings | None = None,
    exceptions: Iterable[FindingException] = (),
    now: datetime | None = None,
) -> OrphanReport:
    """Scan each snapshot in turn (a generator keeps only one in memory) and report the last.

    Findings an exception accepts are listed apart: in each snapshot of the trend, those accepted
    at the time it was taken; in the report, those accepted ``now`` (an expired one is back).
    When ``snapshots`` has a length, the earlier ones are scanned for what the trend and the
    first sightings need only: which findings they hold, not why.
    """
    now = now or datetime.now(timezone.utc)
    exceptions = list(exceptions)
    hr = {i.strip().lower() for i in hr_ids} if hr_ids is not None else None
    categories = checked_categories(hr)
    history = _PeerHistory()
    first_seen: dict[Key, int] = {}
    taken: dict[int, datetime] = {}
    trend: list[TrendPoint] = []
    last: Snapshot | None = None
    found: list[Hit] = []
    scan: _Scan | None = None
    newest = len(snapshots) if isinstance(snapshots, Sized) else None
    for position, snap in enumerate(snapshots, start=1):
        number = snap.id if snap.id is not None else position
        judge = newest is None or position == newest
        scan = _Scan(snap, history.movers(snap), hr, outliers or OutlierSettings(), judge)
        found = scan.hits()
        # Only an unbroken run counts: a finding that went away and came back starts again.
        first_seen = {hit[0]: first_seen.get(hit[0], number) for hit in found}
        info = replace(snap.info(), id=number)
        taken[number] = snap.taken_at
        open_hits, accepted = _accept(found, exceptions, snap.taken_at)
        trend.append(TrendPoint(info, _count((hit[1] for hit in open_hits), categories), len(accepted)))
        last = snap
    if last is None or scan is None:
        raise ValueError("orphan_report needs at least one snapshot")
    open_hits, accepted = _accept(sorted(found, key=_order), exceptions, now)
    taken_iso = {number: iso(moment) for number, moment in taken.items()}
    findings = [_finding(hit, first_seen[hit[0]], taken_iso) for hit in open_hits]
    notes = [scan.outlier_note] if scan.outlier_note else []
    report = OrphanReport(trend[-1].snapshot, last.flavour, dict(last.bases), findings, trend, categories, notes=notes)
    report.accepted = [Accepted(_finding(hit, first_seen[hit[0]], taken_iso), e) for hit, e in accepted]
    return report


def _accept(hits: list[Hit], exceptions: list[FindingException], at: datetime):
    """Hits split into open ones and (hit, exception) pairs an exception active at ``at`` accepts."""
    active = {(e.user_key, e.group_key): e for e in exceptions if e.active(at)}
    if not active:
        return hits, []
    open_hits, accepted = [], []
    for hit in hits:
        user, group = hit[2], hit[3]
        exception = active.get((identity(user), identity(group))) if user is not None else None
        if exception is None:
            open_hits.append(hit)
        else:
            accepted.append((hit, exception))
    return open_hits, accepted


def _order(hit: Hit) -> tuple:
    _key, category, user, group, value, _reason, signal = hit
    rank = SIGNAL_RANK.get(signal, 0)
    return (ORDER[category], rank, user.name.lower() if user else "", group.name.lower(), value.lower())


def _finding(hit: Hit, first_snapshot: int, taken: Mapping[int, str]) -> Finding:
    """``taken``: each snapshot's time, already in ISO form."""
    key, category, user, group, value, reason, signal = hit
    return filled(
        Finding,
        category=category,
        user_id=user.name if user else "",
        user_dn=user.dn if user else "",
        member_value=value,
        group=group.name,
        first_snapshot=first_snapshot,
        action=ACTIONS[category],
        key="|".join(key),
        user_key=key[1],  # the hit's key holds both identities (see _Scan.hit)
        group_key=key[3],
        group_dn=group.dn,
        reason=reason,
        first_seen=taken[first_snapshot],
        status="open",
        signal=signal,
    )


def filled(cls: type[T], **fields) -> T:
    """An instance of frozen dataclass ``cls`` given every field, in field order (as vars() lists them).

    A frozen dataclass sets its fields one object.__setattr__ at a time; filling the instance's
    dict at once is four times quicker, which counts for the 50,000 findings of a large report.
    """
    made = object.__new__(cls)
    made.__dict__.update(fields)
    return made


def identity(entry: Entry) -> str:
    """entryUUID / objectGUID when known: a renamed entry is the same one, a re-created DN is not."""
    return identity_key(entry.uuid, entry.dn)


class _PeerHistory:
    """Peer attributes each user has had in earlier snapshots, to recognise movers."""

    def __init__(self) -> None:
        self.first: dict[str, Mapping[str, str]] = {}  # as first seen
        self.varied: dict[str, dict[tuple, Mapping[str, str]]] = {}  # users seen with more than one profile

    def movers(self, snap: Snapshot) -> dict[str, Mapping[str, str]]:
        """Identity → earlier peer attributes, for users whose attributes differ from an earlier snapshot."""
        moved = {}
        for entry in snap.entries:
            if entry.kind != USER:
                continue
            key = entry.uuid or identity(entry)
            first = self.first.setdefault(key, entry.attrs)
            if first is entry.attrs:  # first sight: most of the work when there is one snapshot
                continue
            seen = self.varied.get(key)
            if seen is None:
                # Most people keep their attributes: equal as they are read, equal folded too.
                if first == entry.attrs:
                    continue
                now = profile(entry.attrs)
                if profile(first) == now:
                    continue
                seen = self.varied[key] = {profile(first): first}
            else:
                now = profile(entry.attrs)
            others = [attrs for known, attrs in seen.items() if known != now]
            if others:
                moved[key] = others[-1]
            seen.pop(now, None)
            seen[now] = entry.attrs  # dicts keep insertion order: the last one is the latest
        return moved


def profile(attrs: Mapping[str, str]) -> tuple:
    """Peer attributes compared as the directory does: names and values ignore case."""
    return _fold(tuple(attrs.items()))


@functools.lru_cache(maxsize=65536)
def _fold(items: tuple) -> tuple:
    # Thousands of users share each profile, so each distinct one is folded once.
    return tuple(sorted((name.lower(), value.strip().lower()) for name, value in items))


class _Scan:
    """The findings of one snapshot."""

    def __init__(
        self,
        snap: Snapshot,
        movers: Mapping[str, Mapping[str, str]],
        hr: set[str] | None,
        outliers: OutlierSettings,
        judge: bool = True,
    ):
        self.snap = snap
        self.judge = judge  # False: peer outliers are found but not judged (no signal, no reason)
        self.hr = hr
        self.outlier_settings = outliers
        self.outlier_note = ""
        self.graph = MembershipGraph(snap)
        self.by_idx = self.graph.by_idx
        self.users = [e for e in snap.entries if e.kind == USER]
        self.moved_from = movers
        self.movers = [u for u in self.users if u.enabled and identity(u) in movers] if movers else []
        self.peers = self._peers()
        self.roles = self.graph.roles_by_user()
        self.wanted = {u.idx for u in self.users if self._interesting(u)}
        self.wanted.update(u.idx for u in self.movers)
        self.wanted.update(p.idx for group in self.peers.values() for p in group)
        # One pass over the member lists for all of them; the peer-outlier scan counts by group.
        self.graph.index(self.wanted)

    def _interesting(self, user: Entry) -> bool:
        """Users some category looks at: the memberships of everyone else are never needed."""
        if not user.enabled or user.idx in self.roles:
            return True
        return self.hr is not None and user.name.strip().lower() not in self.hr

    def _peers(self) -> dict[tuple, list[Entry]]:
        """Enabled users sharing a mover's new profile, movers excepted.

        Peers who moved too carry leftovers of their own, so they cannot vouch for a grant.
        """
        wanted = {profile(u.attrs) for u in self.movers}
        peers: dict[tuple, list[Entry]] = {key: [] for key in wanted}
        if wanted:
            for user in self.users:
                key = profile(user.attrs)
                if key in wanted and user.enabled and identity(user) not in self.moved_from:
                    peers[key].append(user)
        return peers

    def hits(self) -> list[Hit]:
        out = self._dangling() + self._empty_groups() + self._unused_roles()
        for user in self.users:
            if user.idx in self.wanted:
                out += self._user_findings(user)
        movers = self._mover_leftovers()
        out += movers
        out += self._peer_outliers({(h[2].idx, h[3].idx) for h in movers if h[2] is not None})
        return out

    def hit(
        self, category: str, group: Entry, user: Entry | None = None, value: str = "", reason: str = "", signal=""
    ) -> Hit:
        key = (category, identity(user) if user else "", dnutil.normalize(value), identity(group))
        return key, category, user, group, value, reason, signal

    def _peer_outliers(self, known: set[tuple[int, int]]) -> list[Hit]:
        """Rights few current peers hold; a mover's leftovers are already reported as such."""
        scan = find_outliers(self.snap, self.outlier_settings, self.graph, judge=self.judge)
        self.outlier_note = scan.note
        return [
            self.hit("peer-outlier", o.group, o.user, reason=o.reason, signal=o.signal)
            for o in scan.outliers
            if (o.user.idx, o.group.idx) not in known
        ]

    # -- groups

    def _dangling(self) -> list[Hit]:
        dangling = {e.idx for e in self.snap.entries if e.kind == DANGLING}
        return [
            self.hit("dangling-member", self.by_idx[group], value=self.by_idx[m].dn, reason="names no entry")
            for group, members in self.snap.members.items()
            for m in sorted(dangling.intersection(members))
        ]

    def _empty_groups(self) -> list[Hit]:
        gone = {e.idx for e in self.snap.entries if e.kind == DANGLING or (e.kind == USER and not e.enabled)}
        out = []
        for group in self.snap.entries:
            members = self.snap.members.get(group.idx, ())
            if group.kind != GRANT or not gone.issuperset(members):
                continue
            reason = f"only disabled accounts or dangling values ({len(set(members))})" if members else "no members"
            out.append(self.hit("empty-group", group, reason=reason))
        return out

    def _unused_roles(self) -> list[Hit]:
        held: set[int] = set()
        for user, roles in self.roles.items():
            if self.by_idx[user].enabled:
                held |= roles
        return [
            self.hit("unused-role", role, reason="no enabled account holds it")
            for role in self.snap.entries
            if role.kind == ROLE and role.idx not in held
        ]

    # -- users

    def _direct(self, idx: int) -> list[Entry]:
        return [self.by_idx[g] for g in self.graph.groups_of(idx)]

    def _user_findings(self, user: Entry) -> list[Hit]:
        direct = self._direct(user.idx)
        if not direct:
            return []
        if not user.enabled:
            # Everything a disabled account holds should go; one category says so, once.
            return [self.hit("leaver-grant", g, user, reason="account disabled") for g in direct]
        out = []
        if self.hr is not None and user.name.strip().lower() not in self.hr:
            out += [self.hit("not-in-hr", g, user, reason="id not in the HR feed") for g in direct]
        roles = self.roles.get(user.idx)
        if roles:
            out += self._role_coverage(user, direct, roles)
        return out

    def _role_coverage(self, user: Entry, direct: list[Entry], roles: set[int]) -> list[Hit]:
        """Direct grants a role already gives (redundant), and those no role gives (unexplained)."""
        given: dict[int, list[str]] = defaultdict(list)
        for role in sorted(roles, key=lambda r: self.by_idx[r].name.lower()):
            for group in self.graph.above(role):
                if group != role:
                    given[group].append(self.by_idx[role].name)
        role_names = ", ".join(sorted(self.by_idx[r].name for r in roles))
        out = []
        for group in direct:
            if group.kind != GRANT:
                continue
            if group.idx in given:
                reason = f"also given by {', '.join(given[group.idx])}"
                out.append(self.hit("redundant-grant", group, user, reason=reason))
            else:
                out.append(self.hit("unexplained-grant", group, user, reason=f"not given by {role_names}"))
        return out

    def _mover_leftovers(self) -> list[Hit]:
        """Memberships of movers that none of their new peers reach."""
        held: dict[tuple, set[int]] = {}
        out = []
        for mover in self.movers:
            key = profile(mover.attrs)
            if key not in held:
                held[key] = set().union(*(self.graph.reach(p.idx) for p in self.peers[key]))
            reason = _moved(self.moved_from[identity(mover)], mover.attrs, bool(self.peers[key]))
            for group in self._direct(mover.idx):
                if group.idx not in held[key]:
                    out.append(self.hit("mover-leftover", group, mover, reason=reason))
        return out


def _moved(before: Mapping[str, str], after: Mapping[str, str], has_peers: bool) -> str:
    changed = [
        f"{name}: {before.get(name, '')} → {after.get(name, '')}"
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
    tail = "no new peer holds it" if has_peers else "no peer shares the new attributes"
    return f"moved ({'; '.join(changed)}); {tail}"
