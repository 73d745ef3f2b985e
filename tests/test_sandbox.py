"""The throwaway servers themselves: slapd features the product relies on, and PostgreSQL."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ldap3
import pytest
import sqlalchemy as sa

from rbac_migrate.demo.sandbox import INSTALL_HINT, NotInstalledError, SandboxError, Slapd

PAGED_RESULTS = "1.2.840.113556.1.4.319"
TRANSACTIONS = "1.3.6.1.1.21.1"
REFINT_WAIT = 5.0


def _anonymous(server: Slapd) -> ldap3.Connection:
    """An anonymous connection that reads the rootDSE."""
    return ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.DSA), auto_bind=True)


def _admin(server: Slapd) -> ldap3.Connection:
    """A connection bound as the sandbox's admin."""
    return ldap3.Connection(ldap3.Server(server.url), server.admin_dn, server.admin_password, auto_bind=True)


def _person(dn: str) -> str:
    """LDIF for a minimal inetOrgPerson named by its uid RDN."""
    uid = dn.split(",", 1)[0].split("=", 1)[1]
    return f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: pw-{uid}\n"


def _group(dn: str, *members: str) -> str:
    """LDIF for a groupOfNames."""
    cn = dn.split(",", 1)[0].split("=", 1)[1]
    return f"dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n" + "".join(f"member: {m}\n" for m in members)


def _suffix(dc: str, suffix: str) -> str:
    """LDIF for a dcObject suffix entry."""
    return f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: {dc}\no: from-ldif\n"


def _lower(values: object) -> set[str]:
    """DN values compared case-insensitively: dynlist returns normalised (lower-case) DNs."""
    return {str(value).lower() for value in values}  # type: ignore[attr-defined]


@pytest.fixture
def own_slapd(slapd_factory: Callable[..., Slapd]) -> Slapd:
    """A private server for tests that stop, kill or reconfigure it."""
    return slapd_factory()


def test_slapd_answers_anonymous_rootdse(slapd: Slapd) -> None:
    conn = _anonymous(slapd)
    try:
        assert slapd.is_running() and slapd.pid
        assert slapd.url == f"ldap://127.0.0.1:{slapd.port}"
        assert slapd.suffix in conn.server.info.naming_contexts
    finally:
        conn.unbind()


def test_rootdse_advertises_paged_results_and_transactions(slapd: Slapd) -> None:
    conn = _anonymous(slapd)
    try:
        controls = {oid for oid, *_ in conn.server.info.supported_controls}
        extensions = {oid for oid, *_ in conn.server.info.supported_extensions}
    finally:
        conn.unbind()
    assert PAGED_RESULTS in controls
    assert TRANSACTIONS in extensions


def test_nested_memberof_via_dynlist(slapd: Slapd, ldap_base: str) -> None:
    user, group_a, group_b = f"uid=u1,{ldap_base}", f"cn=A,{ldap_base}", f"cn=B,{ldap_base}"
    slapd.ldapadd("\n".join([_person(user), _group(group_a, user), _group(group_b, group_a)]))
    conn = _admin(slapd)
    try:
        conn.search(user, "(objectClass=*)", ldap3.BASE, attributes=["memberOf"])
        member_of = conn.entries[0].entry_attributes_as_dict["memberOf"]
        conn.search(ldap_base, f"(memberOf={group_b})", attributes=["1.1"])
        nested = {entry.entry_dn.lower() for entry in conn.entries}
    finally:
        conn.unbind()
    assert _lower(member_of) == {group_a.lower(), group_b.lower()}
    assert nested == {user.lower(), group_a.lower()}


def test_refint_drops_deleted_user_from_groups(slapd: Slapd, ldap_base: str) -> None:
    # A groupOfNames must keep one member, so refint cannot remove the last one; keep a second.
    gone, stays, group = f"uid=gone,{ldap_base}", f"uid=stays,{ldap_base}", f"cn=G,{ldap_base}"
    slapd.ldapadd("\n".join([_person(gone), _person(stays), _group(group, gone, stays)]))
    slapd.ldapdelete(gone)
    deadline = time.monotonic() + REFINT_WAIT
    while "uid=gone" in slapd.ldapsearch(group, "(objectClass=*)", "member", scope="base"):
        assert time.monotonic() < deadline, "refint did not remove the deleted member"
        time.sleep(0.05)
    assert "uid=stays" in slapd.ldapsearch(group, "(objectClass=*)", "member", scope="base")


@pytest.mark.usefixtures("require_slapd")
def test_regular_user_reads_past_default_size_limit(tmp_path: Path) -> None:
    count = 700  # above slapd's default size limit of 500
    ldif = tmp_path / "people.ldif"
    suffix = "dc=bulk,dc=test"
    people = [_person(f"uid=p{i},{suffix}") for i in range(count)]
    ldif.write_text("\n".join([_suffix("bulk", suffix), *people]))
    with Slapd(suffix=suffix).start([ldif]) as server:
        conn = ldap3.Connection(ldap3.Server(server.url), f"uid=p0,{suffix}", "pw-p0", auto_bind=True)
        try:
            conn.search(suffix, "(objectClass=inetOrgPerson)", attributes=["uid"])
            plain = len(conn.entries)
            paged = conn.extend.standard.paged_search(suffix, "(uid=*)", attributes=["uid"], paged_size=100)
            paged_count = sum(1 for _ in paged)
        finally:
            conn.unbind()
    assert plain == count
    assert paged_count == count


@pytest.mark.usefixtures("require_slapd")
def test_start_loads_ldif_instead_of_suffix_entry(tmp_path: Path) -> None:
    suffix = "dc=loaded,dc=test"
    ldif = tmp_path / "data.ldif"
    ldif.write_text("\n".join([_suffix("loaded", suffix), _person(f"uid=a,{suffix}")]))
    with Slapd(suffix=suffix).start([ldif]) as server:
        assert server.exists(f"uid=a,{suffix}")
        assert "o: from-ldif" in server.ldapsearch(suffix, "(objectClass=*)", "o", scope="base")


def test_kill_then_restart_keeps_data_and_url(own_slapd: Slapd) -> None:
    dn = f"uid=survivor,{own_slapd.suffix}"
    own_slapd.ldapadd(_person(dn))
    url, pid = own_slapd.url, own_slapd.pid
    own_slapd.kill()
    assert not own_slapd.is_running() and own_slapd.pid is None
    own_slapd.restart()
    assert own_slapd.is_running() and own_slapd.pid != pid
    assert own_slapd.url == url
    assert own_slapd.exists(dn)


def test_config_can_be_changed_at_runtime_over_ldapi(own_slapd: Slapd) -> None:
    change = "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\n"
    own_slapd.config_modify(change + "add: olcDbIndex\nolcDbIndex: mail eq\n")
    with pytest.raises(SandboxError, match="ldapmodify of cn=config failed"):
        own_slapd.config_modify(change + "replace: olcSizeLimit\nolcSizeLimit: bogus\n")


@pytest.mark.usefixtures("require_slapd")
def test_context_manager_removes_workdir() -> None:
    with Slapd() as server:
        workdir = server.workdir
        assert (workdir / "slapd.d").is_dir()
    assert not workdir.exists()
    assert not server.is_running()


@pytest.mark.usefixtures("require_slapd")
def test_context_manager_keeps_workdir_when_an_exception_propagates(capsys: pytest.CaptureFixture[str]) -> None:
    server = Slapd()
    with pytest.raises(RuntimeError), server:
        raise RuntimeError("boom")
    try:
        assert not server.is_running()
        assert (server.workdir / "slapd.d").is_dir()
        assert str(server.workdir) in capsys.readouterr().err
    finally:
        server.cleanup()


def test_missing_binaries_give_the_install_hint(tmp_path: Path) -> None:
    server = Slapd(bindir=tmp_path)
    with pytest.raises(NotInstalledError) as caught:
        server.start()
    message = str(caught.value)
    assert message.startswith(INSTALL_HINT)
    assert "apt-get install slapd ldap-utils" in message
    assert "\n" not in message
    assert not server.workdir.exists()


@pytest.mark.usefixtures("require_slapd")
def test_start_failure_reports_the_log_tail() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = Slapd(port=busy.getsockname()[1])
        try:
            with pytest.raises(SandboxError, match="Address already in use"):
                server.start()
        finally:
            server.cleanup()


def test_ldapadd_failure_raises_with_server_message(slapd: Slapd, ldap_base: str) -> None:
    with pytest.raises(SandboxError, match="no structural object class"):
        slapd.ldapadd(f"dn: cn=broken,{ldap_base}\nobjectClass: top\ncn: broken\n")


@pytest.fixture
def removed_after(slapd: Slapd) -> Iterator[list[str]]:
    """Collect DNs that must be gone once the fixtures set up after this one are torn down."""
    dns: list[str] = []
    yield dns
    leftovers = [dn for dn in dns if slapd.exists(dn)]
    assert not leftovers, f"still present after the test: {leftovers}"


def test_ldap_base_is_empty_and_removed_after(removed_after: list[str], ldap_base: str, slapd: Slapd) -> None:
    removed_after.append(ldap_base)
    subtree = slapd.ldapsearch(ldap_base, "(objectClass=*)", "1.1")
    assert subtree.split() == ["dn:", ldap_base]
    slapd.ldapadd(_person(f"uid=leftover,{ldap_base}"))


def test_postgres_accepts_sqlalchemy_connection(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            assert conn.execute(sa.text("select current_database()")).scalar_one() == sa.make_url(pg_url).database
    finally:
        engine.dispose()


def test_store_url_is_an_empty_database(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()
