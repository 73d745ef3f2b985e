"""The role catalogue's pure side: definitions, candidates, names."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from ..access import MembershipGraph
from ..errors import UsageError
from ..model import ACTIVE, DELETED, GRANT, ROLE, USER, Snapshot  # noqa: F401 - re-exported

# A letter or digit first and last: names become the cn of an LDAP entry and an AD
# sAMAccountName, where leading or trailing spaces and most punctuation cause trouble.
_ROLE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?\Z")
MAX_NAME = 64


def check_role_name(name: str) -> str:
    """The name, or a one-line error saying what a role name may contain."""
    if not _ROLE_NAME.match(name or ""):
        raise UsageError(
            f"role name '{name}' is not valid: use letters, digits, '.', '_', '-' and inner spaces "
            f"(at most {MAX_NAME} characters)"
        )
    return name


@dataclass(frozen=True)
class Candidate:
    """A user who already reaches everything a role grants."""

    user: int
    explained: int  # direct grants the role would make redundant
    direct: int  # all direct grants

    @property
    def share(self) -> float:
        return self.explained / self.direct if self.direct else 0.0


@dataclass(frozen=True)
class NearMiss:
    """A user who lacks a few of a role's grants: moving them would give new access."""

    user: int
    missing: frozenset[int]


@dataclass(frozen=True)
class Candidates:
    role_grants: frozenset[int]
    safe: list[Candidate]
    near: list[NearMiss]
    disabled: int  # disabled users who would otherwise be candidates
    holding: int  # users who already hold the role


def rank_candidates(
    graph: MembershipGraph, role_grants: frozenset[int], on_role: Collection[int], max_missing: int = 1
) -> Candidates:
    """Users safe to migrate onto a role, best explained first; near-misses apart."""
    reached: Counter[int] = Counter()
    for grant in role_grants:
        reached.update(graph.holders(grant) if grant in graph.groups else ())
    need = len(role_grants)
    skip = set(on_role)
    complete = {u for u, n in reached.items() if n == need} - skip
    safe_users = complete - graph.disabled
    near_users = {u for u, n in reached.items() if need - max_missing <= n < need} - skip - graph.disabled
    counts = direct_grant_counts(graph, safe_users, role_grants)
    safe = [Candidate(u, *counts.get(u, (0, 0))) for u in safe_users]
    safe.sort(key=lambda c: (-c.share, -c.explained, c.user))
    near = [NearMiss(u, frozenset(g for g in role_grants if u not in graph.holders(g))) for u in near_users]
    near.sort(key=lambda n: (len(n.missing), n.user))
    return Candidates(role_grants, safe, near, len(complete & graph.disabled), len(skip - graph.not_users))


def direct_grant_counts(graph: MembershipGraph, users: set[int], within: frozenset[int]) -> dict[int, tuple[int, int]]:
    """For each user: (direct grants inside ``within``, all direct grants)."""
    explained: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for grant in graph.of_kind(GRANT):
        hit = users.intersection(graph.members.get(grant, ()))
        total.update(hit)
        if grant in within:
            explained.update(hit)
    return {u: (explained[u], total[u]) for u in total}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def suggest_name(parts: Iterable[str], taken: Collection[str], fallback: str = "new") -> str:
    """'role-' and the slugs of parts, numbered when the name is taken (case-insensitively)."""
    words = [s for s in (slug(p) for p in parts) if s] or [slug(fallback) or "new"]
    base = ("role-" + "-".join(words))[: MAX_NAME - 4].rstrip("-")
    lowered = {t.lower() for t in taken}
    name, number = base, 2
    while name.lower() in lowered:
        name, number = f"{base}-{number}", number + 1
    return name


@dataclass
class MinedNames:
    """Names for mined roles, unique among themselves and the names already taken."""

    taken: set[str] = field(default_factory=set)

    def name(self, grants: Collection[str], holder_attrs: list[Mapping[str, str]], baseline: bool = False) -> str:
        parts = ["baseline"] if baseline else _common_attrs(holder_attrs) or _common_prefix(grants)
        chosen = suggest_name(parts, self.taken, fallback="mined")
        self.taken.add(chosen)
        return chosen


def _common_attrs(holder_attrs: list[Mapping[str, str]]) -> list[str]:
    """The peer-attribute values most holders share (all of them, else the first), or []."""
    if not holder_attrs:
        return []
    for width in (None, 1):
        counts = Counter(tuple(attrs.values())[:width] for attrs in holder_attrs if attrs)
        if counts:
            values, count = counts.most_common(1)[0]
            if values and 2 * count >= len(holder_attrs):
                return list(values)
    return []


def _common_prefix(grants: Collection[str]) -> list[str]:
    """The first word the grant names share ('fin-ledger-read', 'fin-ap-read' → 'fin'), or []."""
    heads = {re.split(r"[-_. ]", g, maxsplit=1)[0].lower() for g in grants}
    return list(heads) if len(heads) == 1 else []


def matches(rule: Mapping[str, str], attrs: Mapping[str, str]) -> bool:
    """Whether a user's peer attributes satisfy an assignment rule (values compared without case)."""
    lowered = {k.lower(): str(v).strip().lower() for k, v in attrs.items()}
    return bool(rule) and all(lowered.get(k.lower()) == str(v).strip().lower() for k, v in rule.items())
