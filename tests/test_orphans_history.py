"""report orphans over a changing organisation: what the command stores and prints equals a plain
reference computed the obvious way.

The command scans the snapshots before the newest for which findings they hold only, keeps the
findings register up to date by writing only what changed, and adjusts only the findings whose
registered status or first sighting differs from the report. The reference below scans every
stored snapshot in full and replays every finding into a register kept in a dict, as the
register's rules say. After each snapshot, a
batch, an exception and a prune, both must agree field for field.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from rbac_migrate import reports
from rbac_migrate.model import ACCEPTED, DANGLING, OPEN, REAPPEARED, REMEDIATED, USER, Entry, Snapshot
from rbac_migrate.reports.exceptions import add_exception
from rbac_migrate.reports.orphans import orphan_report
from rbac_migrate.reports.provenance import iso
from rbac_migrate.store import open_store
from tests.test_outliers_reference import JOBS, generated_org

LIVE = (OPEN, ACCEPTED, REAPPEARED)


def changed(snap: Snapshot, rng: random.Random, day: int) -> Snapshot:
    """The next snapshot: people leave, come back, move job, gain and lose grants; values dangle."""
    entries = list(snap.entries)
    members = {group: list(values) for group, values in snap.members.items()}
    users = [e for e in entries if e.kind == USER]
    groups = sorted(members)
    for _ in range(rng.randint(5, 25)):
        user = rng.choice(users)
        step = rng.randrange(5)
        if step == 0:
            entries[user.idx] = replace(user, enabled=not user.enabled)
        elif step == 1:  # a mover: the old job's grants stay
            job = rng.choice(JOBS)
            entries[user.idx] = replace(user, attrs={"departmentNumber": job[0], "title": job[1]})
        elif step == 2:
            group = rng.choice(groups)
            if user.idx not in members[group]:
                members[group].append(user.idx)
        elif step == 3:
            group = rng.choice([g for g in groups if members[g]])
            members[group].remove(rng.choice(members[group]))
        else:
            ghost = Entry(len(entries), DANGLING, f"uid=ghost{len(entries)},ou=p", f"ghost{len(entries)}")
            entries.append(ghost)
            members[rng.choice(groups)].append(ghost.idx)
        users = [e for e in entries if e.kind == USER]
    taken = snap.taken_at + timedelta(days=day)
    return Snapshot(taken, snap.source, snap.flavour, snap.bases, entries, {g: tuple(m) for g, m in members.items()})


class Register:
    """The findings register as its rules say, kept in a dict: every finding of every report."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def report(self, snapshot_id: int, seen_at: datetime, report) -> None:
        reported = [(f, OPEN) for f in report.findings] + [(a.finding, ACCEPTED) for a in report.accepted]
        for finding, status in reported:
            row = self.rows.get(finding.key)
            if row is None:
                first = datetime.fromisoformat(finding.first_seen)
                self.rows[finding.key] = {
                    "key": finding.key, "category": finding.category, "user_key": finding.user_key,
                    "user_name": finding.user_id, "group_key": finding.group_key, "group_name": finding.group,
                    "member_value": finding.member_value, "first_seen": first, "last_seen": first,
                    "status": status, "status_at": seen_at, "fixed_at": None, "fixed_batch": None,
                }  # fmt: skip
                continue
            if status == ACCEPTED:
                now = ACCEPTED
            else:
                now = REAPPEARED if row["status"] in (REMEDIATED, REAPPEARED) else OPEN
            if now != row["status"]:
                row.update(status=now, status_at=seen_at)
            row["last_seen"] = seen_at
        present = {finding.key for finding, _status in reported}
        for key, row in self.rows.items():
            if row["status"] in LIVE and key not in present:
                row.update(status=REMEDIATED, status_at=seen_at, fixed_at=seen_at)

    def remediated(self, keys: list[str], batch: int, at: datetime) -> None:
        for key in keys:
            self.rows[key].update(status=REMEDIATED, status_at=at, fixed_at=at, fixed_batch=batch)

    def shown(self, finding):
        """A finding as the report shows it: status and earliest first sighting from the register."""
        row = self.rows[finding.key]
        first = iso(row["first_seen"])
        if row["status"] == finding.status and first >= finding.first_seen:
            return finding
        return replace(finding, status=row["status"], first_seen=min(first, finding.first_seen))


def expected_report(store, register: Register):
    """The report recomputed from every stored snapshot, and the register replayed with it."""
    history = [store.load_snapshot(info.id) for info in store.snapshots()]
    # An iterator has no length: every snapshot is scanned in full, reasons and all.
    report = orphan_report(iter(history), exceptions=store.findings.exceptions())
    register.report(report.snapshot.id, report.snapshot.taken_at, report)
    return [register.shown(f) for f in report.findings], report


@pytest.mark.parametrize("seed", [1, 2])
def test_reports_and_register_equal_the_whole_history_replayed(store_url, seed):
    store = open_store(store_url)
    rng = random.Random(seed)
    snap, register = generated_org(seed), Register()
    steps = {"batch": 3, "exception": 4, "prune": 6, "unreported": 7}
    seen: set[str] = set()
    for step in range(1, 10):
        if step == steps["unreported"]:  # a snapshot no report ran on: its findings are first seen there
            store.save_snapshot(snap)
            snap = changed(snap, rng, step)
        store.save_snapshot(snap)
        if step == steps["exception"]:
            target = next(f for f in store.findings.open_findings() if f.category == "peer-outlier")
            user = next(e for e in snap.entries if e.uuid == target.user_key)
            group = next(e for e in snap.entries if e.uuid == target.group_key)
            add_exception(store, user.dn, group.dn, "audit", "kept on purpose", "2999-01-01", None)
        if step == steps["prune"]:
            store.prune_snapshots(keep=2)  # the register now remembers more than the history
        got = reports.orphans(store)
        expected, computed = expected_report(store, register)
        assert [vars(f) for f in got.findings] == [vars(f) for f in expected], step
        assert [vars(a.finding) for a in got.accepted] == [vars(a.finding) for a in computed.accepted]
        assert got.trend == computed.trend
        rows = {f.key: vars(f) for f in store.findings.register()}
        assert rows == register.rows, step
        seen.update(row["status"] for row in rows.values())
        if step == steps["batch"]:
            fixed = sorted(f.key for f in store.findings.open_findings())[::7]
            at = snap.taken_at + timedelta(hours=1)
            store.findings.mark_remediated(fixed, batch_id=step, at=at)
            register.remediated(fixed, step, at)
        if step in (2, steps["unreported"]):  # the same snapshot reported again
            again = reports.orphans(store)
            expected, _computed = expected_report(store, register)
            assert [vars(f) for f in again.findings] == [vars(f) for f in expected]
            assert {f.key: vars(f) for f in store.findings.register()} == register.rows
        snap = changed(snap, rng, step)
    assert seen == {OPEN, ACCEPTED, REMEDIATED, REAPPEARED}, "the history exercises every status"
    assert any(f.first_seen < iso(got.snapshot.taken_at) for f in got.findings), "and first sightings from the register"
