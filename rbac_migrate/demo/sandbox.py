"""Throwaway OpenLDAP servers for tests, benchmarks and the ``demo`` command.

A :class:`Slapd` builds a private ``cn=config`` and database in a work
directory with ``slapadd`` (offline, so nothing needs root or a running
server), then runs ``slapd`` in the foreground as a child process listening on
``127.0.0.1`` and on a private ``ldapi://`` socket.  With ``tls=True`` it also
gets a throwaway CA and server certificate (made with the ``openssl`` tool),
offers StartTLS on the plain port and listens for LDAPS on a second port.

The module only uses the standard library so the product can import it without
any LDAP client library installed; all LDAP traffic goes through the
``ldap-utils`` binaries.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    # Only needed for annotations, which are never evaluated, so 3.10 is fine.
    from typing import Self

__all__ = ["NotInstalledError", "SandboxError", "Slapd", "check_installed", "find_binary", "free_port"]

INSTALL_HINT = "slapd is not installed: run 'apt-get install slapd ldap-utils' as root"
OPENSSL_HINT = "openssl is not installed: run 'apt-get install openssl' as root"

# Debian/Ubuntu first, then the RHEL/SUSE/source-build layouts.
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap")
SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "dyngroup")
# /usr/sbin is often missing from an unprivileged user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/sbin")
BINARIES = ("slapd", "slapadd", "ldapsearch", "ldapmodify", "ldapdelete")

INDEXES = (
    "objectClass eq",
    "uid eq,pres",
    "cn eq",
    "member eq",
    "uniqueMember eq",
    "entryUUID eq",
    "entryCSN eq",
    "departmentNumber eq",
    "title eq",
    "employeeType eq",
)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
TOOL_TIMEOUT = 600.0
# sun_path is 108 bytes on Linux including the terminating NUL.
MAX_SOCKET_PATH = 100
LOG_TAIL_LINES = 5
# Names the server certificate is valid for, matching the listeners' address.
TLS_NAMES = ("127.0.0.1", "localhost")
# Long enough for a kept sandbox to be reused for a while, short enough to be obviously throwaway.
CERT_DAYS = 30
# P-256 keys are generated in milliseconds, unlike RSA, and both GnuTLS and OpenSSL clients accept them.
KEY_ARGS = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
_DNS_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
# slapd prefixes each line with a hex timestamp and thread id.
_LOG_PREFIX = re.compile(r"^[0-9a-f]+\.[0-9a-f]+ 0x[0-9a-f]+ ")

_RUNNING: set[Slapd] = set()


class SandboxError(Exception):
    """A throwaway server could not be built, started, queried or stopped."""


class NotInstalledError(SandboxError):
    """The server binaries are missing; callers may want to skip rather than fail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, bindir: Path | str | None = None) -> str:
    """Locate an OpenLDAP binary in ``bindir``, or PATH and the sbin directories."""
    search = str(bindir) if bindir is not None else os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    found = shutil.which(name, path=search)
    if found is None:
        raise NotInstalledError(f"{INSTALL_HINT} ({name} not found)")
    return found


def check_installed(bindir: Path | str | None = None) -> None:
    """Raise :class:`NotInstalledError` unless slapd and the ldap-utils binaries are present."""
    for name in BINARIES:
        find_binary(name, bindir)


def _one_line(text: str, limit: int = 500) -> str:
    """Squash tool output into a single line suitable for an error message."""
    flat = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _first_existing(candidates: tuple[str, ...], what: str) -> Path:
    """Return the first existing directory, or raise naming what was looked for."""
    for candidate in candidates:
        if Path(candidate).is_dir():
            return Path(candidate)
    raise NotInstalledError(f"no OpenLDAP {what} directory found ({', '.join(candidates)}); {INSTALL_HINT}")


def _suffix_entry(suffix: str) -> str:
    """Return LDIF for the suffix entry itself, chosen by its first RDN type."""
    attr, _, value = suffix.split(",", 1)[0].partition("=")
    attr = attr.strip().lower()
    value = value.strip()
    if attr == "dc":
        classes, extra = ("top", "dcObject", "organization"), f"dc: {value}\no: {value}\n"
    elif attr == "o":
        classes, extra = ("top", "organization"), f"o: {value}\n"
    elif attr == "ou":
        classes, extra = ("top", "organizationalUnit"), f"ou: {value}\n"
    else:
        raise SandboxError(f"cannot create a suffix entry for {suffix!r}: first RDN must be dc=, o= or ou=")
    lines = [f"dn: {suffix}"] + [f"objectClass: {oc}" for oc in classes]
    return "\n".join(lines) + "\n" + extra


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _alt_names(names: Sequence[str]) -> str:
    """A subjectAltName value, typing each name as an IP address or a DNS name."""
    parts = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            parts.append(f"DNS:{name}")
        else:
            parts.append(f"IP:{name}")
    return ", ".join(parts)


def _libldap_localhost_name() -> str | None:
    """The name libldap checks a certificate against when a client connects to ``localhost``.

    libldap (ldapsearch, python-ldap) substitutes this host's canonical name for
    ``localhost`` before matching the certificate, so a certificate naming only
    ``localhost`` is refused there although other TLS clients accept it.
    """
    try:
        name = socket.gethostbyname_ex(socket.gethostname())[0]
    except OSError:
        name = socket.gethostname()
    return name if _DNS_NAME.fullmatch(name) and name.lower() != "localhost" else None


def _certificate_names(names: Sequence[str]) -> list[str]:
    """The subjectAltName entries: ``names``, plus what libldap really checks for localhost."""
    result = list(names)
    local = _libldap_localhost_name() if "localhost" in (n.lower() for n in names) else None
    if local and local not in result:
        result.append(local)
    return result


def _openssl_config(names: Sequence[str]) -> str:
    """An openssl.cnf of our own, so the distribution's defaults cannot change the certificates.

    The extensions satisfy strict verifiers (Python 3.13's VERIFY_X509_STRICT among them),
    which reject certificates lacking key identifiers or a critical basicConstraints.
    """
    return f"""\
[req]
distinguished_name = dn
prompt = no

[dn]

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {_alt_names(_certificate_names(names))}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class LdapUtilsMixin:
    """Run tools, and the ldap-utils binaries bound as the administrator, against a throwaway server.

    Shared by :class:`Slapd` and :class:`rbac_migrate.samba.SambaDC`, so both offer the same
    helpers.  The host supplies :attr:`url`, ``admin_dn``, ``admin_password``, ``workdir``
    (where the password file goes) and :meth:`_binary`, which locates an ldap-utils binary.
    """

    admin_dn: str
    admin_password: str
    workdir: Path

    @property
    def url(self) -> str:
        """LDAP URL on which the administrator may make a simple bind."""
        raise NotImplementedError

    def _binary(self, name: str) -> str:
        """Locate a binary or raise :class:`NotInstalledError`."""
        raise NotImplementedError

    @staticmethod
    def _tool_env() -> dict[str, str]:
        """Environment that keeps ~/.ldaprc and /etc/ldap/ldap.conf out of the picture."""
        env = dict(os.environ)
        env["LDAPNOINIT"] = "1"
        return env

    def _run(self, argv: list[str], what: str, stdin: str | None = None, timeout: float = TOOL_TIMEOUT) -> str:
        """Run a tool, returning stdout, raising SandboxError with its stderr (or stdout if that is empty)."""
        try:
            done = subprocess.run(
                argv,
                input=stdin.encode() if stdin is not None else None,
                capture_output=True,
                timeout=timeout,
                env=self._tool_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(f"{what} timed out after {timeout:g} s") from None
        if done.returncode != 0:
            detail = _one_line(done.stderr.decode(errors="replace") or done.stdout.decode(errors="replace"))
            raise SandboxError(f"{what} failed (exit {done.returncode}): {detail}")
        return done.stdout.decode(errors="replace")

    def _password_file(self) -> Path:
        """A file holding the admin password, readable by its owner only (for ``-y``)."""
        path = self.workdir / "admin.pw"
        if not path.exists():
            _write_private(path, self.admin_password)
        return path

    def _admin_args(self) -> list[str]:
        """Arguments binding a tool as the admin over TCP."""
        return ["-x", "-H", self.url, "-D", self.admin_dn, "-y", str(self._password_file())]

    def ldapadd(self, ldif_text: str, timeout: float = TOOL_TIMEOUT) -> None:
        """Add entries from LDIF text, bound as the admin."""
        argv = [self._binary("ldapmodify"), "-a", *self._admin_args()]
        self._run(argv, "ldapadd", stdin=ldif_text, timeout=timeout)

    def ldapmodify(self, ldif_text: str, timeout: float = TOOL_TIMEOUT) -> None:
        """Apply LDIF change records, bound as the admin."""
        argv = [self._binary("ldapmodify"), *self._admin_args()]
        self._run(argv, "ldapmodify", stdin=ldif_text, timeout=timeout)

    def ldapdelete(self, dn: str, *, recursive: bool = False, missing_ok: bool = False) -> None:
        """Delete an entry (and its subtree with ``recursive``), bound as the admin."""
        argv = [self._binary("ldapdelete"), *self._admin_args(), *(["-r"] if recursive else []), dn]
        try:
            self._run(argv, f"ldapdelete of {dn}")
        except SandboxError as exc:
            if missing_ok and "(exit 32)" in str(exc):
                return
            raise

    def ldapsearch(self, base: str, filterstr: str = "(objectClass=*)", *attrs: str, scope: str = "sub") -> str:
        """Search bound as the admin; return the LDIF text (``-LLL``, unwrapped)."""
        argv = [self._binary("ldapsearch"), *self._admin_args(), "-LLL", "-o", "ldif-wrap=no"]
        argv += ["-s", scope, "-b", base, filterstr, *attrs]
        return self._run(argv, f"ldapsearch of {base}")

    def exists(self, dn: str) -> bool:
        """Tell whether an entry exists."""
        try:
            self.ldapsearch(dn, "(objectClass=*)", "1.1", scope="base")
        except SandboxError as exc:
            if "(exit 32)" in str(exc):
                return False
            raise
        return True


def _stop_all_at_exit() -> None:
    """Kill servers a crashed or careless caller left running."""
    for server in list(_RUNNING):
        server.kill()


atexit.register(_stop_all_at_exit)


class ServerLifecycle:
    """Starting again, and ``with`` blocks, for a throwaway server: after a failure (or when
    :attr:`keep` is set) its files are kept for a look, otherwise removed.

    Shared by :class:`Slapd` and the test suite's Samba DC. The host supplies ``start``, ``stop``,
    ``is_running``, ``cleanup``, ``workdir``, ``log_path``, ``keep``, ``_owns_workdir`` and
    :attr:`NAME`.
    """

    NAME = "server"  # how a kept sandbox is announced
    workdir: Path
    keep: bool
    _owns_workdir: bool

    def restart(self) -> None:
        """Stop (if running) and start again with the same config and data."""
        self.stop()
        self.start()

    def _remove_empty_workdir(self) -> None:
        """Leave no trace when nothing was built yet."""
        if self._owns_workdir and self.workdir.is_dir() and not any(self.workdir.iterdir()):
            self.workdir.rmdir()

    def _stop_kept(self) -> None:
        """Stop a server whose files stay for a look."""
        self.stop()

    def __enter__(self) -> Self:
        # Allows ``with Slapd().start(ldif) as server:``.
        if self.is_running():
            return self
        try:
            return self.start()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if (self.keep or exc_type is not None) and self.workdir.is_dir():
            self._stop_kept()
            print(f"{self.NAME} sandbox kept in {self.workdir} (log: {self.log_path})", file=sys.stderr)
            return
        self.cleanup()


class Slapd(ServerLifecycle, LdapUtilsMixin):
    """A throwaway OpenLDAP server running as a child of this process.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    ``bindir`` restricts where ``slapd``/``slapadd`` and the ``ldap-utils``
    binaries are looked up (PATH plus the usual sbin directories otherwise).
    A work directory created here is removed on exit from the ``with`` block
    unless ``keep`` is true or an exception is propagating; one passed in by
    the caller is left alone.  ``tls`` adds StartTLS on :attr:`url` and an
    LDAPS listener at :attr:`ldaps_url`, with a certificate for ``tls_names``
    signed by the throwaway CA in :attr:`ca_file`.
    """

    NAME = "slapd"

    def __init__(
        self,
        suffix: str = "dc=example,dc=org",
        workdir: Path | str | None = None,
        port: int | None = None,
        admin_password: str = "secret",
        *,
        keep: bool = False,
        bindir: Path | str | None = None,
        tls: bool = False,
        tls_names: Sequence[str] = TLS_NAMES,
    ) -> None:
        self.suffix = suffix
        self.admin_dn = f"cn=admin,{suffix}"
        self.admin_password = admin_password
        self.keep = keep
        self.bindir = Path(bindir) if bindir is not None else None
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="rbac-slapd-"))
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self.tls = tls
        self.tls_names = tuple(tls_names)
        self.tls_port = free_port() if tls else None

    # -- paths and URLs -------------------------------------------------

    @property
    def url(self) -> str:
        """LDAP URL of the TCP listener."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """LDAP URL of the LDAPS listener (only with ``tls``)."""
        if self.tls_port is None:
            raise SandboxError("this server was created without tls=True and has no LDAPS listener")
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def tls_dir(self) -> Path:
        """Where the throwaway CA and server keys and certificates live."""
        return self.workdir / "tls"

    @property
    def ca_file(self) -> Path:
        """The throwaway CA certificate that clients must trust (PEM)."""
        return self.tls_dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        """The server certificate (PEM)."""
        return self.tls_dir / "server.pem"

    @property
    def key_file(self) -> Path:
        """The server's private key (PEM, owner-only)."""
        return self.tls_dir / "server.key"

    @property
    def config_dir(self) -> Path:
        """The ``cn=config`` directory (``slapd -F``)."""
        return self.workdir / "slapd.d"

    @property
    def data_dir(self) -> Path:
        """The back-mdb database directory."""
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        """Where slapd's stderr goes."""
        return self.workdir / "slapd.log"

    @property
    def socket_path(self) -> Path:
        """The ldapi socket, moved to a short directory when the workdir path is too long."""
        path = self.workdir / "ldapi"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="slapd-", dir="/tmp"))
        return self._socket_dir / "ldapi"

    @property
    def ldapi_url(self) -> str:
        """LDAP URL of the local socket, on which this uid may manage ``cn=config``."""
        return "ldapi://" + quote(str(self.socket_path), safe="")

    @property
    def pid(self) -> int | None:
        """Process id of the running slapd, or None."""
        return self._proc.pid if self.is_running() and self._proc else None

    # -- binaries -------------------------------------------------------

    def _binary(self, name: str) -> str:
        """Locate an OpenLDAP binary or raise :class:`NotInstalledError`."""
        return find_binary(name, self.bindir)

    def check_installed(self) -> None:
        """Raise :class:`NotInstalledError` unless every needed binary is present."""
        check_installed(self.bindir)
        if self.tls:
            self._openssl()

    @staticmethod
    def _openssl() -> str:
        """Locate the openssl tool, which is not part of OpenLDAP and may be missing."""
        found = shutil.which("openssl")
        if found is None:
            raise NotInstalledError(OPENSSL_HINT)
        return found

    # -- configuration ---------------------------------------------------

    def _schema_ldif(self) -> str:
        """Concatenate the schema entries slapadd -n0 needs."""
        schema_dir = _first_existing(SCHEMA_DIRS, "schema")
        parts = []
        for name in SCHEMAS:
            path = schema_dir / f"{name}.ldif"
            if not path.is_file():
                raise NotInstalledError(f"schema {path} is missing; {INSTALL_HINT}")
            parts.append(path.read_text(encoding="utf-8").strip() + "\n")
        return "\n".join(parts)

    def config_ldif(self) -> str:
        """Return the full ``cn=config`` tree as LDIF, schemas included."""
        module_dir = _first_existing(MODULE_DIRS, "module")
        peer = f"gidNumber={os.getgid()}+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"
        indexes = "".join(f"olcDbIndex: {index}\n" for index in INDEXES)
        # Base64 so that any password (leading space, colon, non-ASCII) is valid LDIF.
        password = base64.b64encode(self.admin_password.encode()).decode()
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.workdir / "slapd.pid"}
olcArgsFile: {self.workdir / "slapd.args"}
olcLogLevel: none
{self._tls_config()}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {module_dir}
olcModuleLoad: {{0}}back_mdb
olcModuleLoad: {{1}}dynlist
olcModuleLoad: {{2}}refint
olcModuleLoad: {{3}}syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{self._schema_ldif()}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: unlimited
olcTimeLimit: unlimited
olcAccess: {{0}}to dn.base="" by * read
olcAccess: {{1}}to dn.base="cn=Subschema" by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact={peer} manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {self.suffix}
olcRootDN: {self.admin_dn}
olcRootPW:: {password}
olcDbDirectory: {self.data_dir}
olcDbMaxSize: {8 * 1024**3}
olcDbNoSync: TRUE
olcSizeLimit: unlimited
olcTimeLimit: unlimited
{indexes}olcAccess: {{0}}to * by self write by users read by anonymous auth

# syncprov first, below the overlays that write: it sees refint's rewrites of member values.
dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {{0}}syncprov
olcSpCheckpoint: 100 10
olcSpSessionlog: 10000

dn: olcOverlay={{1}}dynlist,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcDynListConfig
olcOverlay: {{1}}dynlist
olcDynListAttrSet: {{0}}groupOfURLs memberURL member+memberOf@groupOfNames*

dn: olcOverlay={{2}}refint,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{2}}refint
olcRefintAttribute: member
olcRefintAttribute: uniqueMember
"""

    def _tls_config(self) -> str:
        """The cn=config attributes pointing slapd at its certificate, or nothing."""
        if not self.tls:
            return ""
        return (
            f"olcTLSCACertificateFile: {self.ca_file}\n"
            f"olcTLSCertificateFile: {self.cert_file}\n"
            f"olcTLSCertificateKeyFile: {self.key_file}\n"
        )

    def _make_certificates(self) -> None:
        """Create a throwaway CA and a server certificate it signed, for ``tls_names``."""
        openssl = self._openssl()
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        config = self.tls_dir / "openssl.cnf"
        config.write_text(_openssl_config(self.tls_names), encoding="utf-8")
        ca_key, csr = self.tls_dir / "ca.key", self.tls_dir / "server.csr"
        days = ["-days", str(CERT_DAYS)]
        ca = ["req", "-x509", *KEY_ARGS, "-keyout", str(ca_key), "-out", str(self.ca_file), "-extensions", "ca"]
        ca += ["-subj", "/CN=rbac-migrate sandbox CA", "-config", str(config), *days]
        self._run([openssl, *ca], "openssl req (sandbox CA)")
        request = ["req", "-new", *KEY_ARGS, "-keyout", str(self.key_file), "-out", str(csr)]
        request += ["-subj", f"/CN={self.tls_names[0]}", "-config", str(config)]
        self._run([openssl, *request], "openssl req (server key)")
        sign = ["x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(ca_key)]
        sign += ["-set_serial", str(uuid.uuid4().int >> 64), "-out", str(self.cert_file), *days]
        sign += ["-extfile", str(config), "-extensions", "server"]
        self._run([openssl, *sign], "openssl x509 (server certificate)")
        # openssl's key file mode depends on its version and the umask; slapd runs as us either way.
        for key in (ca_key, self.key_file):
            key.chmod(0o600)

    def _build(self) -> None:
        """Create the config and database directories offline."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(mode=0o700)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self.tls:
            self._make_certificates()
        config = self.workdir / "config.ldif"
        _write_private(config, self.config_ldif())
        argv = [self._binary("slapadd"), "-n0", "-F", str(self.config_dir), "-l", str(config)]
        self._run(argv, "slapadd of cn=config")

    def load(self, ldif: Path | str) -> None:
        """Bulk-load an LDIF file into the (stopped) database with ``slapadd -q``."""
        if self.is_running():
            raise SandboxError("slapadd needs the server stopped; use ldapadd() on a running server")
        path = Path(ldif)
        if not path.is_file():
            raise SandboxError(f"LDIF file not found: {path}")
        # -w records the contextCSN that Content Sync (syncprov) starts from.
        argv = [self._binary("slapadd"), "-q", "-w", "-n1", "-F", str(self.config_dir), "-l", str(path)]
        self._run(argv, f"slapadd of {path}")

    def _load_suffix_entry(self) -> None:
        """Give an otherwise empty database its suffix entry."""
        path = self.workdir / "suffix.ldif"
        path.write_text(_suffix_entry(self.suffix), encoding="utf-8")
        self.load(path)

    # -- lifecycle ---------------------------------------------------------

    def start(self, ldif: list[Path | str] | tuple[Path | str, ...] = ()) -> Self:
        """Build (first time only), bulk-load ``ldif`` and run the server until it answers.

        When no LDIF is given on first start only the suffix entry is created;
        given LDIF must contain the suffix entry itself.  Starting a server
        whose config already exists (after :meth:`stop`, or a reused workdir)
        keeps its data and loads only the extra files.
        """
        if self.is_running():
            raise SandboxError(f"slapd is already running (pid {self.pid})")
        try:
            self.check_installed()
        except NotInstalledError:
            self._remove_empty_workdir()
            raise
        first = not self.config_dir.exists()
        if first:
            self._build()
        for path in ldif:
            self.load(path)
        if first and not ldif:
            self._load_suffix_entry()
        self._launch()
        return self

    def _launch(self) -> None:
        """Run slapd, retrying on a fresh port if the one picked got taken meanwhile."""
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return
            except SandboxError:
                if attempt + 1 == attempts or not self._port_in_use_logged():
                    raise
                self.port = free_port()
                if self.tls:
                    self.tls_port = free_port()

    def _spawn_and_wait(self) -> None:
        """Start the slapd process and block until its rootDSE answers."""
        if self.socket_path.exists():
            self.socket_path.unlink()
        urls = f"{self.url}/ {self.ldapi_url}" + (f" {self.ldaps_url}/" if self.tls else "")
        # "-d 0" keeps slapd in the foreground but also silences start-up
        # errors; "none" prints only those, never per-operation lines.
        argv = [self._binary("slapd"), "-F", str(self.config_dir), "-h", urls, "-d", "none"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _RUNNING.add(self)
        self._wait_ready()

    def _port_in_use_logged(self) -> bool:
        """Tell whether slapd's last failure was a port clash."""
        return "Address already in use" in self.log_tail(20)

    def _wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll until an anonymous rootDSE read succeeds, failing fast if slapd died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                code = self._proc.returncode if self._proc else None
                self._forget()
                raise SandboxError(f"slapd exited with status {code} during start-up: {self.log_tail()}")
            if self._port_open() and self._rootdse_answers(deadline):
                return
            time.sleep(0.02)
        self.kill()
        raise SandboxError(f"slapd did not answer on {self.url} within {timeout:g} s: {self.log_tail()}")

    def _port_open(self) -> bool:
        """Cheap check before spawning ldapsearch; the LDAPS port too, so clients may use either."""
        ports = [self.port] if self.tls_port is None else [self.port, self.tls_port]
        for port in ports:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            except OSError:
                return False
        return True

    def _rootdse_answers(self, deadline: float) -> bool:
        """Tell whether an anonymous base search of the rootDSE succeeds.

        The port may belong to someone else that never answers, so the probe
        is abandoned as soon as slapd itself has died.
        """
        argv = [self._binary("ldapsearch"), "-x", "-LLL", "-H", self.url, "-s", "base", "-b", "", "objectClass"]
        probe = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self._tool_env())
        try:
            while time.monotonic() < deadline and self.is_running():
                try:
                    return probe.wait(0.05) == 0
                except subprocess.TimeoutExpired:
                    continue
            return False
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Last lines of slapd's log without the version banner, on one line."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        kept = [
            _LOG_PREFIX.sub("", line)
            for line in text.splitlines()
            if line.strip() and "@(#)" not in line and not line[:1].isspace()
        ]
        return _one_line("\n".join(kept[-lines:])) or "(empty log)"

    def is_running(self) -> bool:
        """Tell whether the slapd child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut down cleanly with SIGTERM, escalating to SIGKILL after ``timeout``."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._forget()

    def kill(self) -> None:
        """Kill with SIGKILL, as a crash would; data already written survives."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._forget()

    def _forget(self) -> None:
        """Drop the handle of a process that has exited."""
        self._proc = None
        _RUNNING.discard(self)

    def detach(self) -> Path:
        """Hand the data over to a daemonised slapd that outlives this process; return its pid file.

        The caller owns the server from then on: ``kill $(cat PIDFILE)`` stops it.
        """
        self.stop()
        urls = f"{self.url}/ {self.ldapi_url}"
        done = subprocess.run(
            [self._binary("slapd"), "-F", str(self.config_dir), "-h", urls],
            capture_output=True,
            text=True,
            check=False,
            timeout=TOOL_TIMEOUT,
        )
        if done.returncode != 0:
            raise SandboxError(f"slapd did not restart in the background: {_one_line(done.stderr)}")
        self.keep = True
        return self.workdir / "slapd.pid"

    def cleanup(self) -> None:
        """Stop the server and delete the work directory if it was created here."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<Slapd {self.url} {self.suffix} {state} in {self.workdir}>"

    # -- test data and cn=config --------------------------------------------

    @contextlib.contextmanager
    def scratch_subtree(self) -> Iterator[str]:
        """Yield the DN of a new empty ``ou=t<random>`` under the suffix; delete its subtree after."""
        ou = f"t{uuid.uuid4().hex[:8]}"
        dn = f"ou={ou},{self.suffix}"
        self.ldapadd(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n")
        try:
            yield dn
        finally:
            # The caller may have crashed the server on purpose; there is nothing to delete from then.
            if self.is_running():
                self.ldapdelete(dn, recursive=True, missing_ok=True)

    def config_modify(self, ldif_text: str) -> None:
        """Change ``cn=config`` at run time over ldapi with SASL EXTERNAL (this uid)."""
        argv = [self._binary("ldapmodify"), "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_url]
        self._run(argv, "ldapmodify of cn=config", stdin=ldif_text)
