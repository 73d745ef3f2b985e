"""A throwaway PostgreSQL cluster for tests.

The cluster lives in a temporary directory, listens only on a Unix socket in
that directory, trusts every local connection and runs with ``fsync=off``.
Set ``RBAC_MIGRATE_TEST_PG_URL`` (a SQLAlchemy URL) to use an existing server
instead; each test database is then created and dropped on that server.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

ENV_URL = "RBAC_MIGRATE_TEST_PG_URL"
INSTALL_HINT = "PostgreSQL is not installed: run 'apt-get install postgresql' as root"
PG_ROOTS = ("/usr/lib/postgresql", "/usr/pgsql")
SERVICE_USER = "postgres"
START_TIMEOUT = 60


class PostgresError(Exception):
    """The throwaway PostgreSQL server could not be set up or used."""


class PostgresNotInstalled(PostgresError):
    """The PostgreSQL server binaries are missing."""


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for version directories such as ``15`` or ``9.6``."""
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_bindir() -> Path:
    """Return the bin directory of the newest installed PostgreSQL server."""
    candidates = [
        version / "bin"
        for root in PG_ROOTS
        if Path(root).is_dir()
        for version in Path(root).iterdir()
        if (version / "bin" / "initdb").is_file()
    ]
    if candidates:
        return max(candidates, key=lambda bindir: _version_key(bindir.parent))
    initdb = shutil.which("initdb")
    if initdb is None or shutil.which("pg_ctl") is None:
        raise PostgresNotInstalled(INSTALL_HINT)
    return Path(initdb).parent


def _free_port() -> int:
    """A port number nobody on 127.0.0.1 uses; it only names the socket file."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A private PostgreSQL cluster (or the server named by ``RBAC_MIGRATE_TEST_PG_URL``)."""

    def __init__(self) -> None:
        external = os.environ.get(ENV_URL)
        self.external = bool(external)
        self.bindir: Path | None = None
        self.workdir: Path | None = None
        self.port: int | None = None
        self._url: URL | None = make_url(external) if external else None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create and start the cluster; a no-op for an external server."""
        if self.external or self._url is not None:
            return self
        self.bindir = find_bindir()
        self.workdir = Path(tempfile.mkdtemp(prefix="rbac-pg-"))
        # The socket lives here, so the service user must be able to enter it.
        self.workdir.chmod(0o755)
        if self._as_service_user():
            account = pwd.getpwnam(SERVICE_USER)
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        self.port = _free_port()
        self._initdb()
        self._pg_ctl_start()
        self._url = URL.create(
            "postgresql+psycopg2",  # the driver the store opens any PostgreSQL URL with
            username=SERVICE_USER,
            database="postgres",
            query={"host": str(self.workdir), "port": str(self.port)},
        )
        return self

    def _as_service_user(self) -> bool:
        """initdb refuses to run as root, so root delegates to the postgres account."""
        if os.geteuid() != 0:
            return False
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise PostgresError(f"running as root but there is no '{SERVICE_USER}' user to run initdb as") from None
        return True

    def _command(self, tool: str, *args: str) -> list[str]:
        """Build argv for a server tool, switching user when running as root."""
        assert self.bindir is not None
        argv = [str(self.bindir / tool), *args]
        return ["runuser", "-u", SERVICE_USER, "--", *argv] if self._as_service_user() else argv

    def _run(self, argv: list[str], what: str) -> None:
        """Run a server tool, raising PostgresError with the tail of its output."""
        done = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT * 2, check=False)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise PostgresError(f"{what} failed (exit {done.returncode}): {tail}")

    def _initdb(self) -> None:
        """Create a cluster whose superuser is ``postgres``, trusting local connections."""
        assert self.workdir is not None
        args = ["-D", str(self.workdir / "data"), "-U", SERVICE_USER, "--auth=trust"]
        self._run(self._command("initdb", *args, "-E", "UTF8", "--locale=C", "--no-sync"), "initdb")

    def _pg_ctl_start(self) -> None:
        """Start the server on the private socket only, without durability."""
        assert self.workdir is not None
        options = (
            f"-c listen_addresses='' -k {self.workdir} -p {self.port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.workdir / "postgres.log")
        data = str(self.workdir / "data")
        argv = self._command("pg_ctl", "-D", data, "-l", log, "-o", options, "-t", str(START_TIMEOUT), "-w", "start")
        self._run(argv, "pg_ctl start")

    def stop(self) -> None:
        """Stop the cluster and delete its directory; a no-op for an external server."""
        if self.external or self.workdir is None:
            return
        if (self.workdir / "data" / "postmaster.pid").exists():
            argv = self._command("pg_ctl", "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop")
            self._run(argv, "pg_ctl stop")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
        self._url = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- databases -------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database (``postgres``), password included."""
        return self._admin_url().render_as_string(hide_password=False)

    def _admin_url(self) -> URL:
        """The parsed maintenance URL; raises if the server was not started."""
        if self._url is None:
            raise PostgresError("PostgresServer.start() has not been called")
        return self._url

    def _execute_autocommit(self, statement: str) -> None:
        """Run a statement that cannot run inside a transaction (CREATE/DROP DATABASE)."""
        engine = sa.create_engine(self._admin_url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(statement))
        finally:
            engine.dispose()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise PostgresError(f"unsafe database name {name!r}: use lower-case letters, digits and _")
        self._execute_autocommit(f'CREATE DATABASE "{name}"')
        return self._admin_url().set(database=name).render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        self._execute_autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
