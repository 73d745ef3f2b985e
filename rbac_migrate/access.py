"""Effective access and "why does X have G": pure functions over a snapshot."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat

from . import dn as dnutil
from .errors import NotFoundError, UsageError
from .model import GRANT, GROUP_KINDS, ROLE, USER, Entry, Snapshot

MAX_PATHS = 50
# Nested groups can multiply paths; a walk stops collecting past this many, whatever the nesting.
MAX_WALK = 1000
# Past this many members asked about one by one, inverting every member list at once is cheaper.
SCANS_BEFORE_INDEX = 16


@dataclass(frozen=True)
class AccessPath:
    """One chain of memberships from a user to a group: user, then each group in turn."""

    hops: tuple[Entry, ...]

    @property
    def source(self) -> str:
        """direct, role, or nested: how the first group up the chain was reached."""
        if len(self.hops) == 2:
            return "direct"
        return "role" if any(h.kind == ROLE for h in self.hops[1:-1]) else "nested"

    @property
    def via(self) -> str:
        """The role or group chain in between, for display ('' when direct)."""
        middle = self.hops[1:-1]
        roles = [h.name for h in middle if h.kind == ROLE]
        if self.source == "role" and len(middle) == 1:
            return roles[0]
        return " → ".join(h.name for h in middle)

    def describe(self) -> str:
        return " → ".join(h.name for h in self.hops)


@dataclass(frozen=True)
class Grant:
    """An effective grant of one user, with every path that gives it."""

    group: Entry
    paths: tuple[AccessPath, ...]

    @property
    def direct(self) -> bool:
        return any(p.source == "direct" for p in self.paths)

    @property
    def sources(self) -> list[str]:
        out = []
        for path in self.paths:
            label = "direct" if path.source == "direct" else f"{path.source}: {path.via}"
            if label not in out:
                out.append(label)
        return out


class MembershipGraph:
    """The memberships of one snapshot, walked up (member → groups) or down (group → members).

    Up: ``groups_of``, ``above``, ``reach``, ``effective_grants``, ``grants_given``, ``paths``.
    Down: ``below``, ``holders``, ``reaching``, ``reaching_all``, ``size``, ``roles_by_user``.

    Nothing is inverted up front, so a question costs what it touches: one user's access scans
    the member lists once for that user, "who reaches G" walks G and the groups inside it, and
    a report about many users inverts the member lists for those users only (``index``), one
    set intersection per group. Closures either way are memoised.

    Users need not be loaded: every member that is not a group, nor in ``not_users`` (external
    entries, dangling values), is a user; ``disabled`` names disabled users not loaded.
    """

    def __init__(self, snapshot: Snapshot, not_users: Collection[int] = (), disabled: Collection[int] = ()):
        self.snapshot = snapshot
        self.members = snapshot.members
        self.by_idx = {e.idx: e for e in snapshot.entries}
        self.groups = {i: e for i, e in self.by_idx.items() if e.kind in GROUP_KINDS}
        self.grant_ids = frozenset(i for i, e in self.groups.items() if e.kind == GRANT)
        loaded = [e for e in snapshot.entries if e.kind != GRANT and e.kind != ROLE]
        self.not_users = frozenset(not_users).union(self.groups, (e.idx for e in loaded if e.kind != USER))
        self.disabled = frozenset(disabled).union(e.idx for e in loaded if e.kind == USER and not e.enabled)
        self._up: dict[int, list[int]] = {}  # member → its groups, for the members asked about so far
        self._indexed_all = False
        self._scans = 0
        self._above: dict[int, frozenset[int]] = {}
        self._holders: dict[int, frozenset[int]] = {}

    # -- entries

    def kind(self, idx: int) -> str | None:
        """The entry's kind, or None when it is not loaded."""
        entry = self.by_idx.get(idx)
        return entry.kind if entry else None

    def name(self, idx: int) -> str:
        return self.by_idx[idx].name

    def of_kind(self, kind: str) -> list[int]:
        """The groups of one kind (GRANT or ROLE)."""
        return [idx for idx, entry in self.groups.items() if entry.kind == kind]

    # -- up: from a member to the groups that hold it

    @cached_property
    def children(self) -> dict[int, frozenset[int]]:
        """Group → the groups that are direct members of it."""
        ids = frozenset(self.groups)
        return {group: ids.intersection(members) for group, members in self.members.items()}

    @cached_property
    def _group_parents(self) -> dict[int, list[int]]:
        parents: dict[int, list[int]] = defaultdict(list)
        for group, kids in self.children.items():
            for kid in kids:
                parents[kid].append(group)
        return dict(parents)

    def groups_of(self, idx: int) -> list[int]:
        """The groups idx (a user, a role or a grant) is a direct member of, in snapshot order."""
        if idx in self.groups:
            return self._group_parents.get(idx, [])
        found = self._up.get(idx)
        if found is None:
            if self._indexed_all:
                return []
            self._scans += 1
            if self._scans > SCANS_BEFORE_INDEX:
                self.index()
                return self._up.get(idx, [])
            found = self._up[idx] = [g for g, members in self.members.items() if idx in members]
        return found

    def index(self, members: Iterable[int] | None = None) -> None:
        """Look up the groups of many members at once (None: every member).

        One set intersection per group, done in C; per-member scans are for a handful of users.
        """
        if self._indexed_all:
            return
        wanted = None if members is None else set(members) - self._up.keys() - self.groups.keys()
        if wanted is not None and not wanted:
            return  # all known already: intersecting an empty set would still walk every member tuple
        if wanted is None:
            found: dict[int, list[int]] = defaultdict(list)
            for group, values in self.members.items():
                for member in set(values):
                    found[member].append(group)
            for member in found.keys() - self._up.keys() - self.groups.keys():
                self._up[member] = found[member]
            self._indexed_all = True
            return
        lists: dict[int, list[int]] = {member: [] for member in wanted}
        groups_of = lists.__getitem__
        for group, values in self.members.items():
            # list.append(groups_of(member), group) for each member, looped in C: a million
            # memberships cost a tenth of what a Python loop over them does.
            deque(map(list.append, map(groups_of, wanted.intersection(values)), repeat(group)), maxlen=0)
        self._up.update(lists)

    def above(self, group: int) -> frozenset[int]:
        """The group and every group it is nested into, at any depth (cycles are safe)."""
        found = self._above.get(group)
        if found is None:
            seen, stack = {group}, [group]
            while stack:
                for parent in self.groups_of(stack.pop()):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            found = self._above[group] = frozenset(seen)
        return found

    def reach(self, idx: int) -> set[int]:
        """Every group idx reaches by membership: direct, through roles and through nesting."""
        found: set[int] = set()
        for group in self.groups_of(idx):
            found |= self.above(group)
        return found

    def effective_grants(self, idx: int) -> frozenset[int]:
        """The grant groups idx reaches."""
        return frozenset(self.reach(idx) & self.grant_ids)

    def grants_given(self, groups: Iterable[int]) -> frozenset[int]:
        """The grants that holding all these groups gives: grants among them and above them."""
        found: set[int] = set()
        for group in groups:
            found |= self.above(group)
        return frozenset(found & self.grant_ids)

    def assigned_grants(self, idx: int) -> frozenset[int]:
        """Grants given to idx as such: direct grants, and the grants of the roles it holds.

        Grants that only follow from grant nesting are left out: they come along anyway.
        """
        direct = self.groups_of(idx)
        grants = set(self.grant_ids.intersection(direct))
        seen: set[int] = set()
        stack = [g for g in direct if self.kind(g) == ROLE]
        while stack:
            role = stack.pop()
            if role in seen:
                continue
            seen.add(role)
            for parent in self.groups_of(role):
                if parent in self.grant_ids:
                    grants.add(parent)
                else:
                    stack.append(parent)
        return frozenset(grants)

    def reduce(self, grants: Iterable[int]) -> frozenset[int]:
        """Drop grants another grant of the set already gives through nesting."""
        wanted = set(grants)
        implied = {g for h in wanted for g in self.reach(h) & wanted if h not in self.above(g)}
        return frozenset(wanted - implied)

    # -- down: from a group to the members below it

    def below(self, group: int) -> set[int]:
        """The group and every group nested inside it, at any depth (cycles are safe)."""
        seen, stack = {group}, [group]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def size(self, group: int) -> int:
        """Member values of the group and the groups nested in it: the most users who can reach it."""
        return sum(len(self.members.get(node, ())) for node in self.below(group))

    def holders(self, group: int) -> frozenset[int]:
        """Every user (enabled or not) who reaches the group."""
        if group not in self._holders:
            below = (self.members.get(node, ()) for node in self.below(group))
            self._holders[group] = frozenset(set().union(*below) - self.not_users)
        return self._holders[group]

    def reaching(self, group: int, among: Collection[int]) -> set[int]:
        """The members of ``among`` who reach the group, directly or through nesting."""
        pool = among if isinstance(among, (set, frozenset)) else frozenset(among)
        found: set[int] = set()
        for node in self.below(group):
            found |= pool.intersection(self.members.get(node, ()))
        return found

    def reaching_all(self, grants: Iterable[int]) -> set[int]:
        """Every user (enabled or not) who reaches all of the grants."""
        found: set[int] | None = None
        for grant in sorted(grants, key=self.size):
            if grant not in self.groups:
                return set()
            found = set(self.holders(grant)) if found is None else self.reaching(grant, found)
            if not found:
                break
        return found or set()

    def roles_by_user(self) -> dict[int, set[int]]:
        """User → the roles they hold, directly or through nested groups."""
        held: dict[int, set[int]] = defaultdict(set)
        for role in self.of_kind(ROLE):
            for user in self.holders(role):
                held[user].add(role)
        return dict(held)

    # -- paths: why a member reaches a group

    def paths(self, idx: int, target: int | None = None, limit: int = MAX_PATHS) -> list[AccessPath]:
        """Simple membership paths from idx to target (or to every group), shortest first."""
        found: list[AccessPath] = []
        # Only groups nested inside the target can lie on a path to it.
        allowed = None if target is None else self.below(target)

        def walk(node: int, trail: list[int]) -> None:
            for group in self.groups_of(node):
                if len(found) >= MAX_WALK:
                    return
                if group in trail or (allowed is not None and group not in allowed):
                    continue
                trail.append(group)
                if target is None or group == target:
                    found.append(AccessPath(tuple(self.by_idx[i] for i in trail)))
                walk(group, trail)
                trail.pop()

        walk(idx, [idx])
        found.sort(key=lambda p: (len(p.hops), p.describe()))
        return found if target is None else found[:limit]

    def grants_with_paths(self, idx: int) -> list[Grant]:
        """idx's effective grants, each with the paths that give it, sorted by name."""
        by_group: dict[int, list[AccessPath]] = defaultdict(list)
        for path in self.paths(idx):
            end = path.hops[-1]
            if end.kind == GRANT and len(by_group[end.idx]) < MAX_PATHS:
                by_group[end.idx].append(path)
        # A walk cut short by MAX_WALK may miss a grant: a walk aimed at it finds its paths.
        for missing in self.effective_grants(idx) - by_group.keys():
            by_group[missing] = self.paths(idx, missing)
        grants = [Grant(self.by_idx[g], tuple(p)) for g, p in by_group.items()]
        return sorted(grants, key=lambda g: g.group.name.lower())


def find_one(candidates: list[Entry], what: str, name: str) -> Entry:
    """Exactly one match, or a clear error (unknown, or ambiguous with the DNs to pick from)."""
    if not candidates:
        raise NotFoundError(f"no {what} '{name}' in the snapshot")
    if len(candidates) > 1:
        dns = "; ".join(sorted(c.dn for c in candidates)[:5])
        raise UsageError(f"{what} '{name}' is ambiguous: name it by DN ({dns})")
    return candidates[0]


def match_entries(snapshot: Snapshot, name_or_dn: str, kinds: tuple[str, ...]) -> list[Entry]:
    """Entries whose name (case-insensitive) or DN matches, among the given kinds."""
    if "=" in name_or_dn:
        key = dnutil.normalize(name_or_dn)
        return [e for e in snapshot.entries if e.kind in kinds and dnutil.normalize(e.dn) == key]
    key = name_or_dn.strip().lower()
    return [e for e in snapshot.entries if e.kind in kinds and e.name.lower() == key]


# -- commands over a stored snapshot (the store is passed in; nothing here imports it) -------


@dataclass(frozen=True)
class UserAccess:
    snapshot_id: int
    user: Entry
    roles: list[Entry]
    grants: list[Grant]


def _user_graph(store, user: str, snapshot: str | int | None) -> tuple[MembershipGraph, Entry]:
    info = store.snapshot_info(snapshot)
    entry = find_one(store.find_entries(info.id, user, (USER,)), "user", user)
    snap = store.load_snapshot(info.id, kinds=())
    snap.entries.append(entry)
    return MembershipGraph(snap), entry


def access_show(store, user: str, snapshot: str | int | None = None) -> UserAccess:
    """A user's effective grants with their sources, from a snapshot (latest by default)."""
    graph, entry = _user_graph(store, user, snapshot)
    roles = sorted(
        (graph.by_idx[g] for g in graph.reach(entry.idx) if graph.kind(g) == ROLE),
        key=lambda e: e.name.lower(),
    )
    return UserAccess(graph.snapshot.id or 0, entry, roles, graph.grants_with_paths(entry.idx))


def access_explain(
    store, user: str, group: str, snapshot: str | int | None = None
) -> tuple[Entry, Entry, list[AccessPath]]:
    """Every membership path from a user to a group; an empty list means no access."""
    graph, entry = _user_graph(store, user, snapshot)
    target = find_one(_match_groups(graph.snapshot, group), "group", group)
    return entry, target, graph.paths(entry.idx, target.idx)


def _match_groups(snap: Snapshot, name: str) -> list[Entry]:
    found = match_entries(snap, name, GROUP_KINDS)
    grants = [e for e in found if e.kind == GRANT]
    return grants if len(found) > 1 and len(grants) == 1 else found
