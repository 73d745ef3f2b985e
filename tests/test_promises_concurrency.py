"""Promise 4, value-level changes only: a value someone adds between our read and our write survives.

The stranger is added by a second, independent connection at the last possible moment: right
before each modify the engine sends to a group its batch touches, after every read it made of that
group. A writer that read the member list and replaced the whole attribute would sweep it away.
"""

from __future__ import annotations

import json

import ldap3
import pytest

from tests.support.reader import DirectoryReader, normalise_dn
from tests.test_migration import candidates, plan_file


class StrangerAtTheLastMoment:
    """Wraps ldap3's modify: before the first modify of each watched group, someone else adds a member."""

    def __init__(self, org, monkeypatch, groups: set[str]):
        self.org, self.groups = org, groups
        self.stranger: str | None = None
        self.added: set[str] = set()
        real = ldap3.Connection.modify

        def modify(conn, dn, changes, *args, **kwargs):
            group = normalise_dn(dn)
            if self.stranger and group in self.groups and group not in self.added:
                self.added.add(group)
                org.slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\nadd: member\nmember: {self.stranger}\n\n")
            return real(conn, dn, changes, *args, **kwargs)

        monkeypatch.setattr(ldap3.Connection, "modify", modify)

    def arm(self, stranger: str) -> None:
        self.stranger, self.added = stranger, set()


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_member_added_between_read_and_write_survives_apply_and_rollback(org, tmp_path, monkeypatch, transactions):
    org.env["RBAC_MIGRATE_TRANSACTIONS"] = transactions
    assert org.run("snapshot", "take").code == 0
    user = candidates(org, 1)[0]
    plan = json.loads(open(plan_file(org, tmp_path, [user])).read())
    touched = {normalise_dn(e["group"]["dn"]) for u in plan["units"] for e in u["edits"]}
    reader = DirectoryReader.for_org(org)
    members = reader.members()
    held = {normalise_dn(v) for g in touched for v in members[g]}
    first, second = [u.dn for u in org.sample.users if normalise_dn(u.dn) not in held and u is not user][:2]
    injector = StrangerAtTheLastMoment(org, monkeypatch, touched)

    injector.arm(first)
    applied = org.run("migrate", "apply", str(tmp_path / "plan.json"), "--yes")
    assert applied.code == 0, applied.err
    assert injector.added == touched  # the stranger really came between our read and every write
    after_apply = reader.members()
    assert sorted(g for g in touched if first not in after_apply[g]) == [], f"{first} was swept away"

    injector.arm(second)
    rolled = org.run("rollback", "1", "--yes")
    assert rolled.code == 0, rolled.err
    assert injector.added == touched
    final = reader.members()
    for group in touched:
        assert final[group] == sorted({*members[group], first, second}), group
