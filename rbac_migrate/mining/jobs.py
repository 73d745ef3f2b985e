"""Job-aligned role mining: one role per job, the access a clear majority of its people hold.

A minimum exact cover turns every personal extra and every leftover of an old job into a role
of its own. A business approves something else: a role per job (the users sharing the same
peer-attribute values, such as department and title) carrying what most of that job's people
hold. What a person holds beyond their job's role stays direct and is listed as an exception,
and so is a right of the role they lack (they are not moved onto it: nobody gains a right).

>>> access = {"ann": {"mail", "crm"}, "bob": {"mail", "crm", "git"}, "cid": {"mail", "crm"}}
>>> jobs = {user: {"title": "Sales"} for user in access}
>>> result = mine_jobs(access, jobs, min_job_size=3)
>>> [(role.name, sorted(role.grants), role.coverage) for role in result.roles]
[('role-sales', ['crm', 'mail'], 3)]
>>> [(e.grant, e.why, sorted(e.holders)) for e in result.exceptions]
[('git', 'extra', ['bob'])]
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..roles.catalogue import suggest_name

DEFAULT_MIN_SHARE = 0.75
DEFAULT_MIN_JOB_SIZE = 4
EXTRA = "extra"
MISSING = "missing"
OLD_JOB = "old-job"

Job = tuple[tuple[str, str], ...]  # (attribute, value) pairs, in the configured order


@dataclass(frozen=True)
class JobRole:
    """A proposed role and its evidence.

    ``jobs`` are the attribute values it stands for (several when jobs share one profile),
    ``members`` the people of those jobs, ``holders`` those among them who already hold every
    grant of the role (they could move onto it without gaining anything).
    """

    name: str
    grants: frozenset[str]
    jobs: tuple[Job, ...]
    members: frozenset[str]
    holders: frozenset[str]
    baseline: bool = False

    @property
    def coverage(self) -> int:
        """How many of the job's people hold every grant of the role."""
        return len(self.holders)

    @property
    def label(self) -> str:
        """The jobs it stands for, as people read them: 'Finance / Accountant'."""
        if self.baseline:
            return "everyone"
        return "; ".join(job_label(job) for job in self.jobs)


@dataclass(frozen=True)
class JobException:
    """A grant left as it is for ``holders``, and why.

    ``extra``: held beyond the role of their job; ``old-job``: an extra that the role of another
    job (``detail``) carries, likely kept from a move; ``missing``: a grant of their job's role
    that they lack, so they are not moved onto that role.
    """

    grant: str
    why: str
    role: str
    holders: frozenset[str]
    detail: str = ""


@dataclass(frozen=True)
class UnjudgedJob:
    """A job with too few people to tell its profile from personal access; all stays direct."""

    job: Job
    members: frozenset[str]


@dataclass(frozen=True)
class JobMining:
    """Roles per job (and an optional baseline), with what stays direct and what could not be judged."""

    roles: tuple[JobRole, ...]
    baseline: JobRole | None
    exceptions: tuple[JobException, ...]
    unjudged: tuple[UnjudgedJob, ...]
    jobs: int  # jobs judged (enough people)
    users: int  # users with at least one grant
    min_share: float = DEFAULT_MIN_SHARE
    min_job_size: int = DEFAULT_MIN_JOB_SIZE
    baseline_share: float | None = None
    no_role: tuple[Job, ...] = field(default=())  # judged jobs whose people share nothing beyond the baseline

    def all_roles(self) -> tuple[JobRole, ...]:
        """The baseline (if any) followed by the job roles."""
        return ((self.baseline,) if self.baseline else ()) + self.roles

    @property
    def roles_per_job(self) -> float:
        return len(self.all_roles()) / self.jobs if self.jobs else 0.0

    def left_direct(self, why: str | None = None) -> int:
        """(user, grant) pairs that stay as they are, of one kind or all but missing ones."""
        kinds = (why,) if why else (EXTRA, OLD_JOB)
        return sum(len(e.holders) for e in self.exceptions if e.why in kinds)


def job_label(job: Job) -> str:
    return " / ".join(value for _attr, value in job) or "(no job attributes)"


def mine_jobs(
    access: Mapping[str, Iterable[str]],
    attrs: Mapping[str, Mapping[str, str]],
    *,
    min_share: float = DEFAULT_MIN_SHARE,
    min_job_size: int = DEFAULT_MIN_JOB_SIZE,
    baseline_share: float | None = None,
    taken: Iterable[str] = (),
) -> JobMining:
    """One role per job, from the grants a ``min_share`` of the job's people hold.

    ``access``: each user's grants; ``attrs``: each user's peer-attribute values (the job).
    Users without grants are left out. A job of fewer than ``min_job_size`` people, or whose
    users have no attribute values at all, is not judged: its grants stay direct. With
    ``baseline_share``, the grants that share of all users hold form one baseline role and
    job roles carry only what comes on top. Jobs with the same profile share one role. Names
    avoid ``taken`` (case-insensitively).
    """
    _check(min_share, min_job_size, baseline_share)
    grants = {user: frozenset(held) for user, held in access.items() if held}
    members = _jobs(grants, attrs)
    names = set(taken)
    baseline = _baseline(grants, baseline_share, names)
    base = baseline.grants if baseline else frozenset()
    judged = {job: users for job, users in members.items() if job and len(users) >= min_job_size}
    unjudged = tuple(UnjudgedJob(job, frozenset(users)) for job, users in members.items() if job not in judged)
    profiles: dict[frozenset[str], list[Job]] = defaultdict(list)
    no_role = []
    for job, users in sorted(judged.items()):
        profile = _profile([grants[u] for u in users], min_share) - base
        (profiles[profile] if profile else no_role).append(job)
    roles = tuple(_role(profile, jobs, members, grants, names) for profile, jobs in profiles.items())
    exceptions = _exceptions(roles, baseline, grants, base)
    return JobMining(
        roles=tuple(sorted(roles, key=lambda r: r.jobs)),
        baseline=baseline,
        exceptions=exceptions,
        unjudged=tuple(sorted(unjudged, key=lambda u: u.job)),
        jobs=len(judged),
        users=len(grants),
        min_share=min_share,
        min_job_size=min_job_size,
        baseline_share=baseline_share,
        no_role=tuple(no_role),
    )


def _check(min_share: float, min_job_size: int, baseline_share: float | None) -> None:
    if not 0.5 < min_share <= 1:
        raise ValueError(f"min_share must be more than 0.5 and at most 1, got {min_share}")
    if min_job_size < 1:
        raise ValueError(f"min_job_size must be at least 1, got {min_job_size}")
    if baseline_share is not None and not 0.5 < baseline_share <= 1:
        raise ValueError(f"baseline_share must be more than 0.5 and at most 1, got {baseline_share}")


def _jobs(grants: Mapping[str, frozenset[str]], attrs: Mapping[str, Mapping[str, str]]) -> dict[Job, list[str]]:
    members: dict[Job, list[str]] = defaultdict(list)
    for user in sorted(grants):
        values = attrs.get(user) or {}
        members[tuple((a, v) for a, v in values.items() if v)].append(user)
    return dict(members)


def _profile(held: list[frozenset[str]], share: float) -> frozenset[str]:
    """Grants at least ``share`` of these users hold (the epsilon keeps 0.75 of 4 at 3)."""
    counts = Counter(grant for grants in held for grant in grants)
    need = share * len(held) - 1e-9
    return frozenset(grant for grant, count in counts.items() if count >= need)


def _baseline(grants: Mapping[str, frozenset[str]], share: float | None, names: set[str]) -> JobRole | None:
    if share is None or not grants:
        return None
    profile = _profile(list(grants.values()), share)
    if not profile:
        return None
    holders = frozenset(u for u, held in grants.items() if profile <= held)
    name = _name(["baseline"], names)
    return JobRole(name, profile, (), frozenset(grants), holders, baseline=True)


def _role(
    profile: frozenset[str],
    jobs: list[Job],
    members: Mapping[Job, list[str]],
    grants: Mapping[str, frozenset[str]],
    names: set[str],
) -> JobRole:
    people = frozenset(u for job in jobs for u in members[job])
    holders = frozenset(u for u in people if profile <= grants[u])
    return JobRole(_name(_shared_values(jobs), names), profile, tuple(jobs), people, holders)


def _shared_values(jobs: list[Job]) -> list[str]:
    """The values every job shares, position by position ('Finance' for two finance titles)."""
    first = _values(jobs[0])
    common = [v for i, v in enumerate(first) if all(_values(job)[i : i + 1] == [v] for job in jobs[1:])]
    return common or first


def _values(job: Job) -> list[str]:
    return [value for _attr, value in job]


def _name(parts: list[str], names: set[str]) -> str:
    chosen = suggest_name(parts, names, fallback="mined")
    names.add(chosen)
    return chosen


def _exceptions(
    roles: tuple[JobRole, ...], baseline: JobRole | None, grants: Mapping[str, frozenset[str]], base: frozenset[str]
) -> tuple[JobException, ...]:
    """Per role: grants its people lack, and grants they hold beyond it (old jobs told apart)."""
    found: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    if baseline:
        for user in baseline.members - baseline.holders:
            for grant in baseline.grants - grants[user]:
                found[grant, MISSING, baseline.name, ""].add(user)
    for role in roles:
        for user in sorted(role.members):
            held = grants[user]
            for grant in role.grants - held:
                found[grant, MISSING, role.name, ""].add(user)
            extras = held - role.grants - base
            old = _old_job(extras, role, roles)
            for grant in extras:
                kind = (OLD_JOB, old.label) if old and grant in old.grants else (EXTRA, "")
                found[grant, kind[0], role.name, kind[1]].add(user)
    return tuple(
        JobException(grant, why, role, frozenset(users), detail)
        for (grant, why, role, detail), users in sorted(found.items(), key=lambda item: (item[0][2], item[0]))
    )


def _old_job(extras: frozenset[str], own: JobRole, roles: tuple[JobRole, ...]) -> JobRole | None:
    """The other job whose role most of these extras come from, if they look like a move.

    A move leaves most of the old role's own grants behind; a personal extra or two that
    happens to belong to some role does not.
    """
    best, best_overlap = None, 0
    for other in roles:
        if other is own:
            continue
        specific = other.grants - own.grants
        overlap = len(extras & specific)
        if specific and overlap >= max(min(2, len(specific)), math.ceil(len(specific) / 2)) and overlap > best_overlap:
            best, best_overlap = other, overlap
    return best
