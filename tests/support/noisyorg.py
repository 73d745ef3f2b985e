"""A seeded noisy organisation: people in jobs (department + title) with the mess real access has.

Every job has a true access profile (what its role should carry): an org-wide baseline, the
department's grants and the title's own. On top of that, a share of people hold one to three
personal extras, some lack one right of their profile, and some moved from another job and kept
its rights. Everything planted is recorded so tests can tell what mining should recover.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

Job = tuple[str, str]  # (department, title)

BASELINE = ("email", "intranet", "vpn", "chat")
DEPARTMENTS = (
    "Finance", "Sales", "Engineering", "Support", "Marketing", "Legal",
    "People", "Operations", "Procurement", "Security", "Data", "Facilities",
)  # fmt: skip
TITLES = (
    "Analyst", "Manager", "Specialist", "Engineer", "Coordinator", "Lead",
    "Associate", "Director", "Administrator", "Consultant",
)  # fmt: skip
APPS = ("ledger", "crm", "git", "tickets", "cms", "contracts", "hris", "erp", "vault", "bi", "cad", "wiki")
LEVELS = ("read", "write", "admin")
PERSONAL = 150  # grants nobody's job needs: one-off requests


@dataclass
class NoisyOrg:
    """People, their jobs and grants, the true job profiles, and who was made noisy how."""

    profiles: dict[Job, frozenset[str]]
    jobs: dict[str, Job]
    access: dict[str, set[str]]
    planted: dict[str, dict[str, object]] = field(default_factory=dict)

    def attrs(self) -> dict[str, dict[str, str]]:
        """Peer attributes per user, as the snapshot keeps them."""
        return {user: {"departmentNumber": d, "title": t} for user, (d, t) in self.jobs.items()}

    def grants(self) -> set[str]:
        return {grant for held in self.access.values() for grant in held}

    def ldif(self, base: str, roles: Mapping[str, tuple[frozenset[str], list[str]]] | None = None) -> str:
        """People under ou=people, one grant group per held grant, and ``roles`` (name: grants, holders).

        A role's holders reach its grants through the role, not directly.
        """
        people, groups = f"ou=people,{base}", f"ou=groups,{base}"
        records = [_ou(people), _ou(groups), _ou(f"ou=grants,{groups}"), _ou(f"ou=roles,{groups}")]
        for user, (department, title) in sorted(self.jobs.items()):
            records.append(
                f"dn: uid={user},{people}\nobjectClass: inetOrgPerson\nuid: {user}\ncn: {user}\nsn: {user}\n"
                f"departmentNumber: {department}\ntitle: {title}\n"
            )
        via_role = {(user, grant) for grants, users in (roles or {}).values() for user in users for grant in grants}
        members: dict[str, list[str]] = {}
        for user, held in sorted(self.access.items()):
            for grant in sorted(held):
                if (user, grant) not in via_role:
                    members.setdefault(grant, []).append(f"uid={user},{people}")
        for name, (grants, users) in (roles or {}).items():
            records.append(_group(f"cn={name},ou=roles,{groups}", name, [f"uid={u},{people}" for u in users]))
            for grant in grants:
                members.setdefault(grant, []).append(f"cn={name},ou=roles,{groups}")
        for grant, values in sorted(members.items()):
            records.append(_group(f"cn={grant},ou=grants,{groups}", grant, values))
        return "\n".join(records) + "\n"


def _group(dn: str, cn: str, members: list[str]) -> str:
    return f"dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n" + "".join(f"member: {m}\n" for m in members)


def _ou(dn: str) -> str:
    return f"dn: {dn}\nobjectClass: organizationalUnit\nou: {dn.split(',')[0].split('=')[1]}\n"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def generate(
    people: int = 3000,
    jobs: int = 62,
    seed: int = 1,
    extras: float = 0.30,
    missing: float = 0.05,
    movers: float = 0.05,
    min_job_size: int = 6,
) -> NoisyOrg:
    """``people`` in ``jobs`` distinct jobs with distinct profiles; the same arguments give the same org."""
    rng = random.Random(seed)
    chosen = _pick_jobs(rng, jobs)
    profiles = _distinct_profiles(rng, chosen)
    members = _assign(rng, people, chosen, min_job_size)
    access = {user: set(profiles[job]) for user, job in members.items()}
    universe = sorted({g for p in profiles.values() for g in p} | {f"app-{n:03}" for n in range(PERSONAL)})
    users = sorted(members)
    planted: dict[str, dict[str, object]] = {"extra": {}, "missing": {}, "mover": {}}
    for user in rng.sample(users, round(extras * people)):
        pool = [g for g in universe if g not in access[user]]
        added = set(rng.sample(pool, rng.randint(1, 3)))
        access[user] |= added
        planted["extra"][user] = added
    for user in rng.sample(users, round(movers * people)):
        # Movers before missing rights: a right someone lacks stays lacking.
        old = rng.choice([job for job in chosen if job != members[user]])
        access[user] |= profiles[old]
        planted["mover"][user] = old
    for user in rng.sample(users, round(missing * people)):
        lost = rng.choice(sorted(profiles[members[user]]))
        access[user].discard(lost)
        planted["missing"][user] = lost
    return NoisyOrg(profiles, members, access, planted)


def _pick_jobs(rng: random.Random, count: int) -> list[Job]:
    every = [(d, t) for d in DEPARTMENTS for t in TITLES]
    if count > len(every):
        raise ValueError(f"at most {len(every)} jobs, got {count}")
    return sorted(rng.sample(every, count))


def _distinct_profiles(rng: random.Random, jobs: list[Job]) -> dict[Job, frozenset[str]]:
    """Baseline + two department grants + two to four grants of the title, never twice the same."""
    seen: set[frozenset[str]] = set()
    profiles = {}
    for department, title in jobs:
        dept = _slug(department)
        shared = {f"{dept}-share", f"{dept}-reports"}
        while True:
            own = {f"{dept}-{app}-{rng.choice(LEVELS)}" for app in rng.sample(APPS, rng.randint(2, 4))}
            profile = frozenset(BASELINE) | shared | own
            if profile not in seen:
                break
        seen.add(profile)
        profiles[department, title] = profile
    return profiles


def _assign(rng: random.Random, people: int, jobs: list[Job], min_size: int) -> dict[str, Job]:
    """Every job gets ``min_size`` people, the rest go to jobs of uneven weight."""
    weights = [rng.uniform(0.3, 2.0) for _ in jobs]
    placed = [job for job in jobs for _ in range(min_size)]
    placed += rng.choices(jobs, weights, k=people - len(placed))
    rng.shuffle(placed)
    return {f"u{n:05}": job for n, job in enumerate(placed)}
