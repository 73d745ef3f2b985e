"""The ldap3 connection: binds with clear errors, reads, and every write.

Whole-subtree reads and Content Sync refreshes go through a second, libldap connection
(``libldap``) where python-ldap is installed: it decodes in C.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars

from ..config import Settings
from ..errors import ConfigError, DirectoryError
from ..kinds import GROUP_FILTER
from . import address, libldap
from .ranges import completed
from .reads import Reads
from .writes import Writer

__all__ = ["Directory", "ServerCapabilities", "connect", "escape_filter_chars"]

PAGED_RESULTS = "1.2.840.113556.1.4.319"
TRANSACTIONS = "1.3.6.1.1.21.1"
ASSERTION = "1.3.6.1.1.12"


@dataclass(frozen=True)
class ServerCapabilities:
    """What the server offers that later commands rely on."""

    vendor: str
    naming_contexts: tuple[str, ...]
    paged_results: bool
    transactions: bool
    assertion: bool
    tls: str


def _tls(settings: Settings) -> ldap3.Tls:
    if settings.tls_ca_file:
        try:
            open(settings.tls_ca_file, "rb").close()
        except OSError as exc:
            raise ConfigError(f"tls_ca_file {settings.tls_ca_file}: {exc.strerror}") from None
    return ldap3.Tls(
        validate=ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
        ca_certs_file=settings.tls_ca_file,
        version=ssl.PROTOCOL_TLS_CLIENT,
    )


def connect(settings: Settings, password: str | None) -> Directory:
    """Connect and bind as configured; every failure is one DirectoryError line."""
    settings.require("url")
    host, port, target, mode = address.endpoint(settings)
    server = ldap3.Server(
        host,
        port=port,
        use_ssl=mode == "ldaps",
        tls=_tls(settings) if mode != "none" else None,
        get_info=ldap3.NONE,
        connect_timeout=math.ceil(settings.connect_timeout),
    )
    conn = ldap3.Connection(
        server,
        user=settings.bind_dn or None,
        password=password,
        client_strategy=ldap3.SYNC,
        receive_timeout=math.ceil(settings.receive_timeout),  # ldap3 packs it as an int
        raise_exceptions=False,
        auto_referrals=False,
        check_names=False,
        read_only=False,
        auto_range=False,  # ranges.completed reads ranged values instead; ldap3's loop crashes past the end
        return_empty_attributes=False,  # with auto_range off, ldap3's padding of absent attributes crashes
    )
    try:
        conn.open()
        if mode == "starttls" and not conn.start_tls():
            raise DirectoryError(f"{target} refused StartTLS: {_result_text(conn)} (set tls: ldaps or fix the server)")
        if not conn.bind():
            raise DirectoryError(_bind_failure(conn, settings.bind_dn, target))
    except lx.LDAPException as exc:
        _discard(conn)
        raise DirectoryError(_explain(exc, target, settings)) from None
    except DirectoryError:
        _discard(conn)
        raise
    bulk = None
    if settings.bulk_reader != "ldap3" and (settings.bulk_reader == "python-ldap" or libldap.available()):
        bulk = lambda: libldap.Libldap(settings, password, target, mode)  # noqa: E731
    return Directory(conn, settings, target, mode, bulk)


def _discard(conn: ldap3.Connection) -> None:
    """Drop a connection that failed to set up.

    A failed TLS handshake has already closed the socket, so the unbind itself would fail.
    """
    try:
        conn.unbind()
    except lx.LDAPException:
        pass


def _bind_failure(conn: ldap3.Connection, bind_dn: str | None, target: str) -> str:
    code = conn.result.get("result") if conn.result else None
    if code == 49:
        return f"bind to {target} as {bind_dn} failed: wrong bind DN or password"
    if code == 13:
        return f"{target} requires a secure connection for this bind: set tls: starttls or ldaps"
    return f"bind to {target} as {bind_dn or 'anonymous'} failed: {_result_text(conn)}"


def _result_text(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    text = result.get("description") or "no answer"
    if result.get("message"):
        text += f" ({result['message'].strip()})"
    return text


def _explain(exc: Exception, target: str, settings: Settings) -> str:
    text = str(exc)
    # Before the generic verify failure: Python's own check reports a mismatch inside CERTIFICATE_VERIFY_FAILED.
    if "doesn't match any name" in text or "mismatch" in text:
        return f"the certificate of {target} is issued for other host names: use one it lists in url"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        hint = "set tls_ca_file to the CA that signed it" if not settings.tls_ca_file else "check tls_ca_file"
        return f"the certificate of {target} is not trusted: {hint}"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return f"{target} does not speak TLS on that port: check url and tls"
    # OpenSSL 3 reports a plain LDAP server hanging up on a TLS hello as an unexpected EOF.
    if "UNEXPECTED_EOF" in text or "EOF occurred in violation of protocol" in text:
        return f"{target} closed the connection during the TLS handshake: check url and tls"
    if isinstance(exc, lx.LDAPStartTLSError):
        return f"StartTLS with {target} failed: {text}"
    if isinstance(exc, (lx.LDAPSocketReceiveError, lx.LDAPResponseTimeoutError)) or "timed out" in text:
        return address.no_answer(target)
    if isinstance(exc, lx.LDAPSocketOpenError):
        reason = "connection refused" if "refused" in text.lower() else text.split(":")[-1].strip() or text
        return f"cannot reach {target}: {reason}"
    return f"{target}: {text}"


class Directory(Reads):
    """A bound ldap3 connection: the reads of ``Reads``, and writes through ``writer()``."""

    def __init__(self, conn: ldap3.Connection, settings: Settings, target: str, tls: str, bulk=None):
        self.conn = conn
        self.settings = settings
        self.target = target
        self.tls = tls
        self._open_bulk = bulk
        self._bulk: libldap.Libldap | None = None

    def sync_reader(self) -> libldap.Libldap | None:
        """The python-ldap connection that runs Content Sync refreshes, when python-ldap is in use."""
        if self._open_bulk is None:
            return None
        if self._bulk is None:
            self._bulk = self._open_bulk()
        return self._bulk

    @property
    def bulk_reader(self) -> str:
        return "python-ldap" if self._open_bulk else "ldap3"

    def close(self) -> None:
        if self._bulk is not None:
            self._bulk.close()
        try:
            self.conn.unbind()
        except lx.LDAPException:
            pass

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, what: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except lx.LDAPException as exc:
            raise DirectoryError(f"{what}: {_explain(exc, self.target, self.settings)}") from None

    def capabilities(self) -> ServerCapabilities:
        dse = self.root_dse()
        controls = set(dse.get("supportedcontrol", []))
        extensions = set(dse.get("supportedextension", []))
        features = set(dse.get("supportedfeatures", []))
        vendor = (dse.get("vendorname") or dse.get("vendorversion") or ["unknown"])[0]
        if "forestFunctionality" in str(dse.keys()) or "forestfunctionality" in dse:
            vendor = "Active Directory"
        elif "openldaprootdse" in {v.lower() for v in dse.get("objectclass", [])}:
            vendor = "OpenLDAP"
        return ServerCapabilities(
            vendor=vendor,
            naming_contexts=tuple(dse.get("namingcontexts", [])),
            paged_results=PAGED_RESULTS in controls,
            transactions=TRANSACTIONS in extensions,
            assertion=ASSERTION in controls or ASSERTION in features,
            tls=self.tls,
        )

    @completed
    def search_raw(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        scope: str = "subtree",
        paged: bool = True,
        size_limit: int = 0,
        page_size: int | None = None,
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """As ``Reads.search_raw``."""
        if paged and self._open_bulk is not None:
            yield from self.sync_reader().search(base, search_filter, attributes, scope, page_size)
            return
        scopes = {"base": ldap3.BASE, "one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}
        attrs = list(attributes)
        cookie = None
        size = page_size or self.settings.page_size
        while True:
            kwargs = {"paged_size": size, "paged_cookie": cookie} if paged else {"size_limit": size_limit}
            self._call(
                f"search {base}", self.conn.search, base, search_filter, scopes[scope], attributes=attrs, **kwargs
            )
            code = self.conn.result.get("result")
            if code in (32, 34) and scope == "base":
                return  # no such object / not a DN: nothing to yield
            if code not in (0, None, 4):  # 4: size limit reached, which the caller asked for
                raise DirectoryError(f"search under {base or 'the root'} failed: {_result_text(self.conn)}")
            for item in self.conn.response or ():
                if item.get("type") == "searchResEntry":
                    yield item["dn"], item["raw_attributes"]
            cookie = _next_cookie(self.conn.result) if paged else None
            if not cookie:
                return

    def writer(self) -> Writer:
        """Write operations on this connection (value-level member changes, transactions)."""
        return Writer(self.conn, self.target, self.settings.member_attribute)

    def groups_with_member(self, value: str, base: str, attributes: Iterable[str] = ("cn",)) -> list[tuple[str, dict]]:
        """Groups under base whose member attribute holds value (an indexed equality search)."""
        search_filter = f"(&{GROUP_FILTER}({self.settings.member_attribute}={escape_filter_chars(value)}))"
        return list(self.search(base, search_filter, attributes, paged=False))


def _next_cookie(result: dict) -> bytes | None:
    control = (result.get("controls") or {}).get(PAGED_RESULTS)
    return control["value"]["cookie"] if control else None
