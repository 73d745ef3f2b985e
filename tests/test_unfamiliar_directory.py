"""A directory laid out unlike the sample organisation: other bases, names that need escaping,
nested grants, a protected account named by an escaped DN, and every kind of write undone.

"What the directory holds" is read with ldapsearch here, not with rbac-migrate's own readers.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.support.cli import assert_one_line_error, run, write_config

PEOPLE = [  # (rdn value, uid, department, title)
    ("Pat O'Brien\\, Jr", "pobrien", "Ops", "Engineer"),
    ("Zoë Åström", "zastrom", "Ops", "Engineer"),
    ("Lee #1 \\+ Co", "llee", "Ops", "Engineer"),
    ("Sam Leaver", "sleaver", "Ops", "Engineer"),
]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _ldif(base: str) -> tuple[str, dict[str, str], str, str]:
    people = f"ou=staff,{base}"
    access = f"ou=access,{base}"
    rights = f"ou=rights,{access}"
    jobs = f"ou=jobs,{access}"
    entries = [
        f"dn: {ou}\nobjectClass: organizationalUnit\nou: {ou.split(',')[0][3:]}\n"
        for ou in (people, access, rights, jobs)
    ]
    users = {}
    for cn, uid, dept, title in PEOPLE:
        dn = f"cn={cn},{people}"
        users[uid] = dn
        sn = cn.split()[-1]
        leaver = "employeeType: leaver\n" if uid == "sleaver" else ""
        entries.append(
            f"dn:: {b64(dn)}\nobjectClass: inetOrgPerson\ncn:: {b64(cn.replace(chr(92), ''))}\nsn:: {b64(sn)}\n"
            f"uid: {uid}\ndepartmentNumber: {dept}\ntitle: {title}\n{leaver}"
        )

    def group(cn: str, parent: str, members: list[str]) -> str:
        lines = "".join(f"member:: {b64(m)}\n" if m else "member:\n" for m in members)
        return f"dn: cn={cn},{parent}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"

    entries.append(
        group("wiki-read", rights, [users["pobrien"], users["zastrom"], users["sleaver"], f"cn=wiki-edit,{rights}"])
    )
    entries.append(group("wiki-edit", rights, [users["pobrien"], users["zastrom"], users["llee"]]))
    entries.append(group("pager", rights, [users["pobrien"], users["zastrom"], users["llee"], users["sleaver"]]))
    entries.append(group("ops-engineer", jobs, [""]))
    return "\n".join(entries) + "\n", users, rights, jobs


def norm(dn: str) -> str:
    """One spelling of a DN for comparison: hex and backslash escapes decoded, lower case."""
    return re.sub(
        r"\\([0-9a-fA-F]{2}|.)", lambda m: chr(int(m.group(1), 16)) if len(m.group(1)) == 2 else m.group(1), dn
    ).lower()


def groups(slapd, base: str) -> dict[str, list[str]]:
    """Every group under base with its member values, decoded, read with ldapsearch."""
    found = {}
    for record in slapd.ldapsearch(base, "(objectClass=groupOfNames)", "member").split("\n\n"):
        lines = record.strip().splitlines()
        if not lines:
            continue
        dn = lines[0].split(":: ", 1)[1] if lines[0].startswith("dn:: ") else lines[0][4:]
        if lines[0].startswith("dn:: "):
            dn = base64.b64decode(dn).decode()
        values = []
        for line in lines[1:]:
            if line.startswith("member:: "):
                values.append(norm(base64.b64decode(line[9:]).decode()))
            elif line.startswith("member:"):
                values.append(norm(line[7:].strip()))
        found[norm(dn)] = sorted(values)
    return found


@pytest.fixture
def acme(slapd, ldap_base, tmp_path):
    text, users, rights, jobs = _ldif(ldap_base)
    slapd.ldapadd(text)
    config = write_config(
        tmp_path / "acme.yml",
        url=slapd.url,
        bind_dn=slapd.admin_dn,
        tls="none",
        user_base=f"ou=staff,{ldap_base}",
        grant_base=rights,
        role_base=jobs,
        store=f"sqlite:///{tmp_path / 'acme.db'}",
        protected_accounts=[users["llee"]],
    )
    env = {
        "RBAC_MIGRATE_CONFIG": str(config),
        "RBAC_MIGRATE_BIND_PASSWORD": slapd.admin_password,
        "HOME": str(tmp_path),
    }

    class Acme:
        base = ldap_base

        def __init__(self):
            self.users, self.rights, self.jobs, self.slapd = users, rights, jobs, slapd

        def run(self, *args):
            return run(list(args), env)

        def state(self):
            return groups(slapd, ldap_base)

    return Acme()


def test_every_write_on_an_unfamiliar_directory_is_checked_and_undone(acme, tmp_path):
    start = acme.state()
    assert acme.run("snapshot", "take").code == 0
    # The job role gets the two rights engineers share; wiki-read comes along through wiki-edit.
    assert acme.run("role", "add-grant", "ops-engineer", "wiki-edit,pager", "--yes").code == 0
    plan = tmp_path / "wave.json"
    made = acme.run("migrate", "plan", "--role", "ops-engineer", "--users", "pobrien,zastrom", "-o", str(plan))
    assert made.code == 0, made.err
    assert acme.run("apply", str(plan), "--yes").code == 0
    role = norm(f"cn=ops-engineer,{acme.jobs}")
    after = acme.state()
    assert {norm(acme.users["pobrien"]), norm(acme.users["zastrom"])} <= set(after[role])
    for right in ("wiki-edit", "pager", "wiki-read"):
        assert norm(acme.users["pobrien"]) not in after[norm(f"cn={right},{acme.rights}")]
    ldif = acme.run(
        "migrate", "plan", "--role", "ops-engineer", "--users", "pobrien", "--format", "ldif", "--no-refresh"
    )
    assert "Traceback" not in ldif.err
    # The protected account, named in the settings by a DN with an escaped plus and a '#', is never touched.
    refused = acme.run("joiner", "onboard", "llee", "--role", "ops-engineer", "--yes")
    assert_one_line_error(refused, "is a protected account")
    # The leaver's rights go in a remediation batch.
    leavers = tmp_path / "leavers.json"
    assert acme.run("remediate", "plan", "--category", "leaver-grant", "-o", str(leavers)).code == 0
    assert acme.run("apply", str(leavers), "--yes").code == 0
    assert not any(norm(acme.users["sleaver"]) in values for values in acme.state().values())
    batches = json.loads(acme.run("batches", "list", "--format", "json").out)
    assert [b["kind"] for b in batches] == ["role-add-grant", "migrate", "remediate"]
    undone = acme.run("rollback", "3", "2", "1", "--yes")
    assert undone.code == 0, undone.err
    assert acme.state() == start
    assert acme.run("audit", "verify").code == 0
