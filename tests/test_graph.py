"""The one membership graph, pure: walked up from members and down from groups, it tells one story."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from rbac_migrate.access import SCANS_BEFORE_INDEX, MembershipGraph
from rbac_migrate.model import DANGLING, EXTERNAL, GRANT, GROUP_KINDS, ROLE, USER, Entry, Snapshot


def snapshot(members: dict[int, tuple[int, ...]], kinds: dict[int, str], disabled=()) -> Snapshot:
    entries = [Entry(i, kind, f"cn=e{i},dc=x", f"e{i}", enabled=i not in disabled) for i, kind in sorted(kinds.items())]
    return Snapshot(datetime.now(timezone.utc), "test", "openldap", {}, entries, members)


def groups_only(snap: Snapshot) -> MembershipGraph:
    """The graph as role commands load it: group entries only, the rest named by index."""
    not_users = [e.idx for e in snap.entries if e.kind in (EXTERNAL, DANGLING)]
    disabled = [e.idx for e in snap.entries if e.kind == USER and not e.enabled]
    groups = [e for e in snap.entries if e.kind in GROUP_KINDS]
    return MembershipGraph(Snapshot(snap.taken_at, "test", "openldap", {}, groups, snap.members), not_users, disabled)


def test_cycles_terminate_both_ways():
    # user 0 in grant 1; grants 1, 2, 3 nest in a ring; role 4 holds user 5 and sits in grant 3.
    kinds = {0: USER, 1: GRANT, 2: GRANT, 3: GRANT, 4: ROLE, 5: USER}
    g = MembershipGraph(snapshot({1: (0, 3), 2: (1,), 3: (2, 4), 4: (5,)}, kinds))
    assert g.above(1) == {1, 2, 3}
    assert g.below(1) == {1, 2, 3, 4}
    assert g.reach(1) == {1, 2, 3}  # a group in a ring reaches itself
    assert g.effective_grants(0) == g.effective_grants(5) == {1, 2, 3}
    assert g.holders(2) == {0, 5}
    assert [p.describe() for p in g.paths(5, 1)] == ["e5 → e4 → e3 → e1"]


def test_nesting_through_roles_is_seen_from_both_ends():
    # user 0 holds role 10 directly and role 11 through role 10; 11 sits in grant 20, which
    # nests in grant 21; user 1 has grant 20 directly.
    kinds = {0: USER, 1: USER, 10: ROLE, 11: ROLE, 20: GRANT, 21: GRANT}
    g = MembershipGraph(snapshot({10: (0,), 11: (10,), 20: (11, 1), 21: (20,)}, kinds))
    assert g.groups_of(0) == [10]
    assert g.groups_of(11) == [20]
    assert g.effective_grants(0) == {20, 21}
    assert g.roles_by_user() == {0: {10, 11}}
    assert g.holders(21) == {0, 1}
    assert g.reaching_all([20, 21]) == {0, 1}
    assert g.grants_given([10]) == {20, 21}
    assert g.grants_given([20]) == {20, 21}  # a grant given counts itself
    assert g.assigned_grants(0) == {20}  # 21 only follows from grant nesting
    assert g.reduce([20, 21]) == {20}
    sources = {grant.group.name: grant.sources for grant in g.grants_with_paths(0)}
    assert sources == {"e20": ["role: e10 → e11"], "e21": ["role: e10 → e11 → e20"]}


def test_disabled_users_hold_access_but_are_known_as_disabled():
    kinds = {0: USER, 1: USER, 2: EXTERNAL, 3: DANGLING, 10: GRANT, 11: ROLE}
    snap = snapshot({10: (0, 1, 2, 3, 11), 11: (1,)}, kinds, disabled={1})
    for g in (MembershipGraph(snap), groups_only(snap)):
        assert g.holders(10) == {0, 1}  # external entries and dangling values hold nothing
        assert g.disabled == {1}
        assert g.roles_by_user() == {1: {11}}
    assert MembershipGraph(snap).effective_grants(1) == {10}


def random_snapshot(rng: random.Random) -> Snapshot:
    users = rng.randint(1, 2 * SCANS_BEFORE_INDEX)
    groups = rng.randint(1, 25)
    kinds = {i: USER for i in range(users)}
    kinds |= {users + i: rng.choice((GRANT, GRANT, ROLE)) for i in range(groups)}
    kinds |= {users + groups: EXTERNAL, users + groups + 1: DANGLING}
    group_ids = [i for i, k in kinds.items() if k in GROUP_KINDS]
    disabled = {u for u in range(users) if rng.random() < 0.1}
    members = {}
    for group in group_ids:
        # Any group may contain any other, so cycles and self-membership come up.
        values = rng.sample(range(users), rng.randint(0, min(users, 8)))
        values += rng.sample(group_ids, rng.randint(0, min(len(group_ids), 3)))
        values += [users + groups] * rng.randint(0, 1) + [users + groups + 1] * rng.randint(0, 1)
        if values or rng.random() < 0.5:
            members[group] = tuple(values)
    return snapshot(members, kinds, disabled)


def closure_pairs(snap: Snapshot) -> set[tuple[int, int]]:
    """(user, grant) pairs by fixed point over the raw member lists: the reference."""
    reaches = {m: set() for values in snap.members.values() for m in values}
    changed = True
    while changed:
        changed = False
        for group, values in snap.members.items():
            for member in values:
                new = {group} | reaches.get(group, set())
                if not new <= reaches[member]:
                    reaches[member] |= new
                    changed = True
    kinds = {e.idx: e.kind for e in snap.entries}
    return {(u, g) for u, gs in reaches.items() if kinds[u] == USER for g in gs if kinds[g] == GRANT}


@pytest.mark.parametrize("seed", range(60))
def test_walking_up_and_walking_down_agree_on_random_graphs(seed):
    snap = random_snapshot(random.Random(seed))
    users = [e.idx for e in snap.entries if e.kind == USER]
    grants = [e.idx for e in snap.entries if e.kind == GRANT]
    expected = closure_pairs(snap)

    one_by_one = MembershipGraph(snap)  # past SCANS_BEFORE_INDEX users it inverts everything
    up = {(u, g) for u in users for g in one_by_one.effective_grants(u)}
    indexed = MembershipGraph(snap)
    indexed.index(users[::2])  # the others are looked up one by one afterwards
    up_indexed = {(u, g) for u in users for g in indexed.effective_grants(u)}
    down_graph = groups_only(snap)
    down = {(u, g) for g in grants for u in down_graph.holders(g)}
    assert up == up_indexed == down == expected

    for u in rng_sample(users, seed):
        shown = one_by_one.grants_with_paths(u)
        assert {(u, grant.group.idx) for grant in shown} == {p for p in expected if p[0] == u}
        assert all(path.hops[0].idx == u and path.hops[-1] == grant.group for grant in shown for path in grant.paths)
    for g in grants:
        assert down_graph.reaching(g, users) == {u for u, h in expected if h == g}


def rng_sample(users: list[int], seed: int) -> list[int]:
    return random.Random(seed).sample(users, min(len(users), 5))
