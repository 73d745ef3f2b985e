"""Job-aligned mining on a generated noisy organisation: the jobs come back, the noise stays direct."""

from __future__ import annotations

import doctest

import pytest

from rbac_migrate.mining import jobs as jobmining
from rbac_migrate.mining.jobs import EXTRA, MISSING, OLD_JOB, mine_jobs
from tests.support.noisyorg import NoisyOrg, generate


@pytest.fixture(scope="module")
def noisy() -> NoisyOrg:
    return generate(people=3000, jobs=62, seed=1)


def job_of(role) -> tuple[str, str]:
    return tuple(value for _attr, value in role.jobs[0])


def recovered(org: NoisyOrg, result) -> int:
    """Jobs whose role (plus the baseline) is exactly their true profile, standing for that job alone."""
    base = result.baseline.grants if result.baseline else frozenset()
    return sum(1 for role in result.roles if len(role.jobs) == 1 and role.grants | base == org.profiles[job_of(role)])


@pytest.mark.parametrize("baseline_share", [None, 0.9])
def test_recovers_nine_jobs_in_ten_with_at_most_one_and_a_half_roles_each(noisy, baseline_share):
    result = mine_jobs(noisy.access, noisy.attrs(), baseline_share=baseline_share)
    assert result.jobs == len(noisy.profiles) == 62
    assert recovered(noisy, result) >= 0.9 * result.jobs
    assert len(result.all_roles()) <= 1.5 * result.jobs
    assert result.roles_per_job <= 1.5


def test_roles_give_nobody_a_right_and_exceptions_keep_the_rest(noisy):
    result = mine_jobs(noisy.access, noisy.attrs(), baseline_share=0.9)
    kept: dict[str, set[str]] = {}
    for exception in result.exceptions:
        if exception.why != MISSING:
            for user in exception.holders:
                kept.setdefault(user, set()).add(exception.grant)
    for role in result.all_roles():
        for holder in role.holders:
            assert role.grants <= noisy.access[holder], (role.name, holder)
    base = result.baseline.grants
    for role in result.roles:
        for holder in role.holders & result.baseline.holders:
            assert role.grants | base | kept.get(holder, set()) == noisy.access[holder], holder


def test_missing_rights_keep_their_holders_off_the_role_and_are_listed(noisy):
    result = mine_jobs(noisy.access, noisy.attrs())
    missing = {(e.grant, user) for e in result.exceptions if e.why == MISSING for user in e.holders}
    by_job = {job_of(role): role for role in result.roles}
    for user, grant in noisy.planted["missing"].items():
        role = by_job[noisy.jobs[user]]
        assert user not in role.holders
        assert (grant, user) in missing
    assert all(len(role.holders) < len(role.members) or role.coverage == len(role.members) for role in result.roles)


def test_extras_stay_direct_and_moves_are_traced_to_the_old_job(noisy):
    result = mine_jobs(noisy.access, noisy.attrs())
    why: dict[tuple[str, str], tuple[str, str]] = {}
    for exception in result.exceptions:
        for user in exception.holders:
            why[user, exception.grant] = (exception.why, exception.detail)
    for user, added in noisy.planted["extra"].items():
        assert all(why[user, grant][0] in (EXTRA, OLD_JOB) for grant in added)
    traced = 0
    for user, old in noisy.planted["mover"].items():
        leftovers = noisy.profiles[old] - noisy.profiles[noisy.jobs[user]]
        if all(why.get((user, g)) == (OLD_JOB, " / ".join(old)) for g in leftovers):
            traced += 1
    assert traced >= 0.9 * len(noisy.planted["mover"])
    personal = [(u, g) for u, added in noisy.planted["extra"].items() for g in added if g.startswith("app-")]
    assert all(why[key][0] == EXTRA for key in personal)


def test_the_exact_cover_finds_no_job_on_the_same_org(noisy):
    """Why job mining exists: the minimum exact cover turns noise into structure."""
    from rbac_migrate.mining import mine_roles

    small = generate(people=600, jobs=15, seed=3)
    exact = mine_roles(small.access, effort=0)
    profiles = set(small.profiles.values())
    assert sum(1 for role in exact.roles if role.grants in profiles) < 0.5 * len(profiles)
    assert recovered(small, mine_jobs(small.access, small.attrs())) == len(profiles)


def test_small_jobs_are_not_judged_and_users_without_attributes_neither():
    access = {f"s{n}": {"mail", "crm"} for n in range(5)} | {"t1": {"mail", "git"}, "t2": {"mail", "git"}}
    access |= {"x": {"mail", "vault"}}
    attrs = {u: {"title": "Sales"} for u in access if u.startswith("s")}
    attrs |= {"t1": {"title": "Dev"}, "t2": {"title": "Dev"}, "x": {"title": ""}}
    result = mine_jobs(access, attrs, min_job_size=3)
    assert [(role.name, sorted(role.grants)) for role in result.roles] == [("role-sales", ["crm", "mail"])]
    assert {(u.job, u.members) for u in result.unjudged} == {
        ((("title", "Dev"),), frozenset({"t1", "t2"})),
        ((), frozenset({"x"})),
    }
    assert result.jobs == 1
    assert mine_jobs(access, attrs, min_job_size=2).jobs == 2


def test_jobs_with_the_same_profile_share_one_role_named_by_what_they_share():
    access = {f"a{n}": {"mail", "ledger"} for n in range(4)} | {f"b{n}": {"mail", "ledger"} for n in range(4)}
    attrs = {u: {"dept": "Finance", "title": "Analyst" if u[0] == "a" else "Clerk"} for u in access}
    result = mine_jobs(access, attrs, taken=["role-finance"])
    (role,) = result.roles
    assert role.name == "role-finance-2"
    assert role.label == "Finance / Analyst; Finance / Clerk"
    assert role.members == role.holders == frozenset(access)


def test_a_baseline_carries_what_nearly_everyone_holds_and_job_roles_do_not_repeat_it(noisy):
    result = mine_jobs(noisy.access, noisy.attrs(), baseline_share=0.9)
    assert result.baseline.name == "role-baseline"
    assert result.baseline.grants == frozenset({"email", "intranet", "vpn", "chat"})
    assert all(not role.grants & result.baseline.grants for role in result.roles)
    assert len(result.baseline.holders) > 0.95 * result.users


def test_settings_are_checked():
    for settings in ({"min_share": 0.5}, {"min_share": 1.1}, {"min_job_size": 0}, {"baseline_share": 0.2}):
        with pytest.raises(ValueError):
            mine_jobs({"ann": {"mail"}}, {"ann": {"title": "x"}}, **settings)


def test_module_examples_run():
    assert doctest.testmod(jobmining).failed == 0
