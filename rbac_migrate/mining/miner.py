"""Exact-cover role mining: the fewest roles that give every user exactly their grants.

The pipeline: set rare grants aside (``min_holders``), impose the baseline role, collapse
identical users and identical permission columns into a bit matrix, shrink it with
optimum-preserving reductions, solve what is left as a set cover over the closed permission
sets, then give the dropped columns back and expand everything to names again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .bitsets import intersection_closure, iter_bits
from .cover import solve_set_cover
from .reduction import Relation, reduce_relation, restore_columns
from .result import MinedRole, MiningResult
from .trim import trim_roles

DEFAULT_EFFORT = 2_000_000
# Closed permission sets can in theory be exponentially many; past this the search works on a
# partial candidate list (still exact covers, no longer a proven minimum).
INTENT_CAP = 20_000
# The fallback lower bound compares grants pairwise; it looks at this many at most.
_BOUND_SAMPLE = 4000


def mine_roles(
    access: Mapping[str, Iterable[str]],
    *,
    min_holders: int = 1,
    baseline_share: float | None = None,
    effort: int = DEFAULT_EFFORT,
) -> MiningResult:
    """Find few roles whose union gives every user exactly the grants they hold today.

    Each role is held by every user who holds all its grants, so nobody gains a right, and the
    roles a user holds add up to all their grants, so nobody loses one. Identical users are
    mined once; users without grants hold nothing.

    ``min_holders``: every role is held by at least this many users. A grant held by fewer
    users cannot be part of any such role; it stays a direct grant and is listed in
    ``exceptions``. All other grants are covered by roles.

    ``baseline_share``: grants held by at least this share of the users who hold anything are
    put in one baseline role, held by everyone who holds all of them; other roles cover the
    rest, including baseline grants of users who lack some of them. No baseline is made when it
    would have fewer than ``min_holders`` holders.

    ``effort``: search budget for improving on, or proving, the cover found after the
    reductions, in work units of roughly a microsecond; 0 keeps the first cover. The budget is
    counted, not timed, so the same input always gives the same result.

    ``lower_bound`` of the result is a proven floor on the role count under the same settings;
    on well-structured directories the search usually reaches it, proving the cover minimal.
    """
    grants = _normalise(access)
    _check_settings(min_holders, baseline_share, effort)
    counts = Counter(grant for held in grants.values() for grant in held)
    rare = frozenset(grant for grant, count in counts.items() if count < min_holders)
    exceptions = {user: held & rare for user, held in sorted(grants.items()) if held & rare}
    matrix = _Matrix.build({user: held - rare for user, held in grants.items() if held - rare})
    baseline = matrix.intent_of(_baseline_grants(grants, counts, rare, baseline_share))
    if baseline and matrix.weight(matrix.extent(baseline)) < min_holders:
        baseline = 0
    relation = Relation.build(matrix.rows, len(matrix.columns), [baseline] if baseline else [])
    intents, bound = _solve(relation, matrix, min_holders, effort)
    intents = restore_columns(relation, intents, frozen=1 if baseline else 0)
    weights = [len(users) for users in matrix.users]
    intents = trim_roles(relation.holders, intents, weights, keep=1 if baseline else 0)
    roles = [matrix.role(intent, relation.extent(intent)) for intent in intents]
    main = roles[1:] if baseline else roles
    return MiningResult(
        roles=tuple(sorted(main, key=lambda role: (-len(role.holders), sorted(role.grants)))),
        baseline=roles[0] if baseline else None,
        exceptions=exceptions,
        lower_bound=bound,
    )


def _normalise(access: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    grants: dict[str, frozenset[str]] = {}
    for user, held in access.items():
        if isinstance(held, str):
            raise TypeError(f"grants of {user!r} must be a collection of names, not a string")
        grants[user] = frozenset(held)
    return grants


def _check_settings(min_holders: int, baseline_share: float | None, effort: int) -> None:
    if min_holders < 1:
        raise ValueError(f"min_holders must be at least 1, got {min_holders}")
    if baseline_share is not None and not 0 < baseline_share <= 1:
        raise ValueError(f"baseline_share must be in (0, 1], got {baseline_share}")
    if effort < 0:
        raise ValueError(f"effort must not be negative, got {effort}")


def _baseline_grants(
    grants: Mapping[str, frozenset[str]],
    counts: Counter[str],
    rare: frozenset[str],
    share: float | None,
) -> frozenset[str]:
    if share is None:
        return frozenset()
    users = sum(1 for held in grants.values() if held)
    # The epsilon keeps 0.9 of 200 users at 180, not a float hair above it.
    threshold = share * users - 1e-9
    return frozenset(g for g, count in counts.items() if count >= threshold and g not in rare)


@dataclass
class _Matrix:
    """Distinct grant sets (rows) by classes of grants held by the same rows (columns)."""

    users: list[list[str]]
    columns: list[tuple[str, ...]]
    rows: list[int]

    @classmethod
    def build(cls, grants: Mapping[str, frozenset[str]]) -> _Matrix:
        by_set: dict[frozenset[str], list[str]] = {}
        for user in sorted(grants):
            by_set.setdefault(grants[user], []).append(user)
        distinct = sorted(by_set, key=sorted)
        holders: dict[str, int] = {}
        for index, held in enumerate(distinct):
            for grant in held:
                holders[grant] = holders.get(grant, 0) | 1 << index
        classes: dict[int, list[str]] = {}
        for grant in sorted(holders):
            classes.setdefault(holders[grant], []).append(grant)
        rows = [0] * len(distinct)
        for column, mask in enumerate(classes):
            for index in iter_bits(mask):
                rows[index] |= 1 << column
        columns = [tuple(names) for names in classes.values()]
        return cls([by_set[held] for held in distinct], columns, rows)

    def intent_of(self, grants: frozenset[str]) -> int:
        """Columns made of the given grants (a union of whole columns by construction)."""
        return sum(1 << c for c, names in enumerate(self.columns) if names[0] in grants)

    def extent(self, intent: int) -> int:
        """Rows holding every column of ``intent``."""
        return sum(1 << index for index, row in enumerate(self.rows) if intent & ~row == 0)

    def weight(self, extent: int) -> int:
        """Number of users in the rows of ``extent``."""
        return sum(len(self.users[index]) for index in iter_bits(extent))

    def role(self, intent: int, extent: int) -> MinedRole:
        """The named role for columns ``intent`` held by rows ``extent``."""
        grants = frozenset(g for c in iter_bits(intent) for g in self.columns[c])
        holders = frozenset(u for index in iter_bits(extent) for u in self.users[index])
        return MinedRole(grants=grants, holders=holders)


def _solve(relation: Relation, matrix: _Matrix, min_holders: int, effort: int) -> tuple[list[int], int]:
    """Reduce, then cover what is left; return all intents and a lower bound on their number."""
    reduce_relation(relation)
    candidates, complete = _candidates(relation, matrix, min_holders)
    elements: dict[tuple[int, int], int] = {}
    for row in iter_bits(relation.active):
        for column in iter_bits(relation.need[row]):
            elements[row, column] = len(elements)
    masks = []
    for intent in candidates:
        mask = 0
        for row in iter_bits(relation.extent(intent) & relation.active):
            for column in iter_bits(intent & relation.need[row]):
                mask |= 1 << elements[row, column]
        masks.append(mask)
    solution = solve_set_cover(masks, (1 << len(elements)) - 1, effort)
    fixed = len(relation.fixed)
    bound = solution.lower_bound if complete else _pairwise_bound(relation)
    return relation.fixed + [candidates[i] for i in solution.chosen], fixed + bound


def _candidates(relation: Relation, matrix: _Matrix, min_holders: int) -> tuple[list[int], bool]:
    """Closed permission sets that could still cover something, and whether the list is complete.

    With ``min_holders`` 1, closing over the rows still to cover suffices; otherwise a role's
    holder count depends on every row, so the closure runs over all of them.
    """
    active = [relation.rows[index] for index in iter_bits(relation.active)]
    basis = active if min_holders == 1 else relation.rows
    intents, complete = intersection_closure(basis, INTENT_CAP)
    if not complete:
        # The widest role holding one column always fits, so the candidates stay sufficient.
        singles = {_closure_of(relation, column) for column in iter_bits(relation.alive)}
        intents = sorted(set(intents) | singles)
    needed = 0
    for index in iter_bits(relation.active):
        needed |= relation.need[index]
    return [
        intent for intent in intents if intent & needed and matrix.weight(relation.extent(intent)) >= min_holders
    ], complete


def _closure_of(relation: Relation, column: int) -> int:
    intent = relation.alive
    for index in iter_bits(relation.holders[column]):
        intent &= relation.rows[index]
    return intent


def _pairwise_bound(relation: Relation) -> int:
    """Grants that pairwise no role can cover together: each needs a role of its own."""
    rows = relation.rows
    picked: list[tuple[int, int]] = []
    grants = ((row, column) for row in iter_bits(relation.active) for column in iter_bits(relation.need[row]))
    for examined, (row, column) in enumerate(grants):
        if examined >= _BOUND_SAMPLE:
            break
        if all(not (rows[row] >> c & 1 and rows[r] >> column & 1) for r, c in picked):
            picked.append((row, column))
    return len(picked)
