"""Shared fixtures: a throwaway slapd and PostgreSQL server, started lazily once per session.

When a server cannot be started because its binaries are missing, tests that
need it are skipped, except under CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rbac_migrate.demo.sampleorg import generate
from rbac_migrate.demo.sandbox import NotInstalledError, Slapd, check_installed
from tests.support.ad import ad_org, ad_seed, samba_dc  # noqa: F401 - Samba AD fixtures
from tests.support.cli import Result, run, write_config
from tests.support.pgserver import PostgresNotInstalled, PostgresServer
from tests.support.skips import unavailable


def pytest_configure(config: pytest.Config) -> None:
    """Register markers so --strict-markers accepts them."""
    config.addinivalue_line("markers", "slow: longer end-to-end tests")


@pytest.fixture(scope="session")
def require_slapd() -> None:
    """Skip (or fail under CI) unless slapd and ldap-utils are installed."""
    try:
        check_installed()
    except NotInstalledError as exc:
        unavailable(str(exc))


@pytest.fixture
def slapd_factory(require_slapd: None) -> Iterator[Callable[..., Slapd]]:
    """Start private servers, ``slapd_factory(ldif=(), **Slapd_kwargs)``; all removed afterwards.

    For tests that stop, kill or reconfigure a server, which the shared
    ``slapd`` must not suffer.
    """
    servers: list[Slapd] = []

    def make(ldif: Sequence[Path | str] = (), **kwargs: Any) -> Slapd:
        server = Slapd(**kwargs)
        servers.append(server)
        return server.start(list(ldif))

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture(scope="session")
def slapd(request: pytest.FixtureRequest, require_slapd: None) -> Iterator[Slapd]:
    """One running slapd for the whole session, holding only the suffix entry.

    Tests must work below their own ``ldap_base``; the work directory is kept
    (and its path printed) when any test of the session failed.
    """
    server = Slapd().start()
    yield server
    if request.session.testsfailed:
        server.stop()
        print(f"\nslapd sandbox kept in {server.workdir} (log: {server.log_path})", file=sys.stderr)
    else:
        server.cleanup()


@pytest.fixture
def ldap_base(slapd: Slapd) -> Iterator[str]:
    """DN of an empty ``ou=t<random>`` below the suffix, deleted with its subtree afterwards."""
    if not slapd.is_running():
        # An earlier test crashed or stopped the shared server; bring it back.
        slapd.restart()
    with slapd.scratch_subtree() as dn:
        yield dn


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server per session (or the one in ``RBAC_MIGRATE_TEST_PG_URL``)."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresNotInstalled as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of an empty state store; tests using it run on both back ends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("pg_url"))


class Org:
    """A generated sample org loaded under a test's own subtree, with a config pointing at it."""

    def __init__(self, slapd: Slapd, base: str, tmp_path: Path, users: int, seed: int, store: str | None = None):
        self.slapd = slapd
        self.store_url = store or f"sqlite:///{tmp_path / 'state.db'}"
        self.sample = generate(users, seed=seed, base_dn=base)
        slapd.ldapadd("".join(self.sample.ldif_entries(include_base=False)))
        self.configure(tmp_path, self.sample.people_dn, self.sample.grant_base, self.sample.role_base)

    def configure(self, tmp_path: Path, user_base: str, grant_base: str, role_base: str) -> None:
        """Write the config file and environment that point the command line at this directory."""
        self.config = write_config(
            tmp_path / "rbac-migrate.yml",
            url=self.slapd.url,
            bind_dn=self.slapd.admin_dn,
            tls="none",
            user_base=user_base,
            grant_base=grant_base,
            role_base=role_base,
            store=self.store_url,
        )
        self.env = {
            "RBAC_MIGRATE_CONFIG": str(self.config),
            "RBAC_MIGRATE_BIND_PASSWORD": self.slapd.admin_password,
            "HOME": str(tmp_path),
        }

    def run(self, *args: str) -> Result:
        return run(list(args), self.env)


@pytest.fixture
def org(slapd: Slapd, ldap_base: str, tmp_path: Path) -> Org:
    """A 120-user sample org in the test's own subtree, with config and SQLite store."""
    return Org(slapd, ldap_base, tmp_path, users=120, seed=7)


@pytest.fixture
def org_on_store(slapd: Slapd, ldap_base: str, tmp_path: Path, store_url: str) -> Org:
    """The sample org, with its store on SQLite and on PostgreSQL in turn."""
    return Org(slapd, ldap_base, tmp_path, users=120, seed=7, store=store_url)
