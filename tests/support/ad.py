"""Active Directory fixtures: one throwaway Samba DC per session, the sample org created in it once.

Creating AD entries costs milliseconds each and deleting them far more, so the org is loaded
once and every test that changes the directory gets it put back afterwards (``ad_org``): member
values are diffed and restored value by value, re-created accounts replaced by the originals.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from rbac_migrate.demo.sampleorg import SampleGroup, SampleOrg, SampleUser, generate
from rbac_migrate.demo.sandbox import NotInstalledError
from tests.support.cli import Result, run, write_config
from tests.support.samba import NeedsRootError, SambaDC
from tests.support.skips import unavailable

USERS, SEED = 120, 7  # the OpenLDAP org fixture's, so the shared safety tests find the same people
NORMAL_ACCOUNT, DISABLED_ACCOUNT = "512", "514"
FSP_CONTAINER = "CN=ForeignSecurityPrincipals"
EXTENDED_DN = "1.2.840.113556.1.4.529"  # DNs come back as <GUID=...>;<SID=...>;DN
AS_TEXT = b"\x30\x03\x02\x01\x01"  # ExtendedDnFlag 1: GUID and SID as strings, not hex
MEMBER_ATTRIBUTE_GUID = "bf9679c0-0de6-11d0-a285-00aa003049e2"  # schemaIDGUID of member
GROUP_CLASS_GUID = "bf967a9c-0de6-11d0-a285-00aa003049e2"  # schemaIDGUID of the group class
# Member values naming no account here become SIDs of a domain this DC does not know.
UNKNOWN_DOMAIN_SID = "S-1-5-21-1000000001-2000000002-3000000003"


def ad_dn(dn: str) -> str:
    """The DN as Samba spells it: upper-case attribute types; users are named by CN in AD."""
    rdns = []
    for rdn in dn.split(","):
        kind, value = rdn.split("=", 1)
        rdns.append(f"{'CN' if kind.lower() == 'uid' else kind.upper()}={value}")
    return ",".join(rdns)


def to_ad(sample: SampleOrg, domain_dn: str) -> tuple[SampleOrg, dict[str, str]]:
    """The sample org with AD DNs, and what to write for each member value that names no entry.

    Samba refuses member values that point nowhere, so each such value becomes a SID of an unknown
    domain; Samba stores it as a foreign-security-principal, which is how AD shows such members.
    """
    known = {u.dn for u in sample.users} | {g.dn for g in sample.groups}
    unknown = sorted({m for g in sample.groups for m in g.members if m not in known})
    sids = {dn: f"{UNKNOWN_DOMAIN_SID}-{1000 + i}" for i, dn in enumerate(unknown)}
    fsp = {dn: f"CN={sid},{FSP_CONTAINER},{domain_dn}" for dn, sid in sids.items()}

    def convert(dn: str) -> str:
        return fsp.get(dn) or ad_dn(dn)

    users = [dataclasses.replace(u, dn=convert(u.dn)) for u in sample.users]
    groups = [dataclasses.replace(g, dn=convert(g.dn), members=tuple(map(convert, g.members))) for g in sample.groups]
    planted = dict(sample.planted, dangling=[(cn, convert(dn)) for cn, dn in sample.planted["dangling"]])
    ad = dataclasses.replace(
        sample,
        base_dn=convert(sample.base_dn),
        people_dn=convert(sample.people_dn),
        grant_base=convert(sample.grant_base),
        role_base=convert(sample.role_base),
        users=users,
        groups=groups,
        planted=planted,
    )
    return ad, {fsp[dn]: f"<SID={sid}>" for dn, sid in sids.items()}


def admin_connection(dc: SambaDC) -> ldap3.Connection:
    server = ldap3.Server(dc.address, get_info=ldap3.NONE, connect_timeout=10)
    return ldap3.Connection(
        server, dc.admin_dn, dc.admin_password, auto_bind=True, raise_exceptions=True, receive_timeout=60
    )


def user_attributes(user: SampleUser) -> dict[str, str]:
    return {
        "sAMAccountName": user.uid,
        "givenName": user.given_name,
        "sn": user.sn,
        "displayName": user.cn,
        "mail": user.mail,
        "employeeNumber": user.employee_number,
        "department": user.department,
        "title": user.title,
        "userAccountControl": DISABLED_ACCOUNT if user.leaver else NORMAL_ACCOUNT,
    }


def group_attributes(group: SampleGroup) -> dict[str, str]:
    return {"sAMAccountName": group.cn, "description": group.description}


def ldaps_connection(dc: SambaDC, user: str, password: str) -> ldap3.Connection:
    """LDAPS, verified against the DC's own CA; its certificate names the host, not the address."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file), valid_names=[dc.tls_name])
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE, connect_timeout=10)
    return ldap3.Connection(server, user, password, auto_bind=True, raise_exceptions=True, receive_timeout=60)


def extended_dn(conn: ldap3.Connection, dn: str) -> tuple[str, str]:
    """(objectGUID, objectSid) of an entry as Samba itself spells them."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["1.1"], controls=[(EXTENDED_DN, False, AS_TEXT)])
    guid, sid, _dn = conn.response[0]["dn"].split(";", 2)
    return guid.removeprefix("<GUID=").removesuffix(">"), sid.removeprefix("<SID=").removesuffix(">")


def service_account(dc: SambaDC, name: str, password: str) -> tuple[str, str]:
    """A plain domain user under CN=Users: (DN, SID). Passwords can only be set over an encrypted connection."""
    dn = f"CN={name},CN=Users,{dc.base_dn}"
    with ldaps_connection(dc, dc.admin_dn, dc.admin_password) as conn:
        quoted = f'"{password}"'.encode("utf-16-le")
        conn.add(dn, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": name, "unicodePwd": quoted})
        conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [NORMAL_ACCOUNT])]})
        return dn, extended_dn(conn, dn)[1]


def delegate_member_writes(dc: SambaDC, ou_dn: str, sid: str) -> None:
    """Let sid read and write ``member`` of every group below ou_dn, and nothing else."""
    set_ace(dc, ou_dn, f"(OA;CIIO;RPWP;{MEMBER_ATTRIBUTE_GUID};{GROUP_CLASS_GUID};{sid})")


def set_ace(dc: SambaDC, object_dn: str, ace: str, action: str = "allow") -> None:
    """Add one access control entry (SDDL) to an object's security descriptor."""
    samba_tool = shutil.which("samba-tool", path=f"{os.environ.get('PATH', '')}:/usr/bin") or "samba-tool"
    # Straight into the DC's database: samba-tool over LDAP would want Kerberos or NTLM.
    argv = [samba_tool, "dsacl", "set", "-H", str(dc.workdir / "private" / "sam.ldb")]
    subprocess.run(argv + ["--objectdn", object_dn, "--action", action, "--sddl", ace], check=True, capture_output=True)


class AdSeed:
    """The sample org created in the DC, and the objectGUID each account got."""

    def __init__(self, dc: SambaDC, users: int = USERS, seed: int = SEED):
        self.dc = dc
        self.generated = generate(users, seed=seed, base_dn=f"ou=org,{dc.base_dn}")
        self.sample, self.member_values = to_ad(self.generated, dc.base_dn)
        self.guids: dict[str, bytes] = {}
        with self.connection() as conn:
            self._create(conn)

    def connection(self) -> ldap3.Connection:
        return admin_connection(self.dc)

    def _create(self, conn: ldap3.Connection) -> None:
        sample = self.sample
        for dn in (sample.base_dn, sample.people_dn, sample.groups_dn, sample.grant_base, sample.role_base):
            conn.add(dn, ["top", "organizationalUnit"])
        for user in sample.users:
            conn.add(user.dn, ["top", "person", "organizationalPerson", "user"], user_attributes(user))
        self.guids = {dn: attrs["objectGUID"][0] for dn, attrs in self._found(conn, "user", "objectGUID").items()}
        # Groups nest, so every group exists before any gets members.
        for group in sample.groups:
            conn.add(group.dn, ["top", "group"], group_attributes(group))
        for group in sample.groups:
            if group.members:
                values = [self.member_values.get(m, m) for m in group.members]
                conn.modify(group.dn, {"member": [(ldap3.MODIFY_ADD, values)]})

    def _add_user(self, conn: ldap3.Connection, user: SampleUser) -> None:
        conn.add(user.dn, ["top", "person", "organizationalPerson", "user"], user_attributes(user))
        conn.search(user.dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
        self.guids[user.dn.lower()] = conn.response[0]["raw_attributes"]["objectGUID"][0]

    def restore(self) -> None:
        """Put users and group members back as seeded, touching only what differs."""
        with self.connection() as conn:
            self._restore_users(conn)
            self._restore_groups(conn)

    def _found(self, conn: ldap3.Connection, object_class: str, *attributes: str) -> dict[str, dict]:
        entries = conn.extend.standard.paged_search(
            self.sample.base_dn, f"(objectClass={object_class})", attributes=list(attributes), generator=False
        )
        return {e["dn"].lower(): e["raw_attributes"] for e in entries if e.get("type") == "searchResEntry"}

    def _restore_users(self, conn: ldap3.Connection) -> None:
        found = self._found(conn, "user", "objectGUID")
        expected = {u.dn.lower(): u for u in self.sample.users}
        for dn, attrs in found.items():
            if dn not in expected or attrs["objectGUID"][0] != self.guids[dn]:
                conn.delete(dn)
        for dn, user in expected.items():
            if dn not in found or found[dn]["objectGUID"][0] != self.guids[dn]:
                self._add_user(conn, user)

    def _restore_groups(self, conn: ldap3.Connection) -> None:
        found = self._found(conn, "group", "member")
        expected = {g.dn.lower(): g for g in self.sample.groups}
        for dn in found.keys() - expected.keys():
            conn.delete(dn)
        for dn, group in expected.items():
            if dn not in found:
                conn.add(group.dn, ["top", "group"], group_attributes(group))
            now = {v.decode().lower() for v in found.get(dn, {}).get("member", [])}
            want = {m.lower(): self.member_values.get(m, m) for m in group.members}
            changes = [(ldap3.MODIFY_DELETE, [v]) for v in now - want.keys()]
            changes += [(ldap3.MODIFY_ADD, [want[v]]) for v in want.keys() - now]
            if changes:
                conn.modify(group.dn, {"member": changes})


class AdOrg:
    """The seeded org with a fresh config and store, shaped like tests/conftest.py's ``Org``.

    ``slapd`` is the attribute the shared safety tests reach the server's admin tools through;
    here it is the Samba DC, whose helpers take the same arguments.
    """

    def __init__(self, seed: AdSeed, tmp_path: Path, bind: tuple[str, str] | None = None):
        bind_dn, password = bind or (seed.dc.admin_dn, seed.dc.admin_password)
        self.slapd = seed.dc
        self.sample = seed.sample
        self.generated = seed.generated
        self.store_url = f"sqlite:///{tmp_path / 'state.db'}"
        self.config = write_config(
            tmp_path / "rbac-migrate.yml",
            url=seed.dc.url,
            flavour="ad",
            bind_dn=bind_dn,
            tls="none",
            user_base=self.sample.people_dn,
            grant_base=self.sample.grant_base,
            role_base=self.sample.role_base,
            peer_attributes=["department", "title"],
            store=self.store_url,
        )
        self.env = {
            "RBAC_MIGRATE_CONFIG": str(self.config),
            "RBAC_MIGRATE_BIND_PASSWORD": password,
            "HOME": str(tmp_path),
        }

    def run(self, *args: str) -> Result:
        return run(list(args), self.env)

    def effective_grants(self, uid: str) -> frozenset[str]:
        """The generator's answer, which builds group DNs in its own spelling rather than Samba's."""
        return self.generated.effective_grants(uid)


@pytest.fixture(scope="session")
def samba_dc(request: pytest.FixtureRequest) -> Iterator[SambaDC]:
    """One Samba AD DC for the whole session; kept (path printed) when any test failed."""
    dc = SambaDC()
    try:
        dc.start()
    except (NotInstalledError, NeedsRootError) as exc:
        dc.cleanup()
        unavailable(str(exc))
    yield dc
    if request.session.testsfailed:
        dc.stop()
        print(f"\nsamba sandbox kept in {dc.workdir} (log: {dc.log_path})", file=sys.stderr)
    else:
        dc.cleanup()


@pytest.fixture(scope="session")
def ad_seed(samba_dc: SambaDC) -> AdSeed:
    """The 120-user sample org, created in the DC once per session."""
    return AdSeed(samba_dc)


@pytest.fixture
def ad_org(ad_seed: AdSeed, tmp_path: Path) -> Iterator[AdOrg]:
    """The seeded org with its own config and SQLite store; the directory is put back afterwards."""
    if not ad_seed.dc.is_running():
        ad_seed.dc.start()  # an earlier test stopped or killed the shared DC
    yield AdOrg(ad_seed, tmp_path)
    if not ad_seed.dc.is_running():
        ad_seed.dc.start()
    ad_seed.restore()
