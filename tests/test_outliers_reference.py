"""Fast paths of the orphan report against plain references: the peer-outlier scan on generated
organisations, and findings (and their register rows) made in bulk.

The scan groups people by their set of direct groups and tallies in bulk to be fast at 100,000
users; the reference below walks every person and every grant the slow, obvious way. Both must
list the same outliers, in the same order, with the same reasons.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import fields
from datetime import datetime, timezone

import pytest

from rbac_migrate.model import ACCEPTED, GRANT, ROLE, USER, Entry, RegisteredFinding, Snapshot
from rbac_migrate.reports import _registered
from rbac_migrate.reports.orphans import ACTIONS, Finding, _finding
from rbac_migrate.reports.outliers import (
    ONE_OFF,
    OTHER_JOB,
    SIGNAL_RANK,
    OutlierSettings,
    find_outliers,
    job_key,
    job_label,
)

JOBS = [("Sales", "Manager"), ("Sales", "Clerk"), ("Finance", "Clerk"), ("Finance", "Accountant"),
        ("Legal", "Counsel"), ("IT", "Admin"), ("IT", "Manager"), ("Ops", "Tiny")]  # fmt: skip


def generated_org(seed: int) -> Snapshot:
    """Jobs with typical grants, movers who kept an old job's grants, one-offs, nesting, roles, leavers."""
    rng = random.Random(seed)
    entries: list[Entry] = []
    grants = []
    for i in range(30):
        grants.append(Entry(len(entries), GRANT, f"cn=g{i},ou=g", f"g{i}", f"g-{i}"))
        entries.append(grants[-1])
    roles = []
    for i in range(3):
        roles.append(Entry(len(entries), ROLE, f"cn=r{i},ou=r", f"r{i}", f"r-{i}"))
        entries.append(roles[-1])
    members: dict[int, list[int]] = {g.idx: [] for g in grants + roles}
    for role in roles:  # each role gives a few grants
        for grant in rng.sample(grants, 3):
            members[grant.idx].append(role.idx)
    for _ in range(4):  # and some grants sit inside others
        inner, outer = rng.sample(grants, 2)
        members[outer.idx].append(inner.idx)
    typical = {job: rng.sample(grants, rng.randint(2, 6)) for job in JOBS}
    sizes = {job: rng.randint(3, 60) for job in JOBS}
    sizes[("Ops", "Tiny")] = 3  # too small to judge
    for job, size in sizes.items():
        attrs = {"departmentNumber": job[0], "title": job[1]}
        for _ in range(size):
            n = len(entries)
            user = Entry(n, USER, f"uid=u{n},ou=p", f"U{n:04d}" if n % 2 else f"u{n:04d}", f"u-{n}",
                         enabled=rng.random() > 0.05, attrs=attrs if rng.random() > 0.03 else {})  # fmt: skip
            entries.append(user)
            held = [g for g in typical[job] if rng.random() < 0.85]
            if rng.random() < 0.15:  # a mover keeps part of an earlier job
                held += rng.sample(typical[rng.choice(JOBS)], 2)
            if rng.random() < 0.1:
                held.append(rng.choice(grants))
            if rng.random() < 0.2:
                held.append(rng.choice(roles))
            for group in dict.fromkeys(g.idx for g in held):
                members[group].append(n)
    taken = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return Snapshot(taken, "ldap://x", "openldap", {}, entries, {g: tuple(m) for g, m in members.items()}, 1)


def reference(snap: Snapshot, settings: OutlierSettings) -> list[tuple[str, str, str, str]]:
    """(user, group, signal, reason) of every peer outlier, computed person by person."""
    kinds = {e.idx: e.kind for e in snap.entries}
    names = {e.idx: e.name for e in snap.entries}

    def direct(idx: int) -> set[int]:
        return {g for g, values in snap.members.items() if idx in values}

    def reach(idx: int) -> set[int]:
        seen, todo = set(), list(direct(idx))
        while todo:
            group = todo.pop()
            if group not in seen:
                seen.add(group)
                todo += direct(group)
        return {g for g in seen if kinds[g] == GRANT}

    people: dict[tuple, list[Entry]] = defaultdict(list)
    for user in snap.entries:
        if user.kind == USER and user.enabled and user.attrs:
            people[job_key(user.attrs)].append(user)
    held = {key: defaultdict(int) for key in people}
    for key, users in people.items():
        for user in users:
            for group in reach(user.idx):
                held[key][group] += 1
    judged = sorted(key for key, users in people.items() if len(users) >= settings.min_peers)

    def share(key: tuple, group: int) -> float:
        return held[key][group] / len(people[key])

    def evidence(key: tuple, group: int) -> str:
        return f"held by {held[key][group]} of {len(people[key])} {job_label(people[key][0].attrs)}"

    found = []
    for key in judged:
        for user in people[key]:
            rare = [g for g in sorted(direct(user.idx)) if kinds[g] == GRANT and share(key, g) <= settings.max_share]
            if not rare:
                continue
            tally: dict[tuple, list] = {}
            for group in rare:
                for job in judged:
                    if job != key and share(job, group) >= settings.typical_share:
                        entry = tally.setdefault(job, [0, 0.0, set()])
                        entry[0] += 1
                        entry[1] += share(job, group)
                        entry[2].add(group)
            other, bundle = None, set()
            if tally:
                related = {job: bool(set(job) & set(key)) for job in tally}
                other = max(tally, key=lambda job: (tally[job][0], related[job], tally[job][1], job))
                bundle = tally[other][2]
                if len(bundle) < (1 if related[other] else settings.min_bundle):
                    other, bundle = None, set()
            for group in rare:
                here = evidence(key, group)
                if group in bundle:
                    count = f"{len(bundle)} rights" if len(bundle) > 1 else "1 right"
                    reason = f"{here}; {evidence(other, group)} ({count} typical of that job)"
                    found.append((user.name, names[group], OTHER_JOB, reason))
                else:
                    found.append((user.name, names[group], ONE_OFF, f"{here}; personal: typical of no other job"))
    found.sort(key=lambda o: (SIGNAL_RANK[o[2]], o[0].lower(), o[1].lower()))
    return found


SETTINGS = [OutlierSettings(), OutlierSettings(max_share=0.3, min_peers=4, typical_share=0.5, min_bundle=1)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "looser"])
def test_scan_lists_what_the_person_by_person_reference_lists(seed, settings):
    snap = generated_org(seed)
    scan = find_outliers(snap, settings)
    got = [(o.user.name, o.group.name, o.signal, o.reason) for o in scan.outliers]
    expected = reference(snap, settings)
    assert {signal for *_, signal, _reason in expected} == {OTHER_JOB, ONE_OFF}, "the org exercises both signals"
    assert got == expected


def test_findings_made_in_bulk_equal_findings_made_field_by_field():
    snap = generated_org(1)
    user, group = next(e for e in snap.entries if e.kind == USER), snap.entries[0]
    hit = (("peer-outlier", user.uuid, "", group.uuid), "peer-outlier", user, group, "", "held by 1 of 9", ONE_OFF)
    made = _finding(hit, 3, {3: "2026-01-01T00:00:00+00:00"})
    expected = Finding(
        category="peer-outlier", user_id=user.name, user_dn=user.dn, member_value="", group=group.name,
        first_snapshot=3, action=ACTIONS["peer-outlier"], key=f"peer-outlier|{user.uuid}||{group.uuid}",
        user_key=user.uuid, group_key=group.uuid, group_dn=group.dn, reason="held by 1 of 9",
        first_seen="2026-01-01T00:00:00+00:00", signal=ONE_OFF,
    )  # fmt: skip
    assert made == expected
    assert list(vars(made)) == [f.name for f in fields(Finding)], "JSON and CSV list the fields in this order"
    registered = _registered(made, ACCEPTED, {})
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert registered == RegisteredFinding(
        key=made.key, category="peer-outlier", user_key=user.uuid, user_name=user.name, group_key=group.uuid,
        group_name=group.name, member_value="", first_seen=first, last_seen=first, status=ACCEPTED, status_at=first,
    )  # fmt: skip
    assert list(vars(registered)) == [f.name for f in fields(RegisteredFinding)]
