"""Role mining: exact covers, minimum role counts, settings, input format."""

from __future__ import annotations

import doctest
import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

import rbac_migrate.mining as mining
from rbac_migrate.mining import MinedRole, MiningResult, mine_roles, read_pairs, verify_exact
from rbac_migrate.mining.cover import solve_set_cover

BENCH = Path(__file__).resolve().parent / "data" / "rolemining"  # vendored: source and licence in its README


def reproduces(access, result: MiningResult) -> bool:
    """Independent check: no role gives a holder anything new, and unions are exact."""
    roles = result.all_roles()
    for role in roles:
        for holder in role.holders:
            assert role.grants <= set(access[holder]), (role, holder)
    for user, grants in access.items():
        got = set(result.exceptions.get(user, ()))
        for role in roles:
            if user in role.holders:
                got |= role.grants
        assert got == set(grants), user
    return True


def brute_force_minimum(access, min_holders: int = 1) -> int:
    """Fewest roles for an exact cover, by trying every family of candidate roles."""
    counts = Counter(grant for grants in access.values() for grant in grants)
    sets = [frozenset(g for g in grants if counts[g] >= min_holders) for grants in access.values()]
    grants = sorted({g for s in sets for g in s})
    candidates = [
        frozenset(c)
        for size in range(1, len(grants) + 1)
        for c in itertools.combinations(grants, size)
        if sum(1 for s in sets if set(c) <= s) >= min_holders
    ]
    for size in itertools.count():
        for family in itertools.combinations(candidates, size):
            if all(frozenset().union(*(r for r in family if r <= s)) == s for s in sets):
                return size
    raise AssertionError("unreachable")


def random_access(rng: random.Random, users: int, grants: int, density: float) -> dict[str, set[str]]:
    return {f"u{u}": {f"g{g}" for g in range(grants) if rng.random() < density} for u in range(users)}


def planted_access(rng: random.Random, users: int, grants: int, profiles: int) -> dict[str, set[str]]:
    """Users made of a few hidden profiles, some with a stray extra grant."""
    hidden = [set(rng.sample(range(grants), rng.randint(1, max(1, grants // 4)))) for _ in range(profiles)]
    access = {}
    for u in range(users):
        held: set[int] = set().union(*rng.sample(hidden, rng.randint(0, min(3, profiles))))
        if rng.random() < 0.15:
            held.add(rng.randrange(grants))
        access[f"u{u}"] = {f"g{g}" for g in held}
    return access


def test_empty_input_gives_no_roles():
    result = mine_roles({})
    assert result == MiningResult(roles=(), baseline=None, exceptions={}, lower_bound=0)
    assert verify_exact({}, result) == []


def test_users_without_grants_hold_no_role():
    access = {"ann": {"mail"}, "bob": set(), "cid": ["mail", "vpn"]}
    result = mine_roles(access)
    assert reproduces(access, result)
    assert all("bob" not in role.holders for role in result.roles)
    assert mine_roles({"bob": set()}).roles == ()


@pytest.mark.parametrize("seed", range(6))
def test_covers_are_exact_on_random_instances(seed):
    rng = random.Random(seed)
    for _ in range(12):
        if rng.random() < 0.5:
            access = planted_access(rng, rng.randint(1, 80), rng.randint(1, 30), rng.randint(1, 10))
        else:
            access = random_access(rng, rng.randint(1, 25), rng.randint(1, 10), rng.random())
        settings = {"min_holders": rng.choice([1, 2, 3]), "baseline_share": rng.choice([None, 0.6, 1.0])}
        result = mine_roles(access, effort=2000, **settings)
        assert verify_exact(access, result) == []
        assert reproduces(access, result)
        assert all(len(role.holders) >= settings["min_holders"] for role in result.all_roles())
        assert len({role.grants for role in result.all_roles()}) == result.role_count
        assert result.lower_bound <= result.role_count


@pytest.mark.parametrize("seed", range(4))
def test_reaches_the_brute_force_minimum_on_tiny_instances(seed):
    rng = random.Random(100 + seed)
    for _ in range(25):
        access = random_access(rng, rng.randint(1, 5), rng.randint(1, 5), rng.choice([0.3, 0.5, 0.7]))
        result = mine_roles(access)
        assert reproduces(access, result)
        assert result.role_count == brute_force_minimum(access), access
        assert result.proven_minimal


MIN_HOLDERS_CASES = [
    # Twin users count twice; g4 rides only with u0 and u1.
    (
        {
            "u0": {"g0", "g1", "g2", "g4"},
            "u1": {"g0", "g1", "g2", "g4"},
            "u2": {"g0", "g2", "g3"},
            "u3": {"g0", "g1", "g2", "g3"},
        },
        2,
    ),
    # The only roles with two holders are intersections involving users already covered.
    (
        {
            "u0": {"g2", "g3"},
            "u1": {"g0", "g4"},
            "u2": {"g0", "g2", "g3", "g4"},
            "u3": {"g0", "g1", "g3"},
            "u4": {"g1", "g3"},
        },
        2,
    ),
    (
        {
            "u0": {"g0", "g2", "g4"},
            "u1": {"g0"},
            "u2": {"g3", "g4"},
            "u3": {"g1", "g3", "g4"},
            "u4": {"g0", "g3", "g4"},
        },
        3,
    ),
]


@pytest.mark.parametrize(("access", "min_holders"), MIN_HOLDERS_CASES)
def test_min_holders_minimum_matches_brute_force(access, min_holders):
    result = mine_roles(access, min_holders=min_holders)
    assert reproduces(access, result)
    assert all(len(role.holders) >= min_holders for role in result.roles)
    assert result.role_count == brute_force_minimum(access, min_holders) == result.lower_bound


def test_min_holders_minimum_matches_brute_force_on_random_instances():
    rng = random.Random(7)
    for _ in range(60):
        access = random_access(rng, rng.randint(2, 6), rng.randint(1, 5), rng.choice([0.4, 0.6, 0.8]))
        min_holders = rng.choice([2, 3])
        result = mine_roles(access, min_holders=min_holders)
        assert reproduces(access, result)
        assert result.role_count == brute_force_minimum(access, min_holders), access


PROFILES = {
    "sales": {"crm", "quotes", "pricebook", "shared-sales"},
    "support": {"tickets", "crm-read", "kb", "phone"},
    "finance": {"ledger", "payroll-read", "invoices", "bank"},
    "dev": {"git", "ci", "staging", "tickets-dev"},
    "ops": {"ssh-prod", "monitoring", "staging", "backup"},
    "hr": {"payroll", "people", "recruiting", "kb-hr"},
}
BASELINE = {"mail", "vpn", "intranet", "printing"}


def profile_org(extra: set[str] = frozenset()) -> tuple[dict[str, set[str]], dict[str, str]]:
    rng = random.Random(42)
    names = sorted(PROFILES)
    job = {f"user{n:03}": rng.choice(names) for n in range(200)}
    return {user: PROFILES[profile] | extra for user, profile in job.items()}, job


def test_recovers_the_job_profiles_of_a_generated_org():
    access, job = profile_org()
    result = mine_roles(access)
    assert result.baseline is None
    assert {role.grants for role in result.roles} == {frozenset(p) for p in PROFILES.values()}
    for role in result.roles:
        profile = next(name for name, grants in PROFILES.items() if grants == role.grants)
        assert role.holders == {user for user, name in job.items() if name == profile}
    assert result.proven_minimal


def test_baseline_share_folds_org_wide_grants_into_one_role():
    access, job = profile_org(extra=BASELINE)
    result = mine_roles(access, baseline_share=0.9)
    assert result.baseline == MinedRole(grants=frozenset(BASELINE), holders=frozenset(access))
    assert {role.grants for role in result.roles} == {frozenset(p) for p in PROFILES.values()}
    assert result.role_count == 7 and result.proven_minimal
    assert verify_exact(access, result) == []


def test_baseline_gets_no_grant_beyond_the_share_threshold():
    # g0, g1 and g4 are held by 3 of 5 users; the reductions must not let g2 or g3 join them.
    access = {
        "u0": {"g0"},
        "u1": {"g4"},
        "u2": {"g1", "g4"},
        "u3": {"g0", "g1", "g2", "g3", "g4"},
        "u4": {"g0", "g1", "g2", "g5"},
    }
    result = mine_roles(access, baseline_share=0.5)
    assert result.baseline == MinedRole(grants=frozenset({"g0", "g1", "g4"}), holders=frozenset({"u3"}))
    assert reproduces(access, result)


def test_baseline_takes_grants_held_by_exactly_the_share():
    # 0.07 * 100 is a float hair above 7; a grant held by 7 of 100 users still qualifies.
    access = {f"user{n:03}": {"mail", "vpn"} if n < 7 else {"mail"} for n in range(100)}
    result = mine_roles(access, baseline_share=0.07)
    assert result.baseline is not None and result.baseline.grants == {"mail", "vpn"}
    assert reproduces(access, result)


def test_baseline_stays_exact_for_users_missing_some_baseline_grants():
    access, _ = profile_org(extra=BASELINE)
    access["user000"] = access["user000"] - {"vpn"}
    access["user001"] = {"mail"}
    result = mine_roles(access, baseline_share=0.9)
    assert result.baseline is not None and result.baseline.grants == BASELINE
    assert "user000" not in result.baseline.holders
    assert verify_exact(access, result) == []
    assert reproduces(access, result)


def test_min_holders_keeps_rare_grants_direct():
    access, _ = profile_org()
    access["user000"] = access["user000"] | {"root-db"}
    access["user001"] = access["user001"] | {"root-db", "legacy-app"}
    result = mine_roles(access, min_holders=3)
    assert result.exceptions == {"user000": {"root-db"}, "user001": {"root-db", "legacy-app"}}
    assert all(len(role.holders) >= 3 for role in result.roles)
    assert verify_exact(access, result) == []
    without = MiningResult(roles=result.roles)
    assert "'user001' would lose legacy-app, root-db" in verify_exact(access, without)


def test_min_holders_never_emits_a_role_for_fewer_users():
    access = {"ann": {"a", "b"}, "bob": {"a", "c"}, "cid": {"b", "c"}, "dee": {"a", "b", "c", "d"}}
    assert min(len(role.holders) for role in mine_roles(access).roles) == 1
    result = mine_roles(access, min_holders=2)
    assert min(len(role.holders) for role in result.roles) >= 2
    assert result.exceptions == {"dee": {"d"}}
    assert result.role_count == 3 and result.proven_minimal
    assert reproduces(access, result)


def test_roles_do_not_repeat_grants_their_holders_already_get():
    access = {"ann": {"mail", "vpn"}, "bob": {"mail", "vpn", "crm"}}
    result = mine_roles(access)
    assert [(sorted(r.grants), sorted(r.holders)) for r in result.roles] == [
        (["mail", "vpn"], ["ann", "bob"]),
        (["crm"], ["bob"]),
    ]


def test_output_is_deterministic():
    rng = random.Random(3)
    access = planted_access(rng, 120, 30, 8)
    shuffled = list(access.items())
    rng.shuffle(shuffled)
    first = mine_roles(access, baseline_share=0.5)
    again = mine_roles({user: sorted(grants, reverse=True) for user, grants in shuffled}, baseline_share=0.5)
    assert first == again
    assert first.roles == tuple(sorted(first.roles, key=lambda r: (-len(r.holders), sorted(r.grants))))


def test_small_effort_still_gives_an_exact_cover_and_an_honest_bound():
    rng = random.Random(11)
    access = random_access(rng, 30, 12, 0.8)
    quick = mine_roles(access, effort=0)
    assert verify_exact(access, quick) == []
    assert quick.lower_bound <= mine_roles(access).role_count <= quick.role_count


def random_set_system(rng: random.Random) -> list[int]:
    """Random sets, or a vertex cover instance (edges in vertices), which no reduction solves."""
    if rng.random() < 0.5:
        width = rng.randint(6, 16)
        return [sum(1 << e for e in range(width) if rng.random() < 0.3) for _ in range(rng.randint(6, 13))]
    vertices = rng.randint(8, 13)
    edges = [pair for pair in itertools.combinations(range(vertices), 2) if rng.random() < 0.45]
    return [sum(1 << e for e, pair in enumerate(edges) if vertex in pair) for vertex in range(vertices)]


def test_set_cover_search_finds_and_proves_the_minimum():
    rng = random.Random(5)
    for _ in range(80):
        sets = random_set_system(rng)
        universe = 0
        for members in sets:
            universe |= members
        combos = (itertools.combinations(sets, size) for size in itertools.count())
        smallest = next(size for size, family in enumerate(combos) if any(_union(c) == universe for c in family))
        for budget in (10**6, 1, 0):
            solution = solve_set_cover(sets, universe, budget)
            assert _union(sets[i] for i in solution.chosen) == universe
            assert solution.lower_bound <= smallest <= len(solution.chosen)
            if budget == 10**6:
                assert len(solution.chosen) == solution.lower_bound == smallest


def _union(masks) -> int:
    union = 0
    for mask in masks:
        union |= mask
    return union


def test_verify_exact_names_each_problem():
    access = {"ann": {"mail", "vpn"}, "bob": {"mail"}}
    bad = MiningResult(roles=(MinedRole(frozenset({"mail", "vpn"}), frozenset({"ann", "bob", "zed"})),))
    assert verify_exact(access, bad) == [
        "role 1 (mail, vpn) would give 'bob' vpn, not held today",
        "role 1 (mail, vpn) is held by unknown user 'zed'",
    ]
    short = MiningResult(roles=(MinedRole(frozenset({"mail"}), frozenset({"ann", "bob"})),))
    assert verify_exact(access, short) == ["'ann' would lose vpn"]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="min_holders"):
        mine_roles({"ann": {"a"}}, min_holders=0)
    with pytest.raises(ValueError, match="baseline_share"):
        mine_roles({"ann": {"a"}}, baseline_share=1.5)
    with pytest.raises(TypeError, match="'ann'"):
        mine_roles({"ann": "mail"})


def test_read_pairs_accepts_whitespace_commas_comments_and_paths(tmp_path):
    lines = ["# user permission", "", "ann mail", "ann\tvpn", "bob, mail", "  bob,crm  ", "   # indented"]
    expected = {"ann": {"mail", "vpn"}, "bob": {"mail", "crm"}}
    assert read_pairs(lines) == expected
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_pairs(path) == expected
    assert read_pairs(str(path)) == expected


@pytest.mark.parametrize("bad", ["ann", "ann mail vpn", "ann,", ",mail", "ann,mail,vpn"])
def test_read_pairs_rejects_a_malformed_line_by_number(bad):
    with pytest.raises(ValueError, match=r"^line 3: expected 'user permission', got "):
        read_pairs(["# header", "ann mail", bad])


def test_package_examples_run():
    assert doctest.testmod(mining).failed == 0


BENCHMARK_MINIMA = {"hc": 14, "domino": 20, "fire1": 64, "apj": 453, "americas_small": 178}


@pytest.mark.parametrize("name", sorted(BENCHMARK_MINIMA))
def test_benchmark_data_sets_reach_their_proven_minimum(name):
    access = read_pairs(BENCH / f"{name}.txt")
    result = mine_roles(access)
    assert verify_exact(access, result) == []
    assert result.role_count == BENCHMARK_MINIMA[name]
    assert result.lower_bound == BENCHMARK_MINIMA[name]
