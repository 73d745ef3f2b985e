"""Joiner proposals and role candidates: pure, on hand-made snapshots and on a generated org."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

import pytest

from rbac_migrate.access import MembershipGraph
from rbac_migrate.demo.sampleorg import generate
from rbac_migrate.model import DANGLING, GRANT, ROLE, USER, Entry, Snapshot
from rbac_migrate.proposals import COMBINED, EXISTING, NEW, KnownRole, ProposalError, Request, propose
from rbac_migrate.roles.catalogue import rank_candidates, suggest_name

FIN = {"departmentNumber": "Finance", "title": "Financial Analyst"}
ENG = {"departmentNumber": "Engineering", "title": "Engineer"}


class Org:
    """A tiny directory: users with peer attributes, grant groups and roles, by name."""

    def __init__(self, users: Mapping[str, dict], groups: Mapping[str, tuple[str, list[str]]], disabled=()):
        entries = [
            Entry(i, USER, f"uid={u},ou=people", u, enabled=u not in disabled, attrs=a)
            for i, (u, a) in enumerate(users.items())
        ]
        for name, (kind, _) in groups.items():
            base = "ou=roles" if kind == ROLE else "ou=grants"
            entries.append(Entry(len(entries), kind, f"cn={name},{base}", name))
        self.idx = {e.name: e.idx for e in entries}
        members = {self.idx[g]: tuple(self.idx[m] for m in ms) for g, (_, ms) in groups.items()}
        self.snapshot = Snapshot(datetime.now(timezone.utc), "test", "openldap", {}, entries, members, id=1)
        self.graph = MembershipGraph(self.snapshot)

    def ids(self, *names: str) -> frozenset[int]:
        return frozenset(self.idx[n] for n in names)

    def names(self, ids) -> set[str]:
        return {self.graph.name(i) for i in ids}

    def roles(self) -> list[KnownRole]:
        graph = self.graph
        return [
            KnownRole(graph.name(r), graph.groups[r].dn, graph.grants_given([r]), graph.holders(r))
            for r in graph.of_kind(ROLE)
        ]

    def request(self, joiner: str, **kwargs) -> Request:
        attrs = self.snapshot.entries[self.idx[joiner]].attrs
        peers = frozenset(e.idx for e in self.snapshot.entries if e.kind == USER and e.attrs == attrs and e.enabled)
        label = " / ".join(attrs.values()) or "peers"
        return Request(self.idx[joiner], joiner, peers, label, name_parts=tuple(attrs.values()), **kwargs)

    def propose(self, joiner: str, taken=(), **kwargs):
        return propose(self.graph, self.request(joiner, **kwargs), self.roles(), set(taken))


def finance(extra_groups: Mapping[str, tuple[str, list[str]]] | None = None, **holders: list[str]) -> Org:
    """Five finance analysts (a1..a5), a joiner (new) and two engineers, with ledger/ap/tax grants."""
    users = {f"a{i}": FIN for i in range(1, 6)} | {"new": FIN, "e1": ENG, "e2": ENG}
    groups = {
        "ledger": (GRANT, holders.get("ledger", ["a1", "a2", "a3", "a4", "a5"])),
        "ap": (GRANT, holders.get("ap", ["a1", "a2", "a3", "a4"])),
        "tax": (GRANT, holders.get("tax", ["a5"])),
        "git": (GRANT, ["e1", "e2"]),
    }
    return Org(users, groups | dict(extra_groups or {}))


def test_exact_role_comes_first_and_no_new_role_is_offered():
    org = finance(
        {"role-fin": (ROLE, ["a5"])},
        ledger=["a1", "a2", "a3", "a4", "role-fin"],
        ap=["a1", "a2", "a3", "a4", "role-fin"],
    )
    found = org.propose("new")
    assert [p.kind for p in found.proposals] == [EXISTING]
    assert [r.name for r in found.proposals[0].roles] == ["role-fin"]
    assert org.names(found.requested) == {"ledger", "ap"}


def test_role_plus_extras_then_a_new_role():
    org = finance({"role-ledger": (ROLE, [])}, ledger=["a1", "a2", "a3", "a4", "a5", "role-ledger"])
    found = org.propose("new")
    assert [p.kind for p in found.proposals] == [COMBINED, NEW]
    combined, new = found.proposals
    assert [r.name for r in combined.roles] == ["role-ledger"]
    assert org.names(combined.extras) == {"ap"}
    assert org.names(new.grants) == {"ledger", "ap"}
    assert [p.number for p in found.proposals] == [1, 2]


def test_a_role_giving_more_than_asked_is_never_proposed():
    org = finance({"role-big": (ROLE, [])}, ledger=[*"a1 a2 a3 a4 a5".split(), "role-big"], tax=["a5", "role-big"])
    found = org.propose("new")
    assert [p.kind for p in found.proposals] == [NEW]


def test_new_role_is_named_from_the_peer_attributes():
    org = finance()
    assert org.propose("new").proposals[-1].new_role == "role-finance-financial-analyst"
    taken = org.propose("new", taken={"Role-Finance-Financial-Analyst"}).proposals[-1]
    assert taken.new_role == "role-finance-financial-analyst-2"


def test_evidence_counts_peers_holding_each_grant():
    org = finance()
    found = org.propose("new")
    phrases = {org.graph.name(e.grant): found.phrase(e) for e in found.evidence}
    assert phrases == {"ledger": "5 of 5 Finance / Financial Analyst", "ap": "4 of 5 Finance / Financial Analyst"}
    assert {e.source for e in found.evidence} == {"peers"}


@pytest.mark.parametrize("ap_holders, expected", [(2, {"ledger"}), (3, {"ledger", "ap"})])
def test_from_peers_a_grant_needs_the_minimum_share(ap_holders, expected):
    org = finance(ap=[f"a{i}" for i in range(1, ap_holders + 1)])
    assert org.names(org.propose("new").requested) == expected
    assert org.names(org.propose("new", min_share=0.3).requested) == {"ledger", "ap"}


def test_model_users_rare_grants_are_not_copied():
    org = finance()
    found = org.propose("new", model=org.idx["a5"])
    assert org.names(found.requested) == {"ledger"}
    assert [(org.graph.name(e.grant), found.phrase(e)) for e in found.not_copied] == [
        ("tax", "1 of 5 Finance / Financial Analyst")
    ]
    assert {e.source for e in found.evidence} == {"model"}


def test_model_grants_are_all_copied_when_the_joiner_has_no_peers():
    org = Org({"new": {}, "model": ENG}, {"git": (GRANT, ["model"]), "rare": (GRANT, ["model"])})
    found = org.propose("new", model=org.idx["model"])
    assert org.names(found.requested) == {"git", "rare"}
    assert [found.phrase(e) for e in found.evidence] == ["no peers to compare"] * 2
    assert found.proposals[-1].new_role == "role-for-new"


def test_explicit_grants_are_kept_even_when_few_peers_hold_them():
    org = finance()
    found = org.propose("new", grants=org.ids("ledger", "tax"))
    assert org.names(found.requested) == {"ledger", "tax"}
    assert {org.graph.name(e.grant): (e.holding, e.source) for e in found.evidence} == {
        "ledger": (5, "asked"),
        "tax": (1, "asked"),
    }


def test_nothing_asked_and_no_peers_is_a_clear_error():
    org = Org({"new": {}, "x": ENG}, {"git": (GRANT, ["x"])})
    with pytest.raises(ProposalError, match="no peers to learn from: name the access with --grant or --like"):
        org.propose("new")


def test_movable_counts_enabled_users_who_already_reach_everything():
    users = {f"a{i}": FIN for i in range(1, 4)} | {"new": FIN}
    users |= {name: ENG for name in ("via-role", "nested", "short", "gone")}
    groups = {
        "ledger-read": (GRANT, ["a1", "a2", "a3", "short", "gone", "via-role", "ledger-write"]),
        "ledger-write": (GRANT, ["nested"]),
        "ap": (GRANT, ["a1", "a2", "a3", "nested", "gone", "role-x"]),
        "role-x": (ROLE, ["via-role"]),
    }
    org = Org(users, groups, disabled={"gone"})
    found = org.propose("new")
    assert org.names(found.requested) == {"ledger-read", "ap"}
    # a1-a3, via-role (ap through its role) and nested (ledger-read through nesting); not short, gone or new.
    # Onto role-x plus extras, via-role does not count: it holds role-x already.
    assert [(p.kind, p.movable) for p in found.proposals] == [(COMBINED, 4), (NEW, 5)]
    assert org.graph.reaching_all(org.ids("ledger-read", "ap")) == org.ids(
        "a1", "a2", "a3", "via-role", "nested", "gone"
    )


def test_grants_implied_by_nesting_are_dropped_and_roles_still_match():
    users = {f"a{i}": FIN for i in range(1, 4)} | {"new": FIN}
    groups = {
        "share": (GRANT, ["a1", "a2", "a3", "ledger"]),
        "ledger": (GRANT, ["a1", "a2", "a3", "role-fin"]),
        "role-fin": (ROLE, []),
    }
    org = Org(users, groups)
    found = org.propose("new")
    assert org.names(found.requested) == {"ledger"}
    assert [(p.kind, [r.name for r in p.roles]) for p in found.proposals] == [(EXISTING, ["role-fin"])]


def test_suggest_name_slugs_and_numbers():
    assert suggest_name(["Human Resources", "HR Business Partner"], set()) == "role-human-resources-hr-business-partner"
    assert suggest_name([], {"role-for-x"}, fallback="for x") == "role-for-x-2"
    assert len(suggest_name(["x" * 200], set())) <= 60


def test_candidates_are_ranked_and_near_misses_set_apart():
    users = {"full": FIN, "extra": FIN, "near": FIN, "far": FIN, "holder": FIN, "gone": FIN}
    groups = {
        "ledger": (GRANT, ["full", "extra", "near", "far", "gone", "role-fin"]),
        "ap": (GRANT, ["full", "extra", "gone", "role-fin"]),
        "tax": (GRANT, ["full", "extra", "near", "gone", "role-fin"]),
        "git": (GRANT, ["extra"]),
        "role-fin": (ROLE, ["holder"]),
    }
    org = Org(users, groups, disabled={"gone"})
    role = org.idx["role-fin"]
    found = rank_candidates(org.graph, org.graph.grants_given([role]), org.graph.holders(role), max_missing=1)
    assert [(org.snapshot.entries[c.user].name, c.explained, c.direct) for c in found.safe] == [
        ("full", 3, 3),
        ("extra", 3, 4),
    ]
    assert [(org.snapshot.entries[n.user].name, org.names(n.missing)) for n in found.near] == [("near", {"ap"})]
    assert (found.disabled, found.holding) == (1, 1)


# -- a generated organisation: the job profiles it was built from must come back --------------


def snapshot_of(org) -> tuple[Snapshot, dict[str, int]]:
    """The sample org as a snapshot, the way 'snapshot take' would read it."""
    entries: list[Entry] = []
    for user in org.users:
        attrs = {"departmentNumber": user.department, "title": user.title}
        entries.append(Entry(len(entries), USER, user.dn, user.uid, enabled=not user.leaver, attrs=attrs))
    for group in org.groups:
        entries.append(Entry(len(entries), group.kind, group.dn, group.cn))
    by_dn = {e.dn: e.idx for e in entries}
    members = {}
    for group in org.groups:
        for value in group.members:
            if value not in by_dn:
                by_dn[value] = len(entries)
                entries.append(Entry(len(entries), DANGLING, value, value))
        members[by_dn[group.dn]] = tuple(by_dn[v] for v in group.members)
    snap = Snapshot(datetime.now(timezone.utc), "sample", "openldap", {}, entries, members, id=1)
    return snap, {e.name: e.idx for e in entries if e.kind in (USER, GRANT, ROLE)}


@pytest.fixture(scope="module")
def sample():
    org = generate(3000, seed=5)
    snap, idx = snapshot_of(org)
    graph = MembershipGraph(snap)
    roles = [
        KnownRole(graph.name(r), graph.groups[r].dn, graph.grants_given([r]), graph.holders(r))
        for r in graph.of_kind(ROLE)
    ]
    return org, snap, idx, graph, roles


def test_generated_org_profiles_are_recovered_from_peers(sample):
    org, snap, idx, graph, roles = sample
    checked = 0
    for (dept, title), profile in org.profiles.items():
        people = [u for u in org.users if (u.department, u.title) == (dept, title) and not u.leaver]
        if len(people) < 10:
            continue
        joiner = people[0]
        peers = frozenset(idx[u.uid] for u in people)
        request = Request(idx[joiner.uid], joiner.uid, peers, f"{dept} / {title}", name_parts=(dept, title))
        found = propose(graph, request, roles, {r.name for r in roles})
        expected = graph.grants_given(idx[g] for g in profile)
        assert graph.grants_given(found.requested) == expected, (dept, title)
        first = found.proposals[0]
        planted = [r for r, p in org.role_profiles.items() if p == (dept, title)]
        if planted:
            assert (first.kind, [r.name for r in first.roles]) == (EXISTING, planted), (dept, title)
        else:
            assert found.proposals[-1].new_role == suggest_name([dept, title], {r.name for r in roles})
        checked += 1
    assert checked >= 20


def test_generated_org_candidates_match_the_generators_ground_truth(sample):
    org, snap, idx, graph, roles = sample
    for role_name in org.planted.get("unused_role", []) + sorted(org.role_profiles)[:2]:
        role = idx[role_name]
        found = rank_candidates(graph, graph.grants_given([role]), graph.holders(role))
        wanted = {graph.name(g) for g in graph.grants_given([role])}
        expected = {
            u.uid
            for u in org.users
            if not u.leaver and role_name not in u.roles and wanted <= org.effective_grants(u.uid)
        }
        assert {snap.entries[c.user].name for c in found.safe} == expected, role_name
        assert all(c.share <= 1 for c in found.safe)


def test_evidence_names_the_grants_nesting_brings_along():
    org = finance(
        {"ledger-archive": (GRANT, ["ledger"]), "role-fin": (ROLE, [])},
        ledger=["a1", "a2", "a3", "a4", "a5", "role-fin"],
        ap=["a1", "a2", "a3", "a4", "role-fin"],
    )
    found = org.propose("new")
    assert org.names(found.requested) == {"ledger", "ap"}
    assert [(org.graph.name(e.grant), e.holding, e.source) for e in found.nested] == [
        ("ledger-archive", 5, "through nesting")
    ]
    role = found.proposals[0].roles[0]
    assert org.names(role.grants) == {"ledger", "ap", "ledger-archive"}


def test_a_role_whose_rule_matches_comes_first_and_says_when_it_is_held():
    org = finance(
        {"role-fin": (ROLE, ["new"]), "role-ledger": (ROLE, [])},
        ledger=["a1", "a2", "a3", "a4", "a5", "role-fin", "role-ledger"],
        ap=["a1", "a2", "a3", "a4", "role-fin"],
    )
    roles = org.roles()
    ruled = [r for r in roles if r.name == "role-ledger"]
    found = propose(org.graph, org.request("new"), roles, set(), ruled)
    assert [(p.kind, [r.name for r in p.roles]) for p in found.proposals] == [
        ("rule", ["role-ledger"]),
        (EXISTING, ["role-fin"]),
    ]
    assert [found.holds(p) for p in found.proposals] == [False, True]
