"""report orphans and report progress against a real slapd, checked against the generator's ground truth."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import insert

from rbac_migrate import snapshot
from rbac_migrate.config import load_settings
from rbac_migrate.demo.sampleorg import SampleOrg
from rbac_migrate.model import DANGLING, GRANT, ROLE, USER, Entry, Snapshot
from rbac_migrate.reports import find_orphans
from rbac_migrate.reports.hrfeed import read_hr_feed
from rbac_migrate.reports.orphans import CATEGORIES
from rbac_migrate.store import open_store
from rbac_migrate.store.schema import batch_users, batches
from tests.support.cli import assert_one_line_error

Profile = tuple[str, str]


# -- a history with something to find in every category ------------------------------------


@dataclass
class History:
    """Two snapshots of the sample org: planted movers move, one role holder leaves, in between."""

    org: object
    movers: list[str]
    new_leaver: str
    hr: set[str]
    hr_feed: Path

    @property
    def store(self):
        return open_store(yaml.safe_load(self.org.config.read_text())["store"])


def set_profile(org, uid: str, profile: Profile) -> None:
    dept, title = profile
    org.slapd.ldapmodify(
        f"dn: uid={uid},{org.sample.people_dn}\nchangetype: modify\n"
        f"replace: departmentNumber\ndepartmentNumber: {dept}\n-\nreplace: title\ntitle: {title}\n"
    )


def disable(org, uid: str) -> None:
    org.slapd.ldapmodify(
        f"dn: uid={uid},{org.sample.people_dn}\nchangetype: modify\nadd: employeeType\nemployeeType: leaver\n"
    )


def take(org) -> int:
    result = org.run("snapshot", "take")
    assert result.code == 0, result.err
    return int(result.out)


def make_history(org, tmp_path: Path) -> History:
    sample: SampleOrg = org.sample
    movers = sample.planted["mover"]
    for uid, old, _new in movers:  # the generator writes movers as they are now: step back first
        set_profile(org, uid, old)
    take(org)
    for uid, _old, new in movers:
        set_profile(org, uid, new)
    moved = {uid for uid, _, _ in movers}
    leaver = next(u for u in sample.users if u.roles and u.direct_grants and not u.leaver and u.uid not in moved)
    disable(org, leaver.uid)
    take(org)
    staff = sorted(u.uid for u in sample.users if not u.leaver and u.uid != leaver.uid)
    gone = [uid for uid in staff if uid not in moved and sample_user(sample, uid).direct_grants][:3]
    hr = (set(staff) - set(gone)) | {"new-starter"}
    feed = tmp_path / "staff.csv"
    feed.write_text("employee,name\n" + "".join(f"{uid},Someone\n" for uid in sorted(hr)), encoding="utf-8")
    return History(org, sorted(moved), leaver.uid, hr, feed)


def sample_user(sample: SampleOrg, uid: str):
    return next(u for u in sample.users if u.uid == uid)


# -- the expected findings, derived from the generator's ground truth ----------------------


def expected(sample: SampleOrg, leavers: set[str], profiles: dict[str, Profile], movers: set[str], hr: set[str]):
    """Every finding the report must make for one state of the org, as (category, who, group)."""
    groups = {g.dn.lower(): g for g in sample.groups}
    known = groups.keys() | {u.dn.lower() for u in sample.users}
    parents: dict[str, set[str]] = {}
    for group in sample.groups:
        for member in group.members:
            if member.lower() in groups:
                parents.setdefault(groups[member.lower()].cn, set()).add(group.cn)

    def closure(cn: str) -> set[str]:
        seen, stack = set(), [cn]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(parents.get(node, ()))
        return seen

    def reach(user) -> set[str]:
        return set().union(*(closure(g) for g in user.direct_grants | user.roles))

    enabled = [u for u in sample.users if u.uid not in leavers]
    out: set[tuple[str, str, str]] = set()
    for user in sample.users:
        direct = user.direct_grants | user.roles
        if user.uid in leavers:
            out |= {("leaver-grant", user.uid, g) for g in direct}
            continue
        if user.uid not in hr:
            out |= {("not-in-hr", user.uid, g) for g in direct}
        if user.roles:
            given = set().union(*(closure(r) - {r} for r in user.roles))
            out |= {("redundant-grant" if g in given else "unexplained-grant", user.uid, g) for g in user.direct_grants}
    leaver_dns = {u.dn.lower() for u in sample.users if u.uid in leavers}
    for group in sample.groups:
        values = [m.lower() for m in group.members]
        out |= {("dangling-member", v, group.cn) for v in values if v not in known}
        if group.kind == GRANT and all(v in leaver_dns or v not in known for v in values):
            out.add(("empty-group", "", group.cn))
        if group.kind == ROLE and not any(group.cn in u.roles for u in enabled):
            out.add(("unused-role", "", group.cn))
    for mover in (u for u in enabled if u.uid in movers):
        peers = [u for u in enabled if profiles[u.uid] == profiles[mover.uid] and u.uid not in movers]
        held = set().union(*(reach(p) for p in peers))
        out |= {("mover-leftover", mover.uid, g) for g in (mover.direct_grants | mover.roles) - held}
    return out


def expected_history(history: History) -> set[tuple[str, str, str, int]]:
    sample = history.org.sample
    now = {u.uid: (u.department, u.title) for u in sample.users}
    before = dict(now) | {uid: old for uid, old, _ in sample.planted["mover"]}
    leavers = {u.uid for u in sample.users if u.leaver}
    first = expected(sample, leavers, before, set(), history.hr)
    second = expected(sample, leavers | {history.new_leaver}, now, set(history.movers), history.hr)
    return {(*key, 1 if key in first else 2) for key in second}


def found(document: dict) -> set[tuple[str, str, str, int]]:
    """Findings of every category but peer-outlier (a judgement from peers, tested in test_outliers.py)."""
    return {
        (f["category"], f["user_id"] or f["member_value"].lower(), f["group"], f["first_snapshot"])
        for f in document["findings"]
        if f["category"] != "peer-outlier"
    }


# -- tests ------------------------------------------------------------------------------------


def test_finds_every_planted_finding_and_nothing_else(org, tmp_path):
    history = make_history(org, tmp_path)
    result = org.run("report", "orphans", "--hr-feed", str(history.hr_feed), "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    want, got = expected_history(history), found(document)
    assert got - want == set(), "reported but not planted"
    assert want - got == set(), "planted but not reported"
    assert {c for c, *_ in got} == set(CATEGORIES) - {"peer-outlier"}, "the org must exercise every category"
    assert document["summary"]["peer-outlier"] > 0
    assert {p for c, *_, p in got if c == "mover-leftover"} == {2}
    assert {c for c, who, _g, p in got if p == 2 and who == history.new_leaver} == {"leaver-grant"}
    # The planted lists, read directly: every one is in the report.
    planted = org.sample.planted
    assert {(v.lower(), g) for g, v in planted["dangling"]} == {(w, g) for c, w, g, _ in got if c == "dangling-member"}
    assert set(planted["empty_group"]) <= {g for c, _w, g, _ in got if c == "empty-group"}
    assert set(planted["unused_role"]) <= {g for c, _w, g, _ in got if c == "unused-role"}
    redundant = {(u, g) for u, g in planted["redundant"] if u != history.new_leaver}
    assert redundant <= {(w, g) for c, w, g, _ in got if c == "redundant-grant"}
    assert {w for c, w, _g, _ in got if c == "mover-leftover"} <= set(history.movers)


def test_summary_counts_and_json_shape(org, tmp_path):
    history = make_history(org, tmp_path)
    document = json.loads(org.run("report", "orphans", "--hr-feed", str(history.hr_feed), "--format", "json").out)
    assert list(document) == [
        "snapshot", "provenance", "summary", "accepted_count", "notes", "findings", "accepted", "trend",
    ]  # fmt: skip
    provenance = document["provenance"]
    assert (provenance["directory"], provenance["snapshot"]) == (org.slapd.url, 2)
    assert provenance["operator"] and provenance["tool_version"] and provenance["generated_at"]
    assert list(document["summary"]) == list(CATEGORIES)
    for category, count in document["summary"].items():
        assert count == sum(1 for f in document["findings"] if f["category"] == category)
    snap = document["snapshot"]
    assert snap["id"] == 2 and snap["source"] == org.slapd.url
    assert snap["hr_feed"] == f"staff.csv ({len(history.hr)} ids)"
    assert snap["bases"]["grant_base"] == org.sample.grant_base
    assert [p["snapshot"] for p in document["trend"]] == [1, 2]
    assert document["trend"][-1]["summary"] == document["summary"]
    leaver = next(f for f in document["findings"] if f["category"] == "leaver-grant")
    assert leaver["user_dn"].lower() == f"uid={leaver['user_id']},{org.sample.people_dn}".lower()
    assert leaver["action"] == "remove membership" and leaver["reason"] == "account disabled"


def test_without_hr_feed_the_category_is_absent(org):
    take(org)
    document = json.loads(org.run("report", "orphans", "--format", "json").out)
    assert "not-in-hr" not in document["summary"]
    assert document["summary"]["mover-leftover"] == 0  # one snapshot: nobody can have moved yet
    assert {f["first_snapshot"] for f in document["findings"]} == {1}


def test_earlier_snapshot_by_id(org, tmp_path):
    history = make_history(org, tmp_path)
    document = json.loads(org.run("report", "orphans", "--snapshot", "1", "--format", "json").out)
    assert document["snapshot"]["id"] == 1 and len(document["trend"]) == 1
    leavers = {u.uid for u in org.sample.users if u.leaver}
    before = {u.uid: (u.department, u.title) for u in org.sample.users}
    want = expected(org.sample, leavers, before, set(), set(before))
    assert {
        (f["category"], f["user_id"] or f["member_value"].lower(), f["group"])
        for f in document["findings"]
        if f["category"] != "peer-outlier"
    } == {w for w in want if w[0] != "not-in-hr"}
    assert history.new_leaver not in {f["user_id"] for f in document["findings"] if f["category"] == "leaver-grant"}


def test_table_puts_the_summary_first(org, tmp_path):
    history = make_history(org, tmp_path)
    result = org.run("report", "orphans", "--hr-feed", str(history.hr_feed))
    assert result.code == 0, result.err
    summary, findings = result.out.split("\n\n", 1)
    lines = summary.splitlines()
    assert lines[0].split() == ["category", "count", "meaning"]
    counts = {line.split()[0]: int(line.split()[1]) for line in lines[2:]}
    document = json.loads(org.run("report", "orphans", "--hr-feed", str(history.hr_feed), "--format", "json").out)
    assert counts == {**document["summary"], "(accepted)": 0}
    assert findings.splitlines()[0].split() == ["category", "user", "group", "first", "seen", "action", "reason"]
    assert len(findings.splitlines()) == 2 + len(document["findings"])


def test_csv_has_one_row_per_finding(org, tmp_path):
    history = make_history(org, tmp_path)
    out = tmp_path / "orphans.csv"
    result = org.run("report", "orphans", "--hr-feed", str(history.hr_feed), "--format", "csv", "-o", str(out))
    assert result.code == 0 and result.out == ""
    assert f"wrote {out}" in result.err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    document = json.loads(org.run("report", "orphans", "--hr-feed", str(history.hr_feed), "--format", "json").out)
    columns = [c for c in rows[0] if c in document["findings"][0]]
    assert [{c: row[c] for c in columns} for row in rows] == [
        {c: "" if f[c] is None else str(f[c]) for c in columns} for f in document["findings"]
    ]
    provenance = {k: v for k, v in document["provenance"].items() if k != "generated_at"}
    assert all({k: row[k] for k in provenance} == {k: str(v) for k, v in provenance.items()} for row in rows)


def test_bad_input_is_one_line(org, tmp_path):
    assert_one_line_error(org.run("report", "orphans"), "no snapshot yet")
    take(org)
    missing = tmp_path / "nope.csv"
    assert_one_line_error(org.run("report", "orphans", "--hr-feed", str(missing)), f"cannot read HR feed {missing}")
    empty = tmp_path / "empty.csv"
    empty.write_text("uid\n\n")
    assert_one_line_error(org.run("report", "orphans", "--hr-feed", str(empty)), "holds no staff ids")
    target = tmp_path / "no-such-dir" / "out.html"
    assert_one_line_error(org.run("report", "orphans", "--format", "html", "-o", str(target)), f"cannot write {target}")
    assert not target.parent.exists()
    assert_one_line_error(org.run("report", "orphans", "--snapshot", "9"), "no snapshot 9")


@pytest.mark.parametrize(
    "text, ids",
    [
        ("uid,name\nalice,A\nbob,B\n", {"alice", "bob"}),
        ("name;sAMAccountName\nAlice;alice\nBob;bob\n", {"alice", "bob"}),
        ("Employee\talias\nalice\tx\n", {"alice"}),
        ("ID\nalice\n\n  bob  \n", {"alice", "bob"}),
        ("alice,Alice Smith\nbob,Bob Jones\n", {"alice", "bob"}),
        ("alice\nbob\n", {"alice", "bob"}),
    ],
)
def test_hr_feed_columns(tmp_path, text, ids):
    feed = tmp_path / "staff.csv"
    feed.write_text(text, encoding="utf-8-sig")  # as spreadsheets save it, byte-order mark first
    assert read_hr_feed(feed) == ids


def _snap(number: int, leaver_in_group: bool) -> Snapshot:
    entries = [
        Entry(0, USER, "uid=ann,ou=p", "ann", "u-ann", enabled=False),
        Entry(1, USER, "uid=bob,ou=p", "bob", "u-bob"),
        Entry(2, GRANT, "cn=g,ou=g", "g", "g-1"),
        Entry(3, DANGLING, "uid=gone,ou=p", "uid=gone,ou=p"),
    ]
    members = {2: (0, 1, 3) if leaver_in_group else (1, 3)}
    taken = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=number)
    return Snapshot(taken, "ldap://x", "openldap", {}, entries, members, id=number)


def test_first_snapshot_counts_only_the_unbroken_run():
    findings = find_orphans([_snap(1, True), _snap(2, False), _snap(3, True), _snap(4, True)])
    first = {(f.category, f.user_id or f.member_value): f.first_snapshot for f in findings}
    assert first == {("leaver-grant", "ann"): 3, ("dangling-member", "uid=gone,ou=p"): 1}


def _job(number: int, title: str, grants: tuple[str, ...]) -> Snapshot:
    """Carl, whose title changes over time, and Dana, the one peer in each title."""
    entries = [
        Entry(0, USER, "uid=carl,ou=p", "carl", "u-carl", attrs={"title": title}),
        Entry(1, USER, "uid=dana,ou=p", "dana", "u-dana", attrs={"title": "Buyer"}),
        Entry(2, USER, "uid=erin,ou=p", "erin", "u-erin", attrs={"title": "Clerk"}),
        Entry(3, GRANT, "cn=po,ou=g", "po", "g-po"),
        Entry(4, GRANT, "cn=ledger,ou=g", "ledger", "g-ledger"),
    ]
    by_name = {"po": 3, "ledger": 4}
    members = {3: (1,), 4: (2,)}
    for grant in grants:
        members[by_name[grant]] += (0,)
    taken = datetime(2026, 1, number, tzinfo=timezone.utc)
    return Snapshot(taken, "ldap://x", "openldap", {}, entries, members, number)


def _movers(*history: Snapshot) -> set[tuple[str, str, int]]:
    return {(f.user_id, f.group, f.first_snapshot) for f in find_orphans(history) if f.category == "mover-leftover"}


def test_movers_compare_with_every_earlier_snapshot():
    clerk, buyer = ("Clerk", ("ledger",)), ("Buyer", ("ledger", "po"))
    assert _movers(_job(1, *clerk), _job(2, *clerk)) == set()
    assert _movers(_job(1, *clerk), _job(2, *buyer)) == {("carl", "ledger", 2)}  # no buyer holds ledger
    assert _movers(_job(1, *clerk), _job(2, *buyer), _job(3, *buyer)) == {("carl", "ledger", 2)}
    assert _movers(_job(1, *clerk), _job(2, *clerk), _job(3, *buyer)) == {("carl", "ledger", 3)}
    # Back in the old job: still a mover, and the buyer's grant is now the leftover.
    assert _movers(_job(1, *clerk), _job(2, *buyer), _job(3, "clerk ", ("ledger", "po"))) == {("carl", "po", 3)}
    assert _movers(_job(1, *clerk), _job(2, "CLERK", ("ledger", "po"))) == set()  # case is not a move


def test_bulk_load_and_report_on_each_store(org_on_store):
    settings = load_settings(config=str(org_on_store.config), environ={})
    store = open_store(yaml.safe_load(org_on_store.config.read_text())["store"])
    taken = snapshot.take_snapshot(settings, store, prompt=lambda _text: org_on_store.slapd.admin_password)
    loaded = store.load_snapshot()
    assert (loaded.entries, loaded.members, loaded.taken_at, loaded.bases) == (
        taken.entries,
        taken.members,
        taken.taken_at,
        taken.bases,
    )
    result = org_on_store.run("report", "orphans", "--format", "json")
    assert result.code == 0, result.err
    leavers = {u.uid for u in org_on_store.sample.users if u.leaver}
    assert {f["user_id"] for f in json.loads(result.out)["findings"] if f["category"] == "leaver-grant"} == leavers


# -- progress ---------------------------------------------------------------------------------


def add_batch(store, batch_id: int, role_dn: str, status: str, users: list[tuple[str, str]]) -> None:
    now = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(hours=batch_id)
    with store.engine.begin() as conn:
        conn.execute(
            insert(batches).values(
                id=batch_id, kind="migrate", role_dn=role_dn, status=status, operator="op@host",
                created_at=now, finished_at=now, plan="{}",
            )
        )  # fmt: skip
        for position, (dn, state) in enumerate(users):
            conn.execute(
                insert(batch_users).values(
                    batch_id=batch_id, position=position, user_dn=dn, state=state, before_access="[]"
                )
            )


def test_progress_over_snapshots_and_batches(org, tmp_path):
    history = make_history(org, tmp_path)
    sample = org.sample
    role, profile = next(iter(sample.role_profiles.items()))
    role_dn = f"cn={role},{sample.role_base}"
    dns = [u.dn for u in sample.users[:4]]
    store = history.store
    add_batch(store, 1, role_dn, "applied", [(dns[0], "verified"), (dns[1], "verified")])
    add_batch(store, 2, role_dn, "rolled_back", [(dns[1], "restored"), (dns[2], "conflict")])
    add_batch(store, 3, role_dn.upper(), "running", [(dns[3], "pending")])
    add_batch(store, 4, f"cn=role-gone,{sample.role_base}", "applied", [(dns[0], "verified")])
    result = org.run("report", "progress", "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    leavers = {u.uid for u in sample.users if u.leaver} | {history.new_leaver}
    enabled = [u for u in sample.users if u.uid not in leavers]
    last = document["over_time"][-1]
    assert (last["users"], last["with_roles"]) == (len(enabled), sum(1 for u in enabled if u.roles))
    assert last["direct_grants"] == sum(len(u.direct_grants) for u in enabled)
    assert last["holders"] == {r: sum(1 for u in enabled if r in u.roles) for r in sample.role_profiles}
    assert document["over_time"][0]["users"] == len(enabled) + 1  # the new leaver was still enabled
    roles = {r["role"]: r for r in document["roles"]}
    assert set(roles) == set(sample.role_profiles) | {"role-gone"}
    mine = roles[role]
    counts = [mine[k] for k in ("batches", "migrated", "rolled_back", "conflicts", "pending")]
    assert counts == [3, 1, 1, 1, 1]
    assert mine["state"] == "batch 3 running"
    given = sample.profiles[profile]
    assert mine["still_direct"] == sum(1 for u in enabled if role in u.roles and u.direct_grants & given)
    assert roles["role-gone"]["holders"] == 0 and roles["role-gone"]["state"] == "batch 4 applied"
    unused = sample.planted["unused_role"][0]
    assert roles[unused]["state"] == "not started" and roles[unused]["holders"] == 0


def test_progress_table_is_compact(org):
    take(org)
    result = org.run("report", "progress")
    assert result.code == 0, result.err
    over_time, roles = result.out.split("\n\n")
    assert over_time.splitlines()[0].split()[:3] == ["snapshot", "taken", "users"]
    assert len(over_time.splitlines()) == 3
    assert len(roles.splitlines()) == 2 + len(org.sample.role_profiles)
    assert "hold a role" in result.err
