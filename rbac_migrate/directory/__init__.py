"""The directory edge: the only package that imports ldap3.

Everything above it sees plain strings and dicts: ``Directory.search`` yields ``(dn, attributes)``
with attribute names in lower case and values decoded to text.
"""

from __future__ import annotations

import math
import ssl
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars

from ..config import Settings
from ..errors import ConfigError, DirectoryError
from . import bulk as fastread
from .ranges import completed
from .writes import Writer

__all__ = [
    "Directory",
    "ServerCapabilities",
    "attribute_key",
    "connect",
    "decode_value",
    "escape_filter_chars",
    "first_values",
    "parse_url",
]

PAGED_RESULTS = "1.2.840.113556.1.4.319"
TRANSACTIONS = "1.3.6.1.1.21.1"
ASSERTION = "1.3.6.1.1.12"
BINARY_ATTRIBUTES = {"objectguid", "objectsid"}
FOREIGN_PRINCIPAL = "foreignsecurityprincipal"
GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"


@dataclass(frozen=True)
class ServerCapabilities:
    """What the server offers that later commands rely on."""

    vendor: str
    naming_contexts: tuple[str, ...]
    paged_results: bool
    transactions: bool
    assertion: bool
    tls: str


def parse_url(url: str) -> tuple[str, int, bool]:
    """Host, port and whether the URL asks for LDAPS; a clear error for anything else."""
    text = (url or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
        raise ConfigError(f"url '{url}' is not an LDAP URL: expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    secure = parts.scheme.lower() == "ldaps"
    try:
        port = parts.port or (636 if secure else 389)
    except ValueError:
        raise ConfigError(f"url '{url}' has an invalid port") from None
    return parts.hostname, port, secure


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
    host, port, secure_url = parse_url(settings.url)
    mode = settings.tls_mode
    if secure_url and mode == "starttls":
        raise ConfigError("tls: starttls cannot be used with an ldaps:// url")
    server = ldap3.Server(
        host,
        port=port,
        use_ssl=mode == "ldaps",
        tls=_tls(settings) if mode != "none" else None,
        get_info=ldap3.NONE,
        connect_timeout=math.ceil(settings.connect_timeout),
    )
    target = f"{'ldaps' if mode == 'ldaps' else 'ldap'}://{host}:{port}"
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
    if settings.bulk_reader != "ldap3" and (settings.bulk_reader == "python-ldap" or fastread.available()):
        bulk = lambda: fastread.BulkReader(settings, password, host, port, mode)  # noqa: E731
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
        return f"{target} did not answer within the timeout: check the server and receive_timeout"
    if isinstance(exc, lx.LDAPSocketOpenError):
        reason = "connection refused" if "refused" in text.lower() else text.split(":")[-1].strip() or text
        return f"cannot reach {target}: {reason}"
    return f"{target}: {text}"


class Directory:
    """A bound connection with the read operations the snapshot needs."""

    def __init__(self, conn: ldap3.Connection, settings: Settings, target: str, tls: str, bulk=None):
        self.conn = conn
        self.settings = settings
        self.target = target
        self.tls = tls
        self._open_bulk = bulk
        self._bulk: fastread.BulkReader | None = None

    # Raw-value helpers, reachable from callers that must not import ldap3 themselves.
    first_values = staticmethod(lambda raw, cache: first_values(raw, cache))
    attribute_key = staticmethod(lambda name: attribute_key(name))
    decode_value = staticmethod(lambda key, value: decode_value(key, value))

    def sync_reader(self) -> fastread.BulkReader | None:
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

    def root_dse(self) -> dict[str, list[str]]:
        for _dn, attrs in self.search("", "(objectClass=*)", ["*", "+"], scope="base", paged=False):
            return attrs
        return {}

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

    def exists(self, dn: str) -> bool:
        """True when an entry with this DN exists (and is visible to us)."""
        return any(True for _ in self.search(dn, "(objectClass=*)", ["1.1"], scope="base", paged=False))

    def resolves(self, dn: str) -> bool:
        """True when a member value names an entry here that stands for someone we can see.

        AD keeps members from other domains, and SIDs nobody can resolve any more, as
        foreign-security-principal placeholders: entries that name no account in this directory.
        """
        attrs = self.read_entry(dn, ["objectClass"])
        return attrs is not None and FOREIGN_PRINCIPAL not in {c.lower() for c in attrs.get("objectclass", [])}

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        scope: str = "subtree",
        paged: bool = True,
        size_limit: int = 0,
    ) -> Iterator[tuple[str, dict[str, list[str]]]]:
        """Yield (dn, {lower-case attribute: [text values]}); a missing base yields nothing."""
        for dn, raw in self.search_raw(base, search_filter, attributes, scope, paged, size_limit):
            yield dn, _decode(raw)

    @completed
    def search_raw(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        scope: str = "subtree",
        paged: bool = True,
        size_limit: int = 0,
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """Yield (dn, {attribute as the server names it: [raw values]}), for bulk reads."""
        if paged and self._open_bulk is not None:
            yield from self.sync_reader().search(base, search_filter, attributes, scope)
            return
        scopes = {"base": ldap3.BASE, "one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}
        attrs = list(attributes)
        cookie = None
        while True:
            kwargs = (
                {"paged_size": self.settings.page_size, "paged_cookie": cookie} if paged else {"size_limit": size_limit}
            )
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

    def read_entry(self, dn: str, attributes: Iterable[str]) -> dict[str, list[str]] | None:
        """One entry's attributes, or None when it does not exist."""
        for _dn, attrs in self.search(dn, "(objectClass=*)", attributes, scope="base", paged=False):
            return attrs
        return None

    def groups_with_member(self, value: str, base: str, attributes: Iterable[str] = ("cn",)) -> list[tuple[str, dict]]:
        """Groups under base whose member attribute holds value (an indexed equality search)."""
        search_filter = f"(&{GROUP_FILTER}({self.settings.member_attribute}={escape_filter_chars(value)}))"
        return list(self.search(base, search_filter, attributes, paged=False))

    def check_base(self, name: str, base: str) -> None:
        """Fail with one line when a configured base DN does not exist."""
        if not self.exists(base):
            raise DirectoryError(f"{name} {base} does not exist on {self.target}")


def _next_cookie(result: dict) -> bytes | None:
    control = (result.get("controls") or {}).get(PAGED_RESULTS)
    return control["value"]["cookie"] if control else None


def attribute_key(name: str) -> str:
    """Lower case, options dropped: 'member;range=0-1499' → 'member'."""
    return name.lower().split(";", 1)[0]


def decode_value(key: str, value: bytes) -> str:
    """Text form of one raw value; binary identifiers rendered canonically."""
    if key in BINARY_ATTRIBUTES:
        return _binary(key, value)
    return value.decode("utf-8", "replace")


def first_values(raw: dict[str, list[bytes]], keys_cache: dict) -> dict[str, str]:
    """{lower-case attribute: first value as text}; ``keys_cache`` memoises name handling."""
    names = tuple(raw)
    keys = keys_cache.get(names)
    if keys is None:
        keys = keys_cache[names] = [(name, attribute_key(name)) for name in names]
    return {key: decode_value(key, raw[name][0]) for name, key in keys if raw[name]}


def _decode(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    decoded: dict[str, list[str]] = {}
    for name, values in raw.items():
        key = attribute_key(name)
        decoded.setdefault(key, []).extend(decode_value(key, v) for v in values)
    return decoded


def _binary(key: str, value: bytes) -> str:
    if key == "objectguid" and len(value) == 16:
        return str(uuid.UUID(bytes_le=value))
    return value.hex()
