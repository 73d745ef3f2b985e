"""Throwaway Samba Active Directory domain controllers for tests and demos.

A :class:`SambaDC` provisions a new domain into a work directory with
``samba-tool domain provision`` and runs ``samba`` in the foreground, in a
session of its own, with only the LDAP service.  Samba's LDAP ports are fixed
(389, 636, 3268, 3269), so each instance gets a loopback address of its own
(127.0.0.2, 127.0.0.3, ...); Linux answers on the whole of 127/8 without any
interface configuration.  Provisioning and running a DC needs root.

Like :mod:`rbac_migrate.demo.sandbox` this module only uses the standard library;
the admin helpers (:meth:`SambaDC.ldapsearch` and friends) run the
``ldap-utils`` binaries.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rbac_migrate.demo.sandbox import (
    LdapUtilsMixin,
    NotInstalledError,
    SandboxError,
    ServerLifecycle,
    _one_line,
    find_binary,
)

if TYPE_CHECKING:
    from typing import Self

__all__ = ["NeedsRootError", "SambaDC", "check_can_run"]

INSTALL_HINT = "Samba AD DC is not installed: run 'apt-get install samba-ad-dc samba-ad-provision' as root"
LDAP_UTILS_HINT = "ldapsearch is not installed: run 'apt-get install ldap-utils' as root"
# samba-ad-provision holds the schema; without it samba-tool exists but cannot provision.
SCHEMA_DIR = Path("/usr/share/samba/setup/ad-schema")
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
LDAP_PORTS = (389, 636, 3268, 3269)
ADDRESSES = tuple(f"127.0.0.{n}" for n in range(2, 255))
# Satisfies AD's default password complexity rules; the domain is thrown away.
DEFAULT_PASSWORD = "Sandbox-Admin-1"
HOST_NAME = "RBACDC"
PROVISION_TIMEOUT = 180.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 5
_LOG_HEADER = re.compile(r"^\[\d{4}/\d\d/\d\d [\d:.]+, +\d+\]")
# An anonymous LDAPv3 simple bind, message id 1: the cheapest request every DC answers.
_ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")

_RUNNING: set[SambaDC] = set()


class NeedsRootError(SandboxError):
    """This process is not root, which Samba needs; callers may want to skip rather than fail."""


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])


def _samba_binary(name: str) -> str:
    found = shutil.which(name, path=_sbin_path())
    if found is None:
        raise NotInstalledError(f"{INSTALL_HINT} ({name} not found)")
    return found


def check_can_run() -> None:
    """Raise :class:`NotInstalledError` or :class:`NeedsRootError` unless a DC can be provisioned here."""
    for name in ("samba-tool", "samba"):
        _samba_binary(name)
    if not SCHEMA_DIR.is_dir():
        raise NotInstalledError(f"{INSTALL_HINT} ({SCHEMA_DIR} not found)")
    if os.geteuid() != 0:
        raise NeedsRootError("a throwaway Samba AD DC needs root: samba-tool and samba refuse to run otherwise")


def _answers_ldap(address: str, timeout: float = 1.0) -> bool:
    """Tell whether an LDAP server on address:389 answers an anonymous bind with success."""
    try:
        with socket.create_connection((address, 389), timeout=timeout) as sock:
            sock.sendall(_ANONYMOUS_BIND)
            reply = sock.recv(64)
    except OSError:
        return False
    # BindResponse: SEQUENCE, message id 1, [APPLICATION 1] {resultCode ENUMERATED ...}.
    marker = reply.find(b"\x61")
    return marker > 0 and reply[marker + 2 : marker + 5] == b"\x0a\x01\x00"


def _port_taken(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def _with_global_options(conf: str, options: dict[str, str]) -> str:
    """smb.conf text with ``options`` set in [global], replacing any earlier value of each."""
    keys = {key.lower() for key in options}
    kept = [line for line in conf.splitlines() if line.split("=", 1)[0].strip().lower() not in keys]
    at = next(i for i, line in enumerate(kept) if line.strip().lower() == "[global]") + 1
    kept[at:at] = [f"\t{key} = {value}" for key, value in options.items()]
    return "\n".join(kept) + "\n"


def _stop_all_at_exit() -> None:
    """Kill domain controllers a crashed or careless caller left running."""
    for server in list(_RUNNING):
        server.kill()


atexit.register(_stop_all_at_exit)


class SambaDC(ServerLifecycle, LdapUtilsMixin):
    """A throwaway Samba AD domain controller running as a child of this process.

    Use it as a context manager, or call :meth:`start` and :meth:`cleanup`.
    The work directory is removed on exit from the ``with`` block unless
    ``keep`` is true or an exception is propagating; one passed in by the
    caller is left alone.  :attr:`url` takes simple binds in clear text;
    :attr:`ldaps_url` presents a certificate signed by :attr:`ca_file` that
    names the host ``HOST_NAME.realm`` and no IP address.
    """

    NAME = "samba"

    def __init__(
        self,
        realm: str = "RBAC.TEST",
        admin_password: str = DEFAULT_PASSWORD,
        workdir: Path | str | None = None,
        *,
        keep: bool = False,
    ) -> None:
        self.realm = realm.upper()
        self.domain = self.realm.split(".")[0]
        self.base_dn = ",".join(f"DC={part}" for part in self.realm.lower().split("."))
        self.admin_dn = f"CN=Administrator,CN=Users,{self.base_dn}"
        self.admin_password = admin_password
        self.keep = keep
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="rbac-samba-"))
        self.address: str | None = None
        self._address_lock: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths and URLs -------------------------------------------------

    @property
    def url(self) -> str:
        """LDAP URL of the plain listener (simple binds allowed in clear text)."""
        return f"ldap://{self._bound_address()}"

    @property
    def ldaps_url(self) -> str:
        """LDAP URL of the LDAPS listener."""
        return f"ldaps://{self._bound_address()}"

    @property
    def tls_name(self) -> str:
        """The host name Samba's generated certificate is issued for."""
        return f"{HOST_NAME}.{self.realm}".lower()

    @property
    def ca_file(self) -> Path:
        """The CA certificate Samba generated on first start (PEM)."""
        return self.workdir / "private" / "tls" / "ca.pem"

    @property
    def smb_conf(self) -> Path:
        return self.workdir / "etc" / "smb.conf"

    @property
    def log_path(self) -> Path:
        """Samba's own log file."""
        return self.workdir / "log" / "samba.log"

    @property
    def console_path(self) -> Path:
        """Where samba's stdout and stderr go (start-up failures land here)."""
        return self.workdir / "samba.out"

    @property
    def pid(self) -> int | None:
        """Process id of the running samba (also its process group), or None."""
        return self._proc.pid if self.is_running() and self._proc else None

    def _bound_address(self) -> str:
        if self.address is None:
            raise SandboxError("this domain controller has not been started, so it has no address yet")
        return self.address

    # -- set-up -------------------------------------------------------------

    def _claim_address(self) -> None:
        """Take the first loopback address no other sandbox holds and nothing answers on.

        A lock file per address keeps concurrent test sessions on one machine apart even in
        the moment between looking and binding.
        """
        if self.address is not None:
            return
        for address in ADDRESSES:
            lock = open(Path(tempfile.gettempdir()) / f"rbac-migrate-samba-{address}.lock", "wb")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            if any(_port_taken(address, port) for port in LDAP_PORTS):
                lock.close()
                continue
            self.address, self._address_lock = address, lock
            return
        raise SandboxError("no free loopback address for a Samba DC: 127.0.0.2 to 127.0.0.254 are all in use")

    def _release_address(self) -> None:
        if self._address_lock is not None:
            self._address_lock.close()
        self.address, self._address_lock = None, None

    def _provision(self) -> None:
        """Create a new domain in the work directory (a few seconds)."""
        argv = [
            _samba_binary("samba-tool"),
            "domain",
            "provision",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
            f"--realm={self.realm}",
            f"--domain={self.domain}",
            f"--host-name={HOST_NAME}",
            f"--adminpass={self.admin_password}",
            f"--targetdir={self.workdir}",
            f"--option=netbios name={HOST_NAME}",
            # The /8 matters: Samba only accepts an address inside a network it can see on an interface.
            f"--option=interfaces={self._bound_address()}/8",
            "--option=bind interfaces only=yes",
        ]
        self._run(argv, "samba-tool domain provision", timeout=PROVISION_TIMEOUT)

    def _configure(self) -> None:
        """Point the DC at its address, its own directories and the LDAP service only."""
        for name in ("log", "run"):
            (self.workdir / name).mkdir(exist_ok=True)
        options = {
            "interfaces": f"{self._bound_address()}/8",
            "bind interfaces only": "yes",
            "server services": "ldap",
            # Provision leaves this out; simple binds without TLS are what the tests use.
            "ldap server require strong auth": "no",
            "log file": str(self.log_path),
            "pid directory": str(self.workdir / "run"),
            "ncalrpc dir": str(self.workdir / "run" / "ncalrpc"),
        }
        self.smb_conf.write_text(_with_global_options(self.smb_conf.read_text(encoding="utf-8"), options))

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Provision (first time only) and run the DC until its LDAP port answers."""
        if self.is_running():
            raise SandboxError(f"samba is already running (pid {self.pid})")
        try:
            check_can_run()
        except SandboxError:
            self._remove_empty_workdir()
            raise
        self._claim_address()
        if not self.smb_conf.exists():
            self._provision()
        self._configure()
        self._launch()
        return self

    def _launch(self) -> None:
        argv = [_samba_binary("samba"), "--foreground", "--no-process-group", "-s", str(self.smb_conf)]
        with open(self.console_path, "ab") as console:
            # A session of its own, so one signal to the group reaches every worker it forks.
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True
            )
        _RUNNING.add(self)
        self._wait_ready()

    def _wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll until LDAP answers, failing fast if samba died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                code = self._proc.returncode if self._proc else None
                self._forget()
                raise SandboxError(f"samba exited with status {code} during start-up: {self.log_tail()}")
            if _answers_ldap(self._bound_address()):
                return
            time.sleep(0.1)
        self.kill()
        raise SandboxError(f"samba did not answer on {self.url} within {timeout:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last messages of samba's console and log, on one line."""
        kept: list[str] = []
        for path in (self.console_path, self.log_path):
            with contextlib.suppress(OSError):
                text = path.read_text(encoding="utf-8", errors="replace")
                kept += [line for line in text.splitlines() if line.strip() and not _LOG_HEADER.match(line)]
        return _one_line("\n".join(kept[-lines:])) or "(empty log)"

    def is_running(self) -> bool:
        """Tell whether the samba process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _signal_group(self, signum: int) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut down with SIGTERM, escalating to SIGKILL after ``timeout``; the address stays ours."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        # Workers that outlive their parent would keep the ports bound.
        self._signal_group(signal.SIGKILL)
        self._forget()

    def kill(self) -> None:
        """Kill samba and its workers with SIGKILL, as a crash would."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._proc.wait()
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        _RUNNING.discard(self)

    def cleanup(self) -> None:
        """Stop the DC, give up its address and delete the work directory if it was created here."""
        self.stop()
        self._release_address()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_kept(self) -> None:
        self.stop()
        self._release_address()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<SambaDC {self.address or 'no address'} {self.realm} {state} in {self.workdir}>"

    # -- ldap-utils helpers (the rest come from LdapUtilsMixin) ---------------

    def _binary(self, name: str) -> str:
        """Locate an ldap-utils binary; the Samba ones are found by :func:`_samba_binary`."""
        try:
            return find_binary(name)
        except NotInstalledError:
            raise NotInstalledError(LDAP_UTILS_HINT) from None
