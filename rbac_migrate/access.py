"""Effective access and "why does X have G": pure functions over a snapshot."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from . import dn as dnutil
from .errors import NotFoundError, UsageError
from .model import GRANT, GROUP_KINDS, ROLE, USER, Entry, Snapshot

MAX_PATHS = 50
# Nested groups can multiply paths; a walk stops collecting past this many, whatever the nesting.
MAX_WALK = 1000


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


class AccessGraph:
    """Membership graph of a snapshot, walked upwards from members to the groups holding them."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.by_idx = {e.idx: e for e in snapshot.entries}

    @cached_property
    def parents(self) -> dict[int, list[int]]:
        """Member idx → the groups it is a direct member of, for every member at once."""
        up: dict[int, list[int]] = defaultdict(list)
        for group_idx, members in self.snapshot.members.items():
            for member in set(members):
                up[member].append(group_idx)
        for groups in up.values():
            groups.sort()
        return dict(up)

    @cached_property
    def _member_sets(self) -> dict[int, frozenset[int]]:
        return {group: frozenset(members) for group, members in self.snapshot.members.items()}

    def parents_of(self, idx: int) -> list[int]:
        """The groups idx is a direct member of.

        Questions about one user touch a handful of nodes, so scanning the groups per node beats
        inverting a million memberships; bulk work builds the full inversion once.
        """
        if "parents" in self.__dict__:
            return self.parents.get(idx, [])
        cache = self.__dict__.setdefault("_parents_cache", {})
        if idx not in cache:
            cache[idx] = sorted(g for g, members in self._member_sets.items() if idx in members)
        return cache[idx]

    def direct_groups(self, idx: int, kind: str | None = None) -> list[Entry]:
        groups = (self.by_idx[g] for g in self.parents_of(idx))
        return [g for g in groups if kind is None or g.kind == kind]

    def reachable(self, idx: int) -> set[int]:
        """Every group reachable from idx by membership, nesting included (cycles are safe)."""
        seen: set[int] = set()
        stack = list(self.parents_of(idx))
        while stack:
            group = stack.pop()
            if group not in seen:
                seen.add(group)
                stack.extend(self.parents_of(group))
        return seen

    def effective_grants(self, idx: int) -> frozenset[int]:
        """The grant groups idx reaches."""
        return frozenset(g for g in self.reachable(idx) if self.by_idx[g].kind == GRANT)

    def paths(self, idx: int, target: int | None = None, limit: int = MAX_PATHS) -> list[AccessPath]:
        """Simple membership paths from idx to target (or to every group), shortest first."""
        found: list[AccessPath] = []
        allowed = None if target is None else self._groups_below(target) | {target}

        def walk(node: int, trail: list[int]) -> None:
            for group in self.parents_of(node):
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

    def _groups_below(self, target: int) -> set[int]:
        """Groups nested (at any depth) inside target: only they can lie on a path to it."""
        below: set[int] = set()
        stack = [target]
        while stack:
            for member in self.snapshot.members.get(stack.pop(), ()):
                if member not in below and member in self.snapshot.members:
                    below.add(member)
                    stack.append(member)
        return below

    def grants_of(self, idx: int) -> list[Grant]:
        """Effective grants with their paths, sorted by name."""
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


def _user_graph(store, user: str, snapshot: str | int | None) -> tuple[AccessGraph, Entry]:
    info = store.snapshot_info(snapshot)
    entry = find_one(store.find_entries(info.id, user, (USER,)), "user", user)
    snap = store.load_snapshot(info.id, kinds=())
    snap.entries.append(entry)
    return AccessGraph(snap), entry


def access_show(store, user: str, snapshot: str | int | None = None) -> UserAccess:
    """A user's effective grants with their sources, from a snapshot (latest by default)."""
    graph, entry = _user_graph(store, user, snapshot)
    roles = sorted(
        (graph.by_idx[g] for g in graph.reachable(entry.idx) if graph.by_idx[g].kind == ROLE),
        key=lambda e: e.name.lower(),
    )
    return UserAccess(graph.snapshot.id or 0, entry, roles, graph.grants_of(entry.idx))


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
