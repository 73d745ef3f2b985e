"""Who reaches which groups, for many users at once: shared by the reports.

A report needs the memberships of a few kinds of user (leavers, role holders, movers and their
peers), not of everyone. Inverting the member lists only for those users is a set intersection
per group, done in C, where the full inversion (AccessGraph.parents) walks a million values in
Python: at 100,000 users that is most of a report's budget.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ..model import ROLE, USER, Entry, Snapshot


class Reach:
    """Memberships in one snapshot, upwards for the users asked about, downwards from roles."""

    def __init__(self, snap: Snapshot, users: Iterable[int] | None = None, by_idx: dict[int, Entry] | None = None):
        self.snap = snap
        self.by_idx = by_idx if by_idx is not None else {e.idx: e for e in snap.entries}
        self.parents = _invert(snap, None if users is None else set(users))
        self._closures: dict[int, frozenset[int]] = {}

    def direct(self, idx: int) -> list[Entry]:
        """The groups idx is a direct member of (idx must be one of the users asked about)."""
        return [self.by_idx[g] for g in self.parents.get(idx, ())]

    def closure(self, group: int) -> frozenset[int]:
        """The group and every group it reaches by nesting (cycles are safe)."""
        found = self._closures.get(group)
        if found is None:
            seen, stack = {group}, [group]
            while stack:
                for parent in self.parents.get(stack.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            found = self._closures[group] = frozenset(seen)
        return found

    def reach_of(self, idx: int) -> set[int]:
        """Every group idx reaches: direct, through roles and through nesting."""
        reach: set[int] = set()
        for group in self.parents.get(idx, ()):
            reach |= self.closure(group)
        return reach


def roles_by_user(snap: Snapshot, by_idx: dict[int, Entry]) -> dict[int, set[int]]:
    """User idx → the roles they hold, directly or through nested groups; walked down from each role."""
    holders: dict[int, set[int]] = defaultdict(set)
    for role in snap.entries:
        if role.kind == ROLE:
            for user in _users_below(snap, by_idx, role.idx):
                holders[user].add(role.idx)
    return dict(holders)


def _users_below(snap: Snapshot, by_idx: dict[int, Entry], group: int) -> set[int]:
    members = snap.members
    users: set[int] = set()
    seen, stack = {group}, [group]
    while stack:
        for member in members.get(stack.pop(), ()):
            if by_idx[member].kind == USER:
                users.add(member)
            elif member in members and member not in seen:
                seen.add(member)
                stack.append(member)
    return users


def _invert(snap: Snapshot, users: set[int] | None) -> dict[int, list[int]]:
    """Member idx → groups it is a direct member of, for every group and the given users (None: all)."""
    wanted = None if users is None else users | snap.members.keys()
    up: dict[int, list[int]] = defaultdict(list)
    for group, members in snap.members.items():
        for member in set(members) if wanted is None else wanted.intersection(members):
            up[member].append(group)
    return up
