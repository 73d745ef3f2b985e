"""TLS against a real slapd through the CLI: LDAPS, StartTLS, trust, host names and the bulk reader."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rbac_migrate.demo.sandbox import Slapd
from rbac_migrate.directory.libldap import Libldap
from rbac_migrate.directory.libldap import available as bulk_available
from tests.support.cli import Result, assert_one_line_error, run, write_config
from tests.support.skips import unavailable

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

Cli = Callable[..., Result]


def _directory_ldif() -> str:
    """A suffix, three users and two grant groups: enough for a snapshot to span pages."""
    people = "".join(
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\n"
        for uid in ("alice", "bob", "carol")
    )
    groups = "".join(
        f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\nmember: uid={uid},{PEOPLE}\n\n"
        for cn, uid in (("wiki-edit", "alice"), ("vpn", "bob"))
    )
    return (
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n"
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n{people}{groups}"
    )


@pytest.fixture
def tls_slapd(slapd_factory: Callable[..., Slapd], tmp_path: Path) -> Slapd:
    """A private server with StartTLS on its plain port and an LDAPS listener."""
    ldif = tmp_path / "directory.ldif"
    ldif.write_text(_directory_ldif(), encoding="utf-8")
    return slapd_factory([ldif], tls=True)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run a command with a fresh config file made of the base settings plus the given ones."""

    def invoke(*args: str, **settings: Any) -> Result:
        config = write_config(
            tmp_path / "rbac-migrate.yml",
            bind_dn=f"cn=admin,{SUFFIX}",
            user_base=PEOPLE,
            grant_base=GROUPS,
            role_base=SUFFIX,
            store=f"sqlite:///{tmp_path / 'state.db'}",
            **settings,
        )
        env = {"RBAC_MIGRATE_CONFIG": str(config), "RBAC_MIGRATE_BIND_PASSWORD": "secret", "HOME": str(tmp_path)}
        return run(list(args), env)

    return invoke


def assert_checked(result: Result, tls: str) -> None:
    """``check`` succeeded and reports the transport it used."""
    assert result.code == 0, result.err
    assert re.search(rf"^TLS\s+{tls}\s*$", result.out, re.MULTILINE), result.out


def test_ldaps_without_the_ca_is_not_trusted(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.ldaps_url, tls="ldaps")
    assert_one_line_error(result, "not trusted", "tls_ca_file")


def test_ldaps_with_the_ca_connects(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.ldaps_url, tls="ldaps", tls_ca_file=str(tls_slapd.ca_file))
    assert_checked(result, "ldaps")
    assert re.search(r"^users\s+3\s*$", result.out, re.MULTILINE), result.out


def test_starttls_with_the_ca_connects(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.url, tls="starttls", tls_ca_file=str(tls_slapd.ca_file))
    assert_checked(result, "starttls")


def test_starttls_without_the_ca_is_not_trusted(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.url, tls="starttls")
    assert_one_line_error(result, "not trusted", "tls_ca_file")


def test_auto_uses_ldaps_for_an_ldaps_url(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.ldaps_url, tls="auto", tls_ca_file=str(tls_slapd.ca_file))
    assert_checked(result, "ldaps")


def test_verification_can_be_turned_off_explicitly(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.ldaps_url, tls="ldaps", tls_verify=False)
    assert_checked(result, "ldaps")


def test_localhost_matches_the_certificate(tls_slapd: Slapd, cli: Cli) -> None:
    url = tls_slapd.ldaps_url.replace("127.0.0.1", "localhost")
    result = cli("check", url=url, tls="ldaps", tls_ca_file=str(tls_slapd.ca_file))
    assert_checked(result, "ldaps")


def test_certificate_for_another_host_is_refused(slapd_factory: Callable[..., Slapd], cli: Cli) -> None:
    server = slapd_factory(tls=True, tls_names=("ldap.invalid",))
    result = cli("check", url=server.ldaps_url, tls="ldaps", tls_ca_file=str(server.ca_file))
    # The CA is right, so the fix to name is the host in url, not tls_ca_file.
    line = assert_one_line_error(result, "certificate", "url")
    assert "cannot reach" not in line


def test_ldaps_to_the_plain_port_names_url_and_tls(tls_slapd: Slapd, cli: Cli) -> None:
    result = cli("check", url=tls_slapd.url, tls="ldaps", tls_ca_file=str(tls_slapd.ca_file))
    line = assert_one_line_error(result, "url", "tls")
    assert "cannot reach" not in line


def test_missing_ca_file_is_a_config_error(tls_slapd: Slapd, cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    result = cli("check", url=tls_slapd.ldaps_url, tls="ldaps", tls_ca_file=str(missing))
    assert_one_line_error(result, "tls_ca_file", str(missing))


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_bulk_reader_snapshot_over_tls(tls_slapd: Slapd, cli: Cli, tls: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not bulk_available():
        unavailable("the bulk reader needs python-ldap (pip install 'rbac-migrate[fast]')")
    # ldap3 would read the same entries, so make sure the pages really came through libldap.
    targets: list[str] = []
    search = Libldap.search

    def spy(self: Libldap, *args: Any, **kwargs: Any) -> Iterator[Any]:
        targets.append(self.target)
        yield from search(self, *args, **kwargs)

    monkeypatch.setattr(Libldap, "search", spy)
    url = tls_slapd.ldaps_url if tls == "ldaps" else tls_slapd.url
    # A page size below the entry count makes the bulk reader follow paging cookies over TLS.
    settings = {"tls": tls, "tls_ca_file": str(tls_slapd.ca_file), "bulk_reader": "python-ldap", "page_size": 2}
    result = cli("snapshot", "take", url=url, **settings)
    assert result.code == 0, result.err
    assert result.out.strip().isdigit(), result.out
    assert "3 users, 2 grant groups" in result.err, result.err
    assert targets and set(targets) == {url}, targets
