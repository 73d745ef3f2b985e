"""Effective access over nested groups, pure: cycles, shared paths and the sources shown."""

from __future__ import annotations

from datetime import datetime, timezone

from rbac_migrate.access import MAX_WALK, MembershipGraph
from rbac_migrate.model import GRANT, ROLE, USER, Entry, Snapshot


def graph(members: dict[int, tuple[int, ...]], kinds: dict[int, str]) -> MembershipGraph:
    entries = [Entry(i, kind, f"cn=e{i},dc=x", f"e{i}") for i, kind in sorted(kinds.items())]
    return MembershipGraph(Snapshot(datetime.now(timezone.utc), "test", "openldap", {}, entries, members))


def test_nesting_cycles_terminate_and_reach_every_group():
    # user 0 in grant 1; 1 and 2 contain each other; 2 is inside 3.
    g = graph({1: (0, 2), 2: (1,), 3: (2,)}, {0: USER, 1: GRANT, 2: GRANT, 3: GRANT})
    assert g.effective_grants(0) == {1, 2, 3}
    paths = g.paths(0, 3)
    assert [p.describe() for p in paths] == ["e0 → e1 → e2 → e3"]
    assert paths[0].source == "nested"


def test_sources_direct_role_and_nested():
    # user 0: direct in grant 1, holds role 2, role 2 is a member of grant 1 and grant 3.
    g = graph({1: (0, 2), 2: (0,), 3: (2,)}, {0: USER, 1: GRANT, 2: ROLE, 3: GRANT})
    grants = {grant.group.name: grant.sources for grant in g.grants_with_paths(0)}
    assert grants == {"e1": ["direct", "role: e2"], "e3": ["role: e2"]}


def test_per_user_and_bulk_parent_lookups_agree():
    members = {10: (0, 1, 11), 11: (2,), 12: (11, 0)}
    kinds = {0: USER, 1: USER, 2: USER, 10: GRANT, 11: GRANT, 12: ROLE}
    lazy, bulk = graph(members, kinds), graph(members, kinds)
    bulk.index()  # builds the full inversion
    for idx in kinds:
        assert lazy.groups_of(idx) == bulk.groups_of(idx)


def test_path_enumeration_is_bounded_in_dense_nesting():
    # Twelve layers of two groups each, every group in both groups above it: 2**12 paths to the top.
    kinds = {0: USER}
    members: dict[int, tuple[int, ...]] = {}
    layer = [0]
    next_id = 1
    for _ in range(12):
        new = [next_id, next_id + 1]
        next_id += 2
        for group in new:
            kinds[group] = GRANT
            members[group] = tuple(layer)
        layer = new
    g = graph(members, kinds)
    assert len(g.paths(0)) == MAX_WALK
    assert g.effective_grants(0) == frozenset(k for k in kinds if k)
    shown = g.grants_with_paths(0)
    assert {grant.group.idx for grant in shown} == set(g.effective_grants(0))  # none lost to the bound
    assert all(grant.paths for grant in shown)
