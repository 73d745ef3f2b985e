"""Peer outliers on a first snapshot: what movers kept from their old job, ahead of personal one-offs."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import pytest

from rbac_migrate.model import GRANT, USER, Entry, Snapshot
from rbac_migrate.reports.outliers import ONE_OFF, OTHER_JOB, OutlierSettings, find_outliers
from tests.conftest import Org


@pytest.fixture
def big_org(slapd, ldap_base, tmp_path) -> Org:
    """1,000 people: enough members per job to judge; 3% moved without losing their old rights."""
    return Org(slapd, ldap_base, tmp_path, users=1000, seed=7)


def old_job_rights(sample, min_peers: int) -> set[tuple[str, str]]:
    """(uid, grant) each mover still holds from the old job and the new job does not give."""
    size = Counter((u.department, u.title) for u in sample.users if not u.leaver)
    users = {u.uid: u for u in sample.users}
    out = set()
    for uid, old, new in sample.planted["mover"]:
        if size[new] >= min_peers:  # a smaller job is not judged, and the report says so
            out |= {(uid, g) for g in (sample.profiles[old] - sample.profiles[new]) & users[uid].direct_grants}
    return out


def test_first_snapshot_lists_old_job_rights_first_with_evidence(big_org):
    assert big_org.run("snapshot", "take").code == 0
    result = big_org.run("report", "orphans", "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    entries = [f for f in document["findings"] if f["category"] == "peer-outlier"]
    signals = [f["signal"] for f in entries]
    assert signals == sorted(signals, key=[OTHER_JOB, ONE_OFF].index), "earlier-job rights come first"
    old = old_job_rights(big_org.sample, OutlierSettings.min_peers)
    one_offs = {tuple(x) for x in big_org.sample.planted["extra"]}
    listed = {(f["user_id"], f["group"]) for f in entries}
    first = {(f["user_id"], f["group"]) for f in entries if f["signal"] == OTHER_JOB}
    recall, precision = len(old & first) / len(old), len(listed & (old | one_offs)) / len(listed)
    good = len(listed & (old | one_offs))
    print(f"\nold-job rights ranked first: {len(old & first)}/{len(old)} = {recall:.1%}; ", end="")
    print(f"entries that are old-job rights or one-offs: {good}/{len(listed)} = {precision:.1%}")
    assert recall >= 0.9 and precision >= 0.9
    assert document["summary"]["mover-leftover"] == 0  # history alone could not have found them
    example = next(f for f in entries if f["signal"] == OTHER_JOB)
    here, there = example["reason"].split("; ")[:2]
    assert here.startswith("held by ") and " of " in here and there.startswith("held by ")


def _people(job: str, count: int, start: int, grants: dict[str, list[int]], names: dict[str, int]) -> list[Entry]:
    dept, title = job.split("/")
    people = [
        Entry(start + i, USER, f"uid={title}{i},ou=p", f"{title}{i}", f"u-{title}{i}",
              attrs={"departmentNumber": dept, "title": title})
        for i in range(count)
    ]  # fmt: skip
    for group in names:
        grants.setdefault(group, [])
    return people


def _snapshot(jobs: dict[str, int], holdings: dict[str, dict[str, list[int]]]) -> Snapshot:
    """Jobs of the given sizes; holdings: job → grant → member numbers within that job."""
    entries: list[Entry] = []
    by_job: dict[str, list[Entry]] = {}
    for job, size in jobs.items():
        by_job[job] = _people(job, size, len(entries), {}, {})
        entries += by_job[job]
    grants = sorted({g for held in holdings.values() for g in held})
    index = {}
    for name in grants:
        index[name] = len(entries)
        entries.append(Entry(len(entries), GRANT, f"cn={name},ou=g", name, f"g-{name}"))
    members: dict[int, tuple[int, ...]] = {index[g]: () for g in grants}
    for job, held in holdings.items():
        for grant, who in held.items():
            members[index[grant]] += tuple(by_job[job][i].idx for i in who)
    return Snapshot(datetime(2026, 1, 1, tzinfo=timezone.utc), "ldap://x", "openldap", {}, entries, members, 1)


def test_bundles_of_another_job_rank_above_one_offs_and_small_jobs_are_not_judged():
    everyone = list(range(10))
    snap = _snapshot(
        {"Sales/Manager": 10, "Finance/Accountant": 10, "Legal/Counsel": 3},
        {
            "Sales/Manager": {"crm": everyone, "quotes": everyone, "ledger": [0], "ap": [0], "badge": [1]},
            "Finance/Accountant": {"ledger": everyone, "ap": everyone[:8]},
            "Legal/Counsel": {"contracts": [0, 1, 2], "oddity": [0]},
        },
    )
    scan = find_outliers(snap)
    got = [(o.user.name, o.group.name, o.signal) for o in scan.outliers]
    assert got == [("Manager0", "ap", OTHER_JOB), ("Manager0", "ledger", OTHER_JOB), ("Manager1", "badge", ONE_OFF)]
    reason = scan.outliers[1].reason
    assert (
        reason
        == "held by 1 of 10 Sales / Manager; held by 10 of 10 Finance / Accountant (2 rights typical of that job)"
    )
    assert scan.note == "peer-outlier: 3 users in 1 jobs not judged (too few peers, or no peer attributes)"
    # Stricter thresholds: a single unrelated right is no bundle, and a job of 3 is judged when allowed.
    strict = find_outliers(snap, OutlierSettings(max_share=0.34, min_bundle=3, min_peers=3))
    assert {(o.user.name, o.signal) for o in strict.outliers} == {
        ("Manager0", ONE_OFF), ("Manager1", ONE_OFF), ("Counsel0", ONE_OFF)
    }  # fmt: skip
    assert strict.note == ""


def test_bad_thresholds_are_a_usage_error(big_org):
    from tests.support.cli import assert_one_line_error

    assert big_org.run("snapshot", "take").code == 0
    assert_one_line_error(big_org.run("report", "orphans", "--outlier-share", "2"), "max-share", code=2)
