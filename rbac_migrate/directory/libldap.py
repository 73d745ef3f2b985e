"""Reads through libldap, python-ldap's C core, when python-ldap is installed.

Reading 100,000 users and a million member values takes ldap3 about six times as long as
`ldapsearch`, almost all of it in pure-Python BER decoding; libldap decodes in C and keeps a
snapshot within reach of `ldapsearch` itself. Only its C module is loaded: python-ldap's Python
layers (schema parsing, URL handling, pyasn1 for Content Sync) would cost a refresh more than
the refresh itself, and the few controls used here are encoded by libldap or ``contentsync``.

``Libldap`` serves whole-subtree reads and Content Sync refreshes for any connection;
``ReadDirectory`` is a whole read-only directory on it, which is all ``snapshot take`` needs.
Every write is made with ldap3 (``connection``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import ConfigError, DirectoryError
from . import address, contentsync, values
from .reads import Reads, could_name_entries, stands_for_someone

try:  # optional accelerator: `pip install rbac-migrate[fast]`
    import _ldap
except ImportError:  # pragma: no cover - exercised where python-ldap is absent
    _ldap = None

PAGED_RESULTS = "1.2.840.113556.1.4.319"
SYNC_REFRESH_REQUIRED = 4096  # RFC 4533 e-syncRefreshRequired: the cookie is too old to resume from
SCOPES = {"base": 0, "one": 1, "subtree": 2}
RES_SEARCH_ENTRY, RES_SEARCH_RESULT, RES_INTERMEDIATE = 0x64, 0x65, 0x79
NO_SUCH_OBJECT, INVALID_DN_SYNTAX = 32, 34
IN_FLIGHT = 64  # base searches sent ahead of the answers read


def available() -> bool:
    return _ldap is not None


@dataclass
class SyncResult:
    """What one RFC 4533 refresh returned."""

    cookie: str | None
    entries: list[tuple[str, dict[str, list[bytes]]]] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)
    # True after a present phase: every entry not presented is gone. Otherwise deletes were explicit.
    complete: bool = False
    refreshed: bool = False  # the server said the refresh is done: later entries are not presences

    def presented(self, uuids: Iterable[str] | None, deletes: bool = False) -> None:
        """Identities the server says are there; None ends a phase (without ``deletes``: a present phase)."""
        if uuids is not None:
            self.present.update(uuids)
        elif not deletes:
            self.complete = True


class NoAnswer(DirectoryError):
    """The server took the connection and did not answer in time."""


class Libldap:
    """A read-only libldap connection, bound as configured, for large paged searches and Content Sync."""

    def __init__(self, settings: Settings, password: str | None, target: str, mode: str):
        if _ldap is None:
            raise DirectoryError("python-ldap is not installed: pip install 'rbac-migrate[fast]'")
        self.target = target
        self.page_size = settings.page_size
        self.timeout = float(settings.receive_timeout)
        try:
            self.conn = _ldap.initialize(target)
            self._set_options(settings)
            if mode == "starttls":
                self.conn.start_tls_s()
            msgid = self.conn.simple_bind(settings.bind_dn or "", password or "", None, None)
            self.conn.result4(msgid, 1, self.timeout, 0, 0, 0)
        except _ldap.TIMEOUT:  # asking again through ldap3 would only wait as long a second time
            raise NoAnswer(address.no_answer(target)) from None
        except _ldap.LDAPError as exc:
            raise DirectoryError(f"bulk read connection to {self.target} failed: {_describe(exc)}") from None

    def _set_options(self, settings: Settings) -> None:
        conn = self.conn
        conn.set_option(_ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(_ldap.OPT_REFERRALS, 0)
        conn.set_option(_ldap.OPT_NETWORK_TIMEOUT, float(settings.connect_timeout))
        conn.set_option(_ldap.OPT_TIMEOUT, self.timeout)
        demand = _ldap.OPT_X_TLS_DEMAND if settings.tls_verify else _ldap.OPT_X_TLS_NEVER
        conn.set_option(_ldap.OPT_X_TLS_REQUIRE_CERT, demand)
        if settings.tls_ca_file:
            conn.set_option(_ldap.OPT_X_TLS_CACERTFILE, settings.tls_ca_file)
        conn.set_option(_ldap.OPT_X_TLS_NEWCTX, 0)  # apply the TLS options above to this handle

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        scope: str = "subtree",
        page_size: int | None = None,
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """Yield (dn, {attribute: [raw values]}) page by page.

        The request for the next page goes out before this page is handed over, so the server
        prepares it while the caller works through the current one. Nothing else may be asked on
        this connection until the pages are read: slapd keeps the paging state of one search per
        connection, and another request in between ends the paging without a word.
        """
        request = (base, SCOPES[scope], search_filter, list(attributes), 0)
        size = page_size or self.page_size
        msgid = self._call(base, self.conn.search_ext, *request, _paging(size, b""), None, -1, 0)
        yield from self._pages(base, request, size, msgid)

    def _pages(
        self, base: str, request: tuple, size: int, msgid: int | None
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        try:
            while msgid is not None:
                _type, data, _msgid, controls = self._call(base, self.conn.result4, msgid, 1, self.timeout, 0, 0, 0)
                cookie = next((_ldap.decode_page_control(v)[1] for oid, _, v in controls if oid == PAGED_RESULTS), None)
                msgid = None
                if cookie:
                    msgid = self._call(base, self.conn.search_ext, *request, _paging(size, cookie), None, -1, 0)
                for dn, raw in data:
                    if dn is not None:  # referrals come back without a DN
                        yield dn, raw
        finally:
            if msgid is not None:  # the caller stopped early: do not leave the server working
                self.conn.abandon_ext(msgid, None, None)

    def search_once(
        self, base: str, search_filter: str, attributes: Iterable[str], scope: str, size_limit: int = 0
    ) -> list[tuple[str, dict[str, list[bytes]]]]:
        """One unpaged search; a base search of an entry that does not exist finds nothing."""
        request = (base, SCOPES[scope], search_filter, list(attributes), 0, None, None, -1, size_limit)
        try:
            msgid = self.conn.search_ext(*request)
            _type, data, _msgid, _controls = self.conn.result4(msgid, 1, self.timeout, 0, 0, 0)
        except _ldap.LDAPError as exc:
            if scope == "base" and _code(exc) in (NO_SUCH_OBJECT, INVALID_DN_SYNTAX):
                return []
            if _code(exc) == 4 and size_limit:  # size limit reached, which the caller asked for
                return []
            where = base or "the root"
            raise DirectoryError(f"search under {where} on {self.target} failed: {_describe(exc)}") from None
        return [(dn, raw) for dn, raw in data if dn is not None]

    def bases(self, dns: list[str], attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]] | None]]:
        """(dn, attributes or None where no such entry) of base searches, up to ``IN_FLIGHT`` at a time:
        the server answers one while the next is on its way, rather than one round trip each."""
        sent: deque[tuple[str, int]] = deque()
        try:
            for dn in dns:
                if "\x00" in dn:  # no entry's DN holds a NUL, and libldap takes none
                    yield dn, None
                    continue
                sent.append((dn, self._call(dn, self.conn.search_ext, dn, 0, "(objectClass=*)", attributes, 0)))
                if len(sent) >= IN_FLIGHT:
                    yield self._base_result(*sent.popleft())
            while sent:
                yield self._base_result(*sent.popleft())
        finally:
            self._abandon(sent)

    def _base_result(self, dn: str, msgid: int) -> tuple[str, dict[str, list[bytes]] | None]:
        try:
            _type, data, _msgid, _controls = self.conn.result4(msgid, 1, self.timeout, 0, 0, 0)
        except _ldap.LDAPError as exc:
            if _code(exc) in (NO_SUCH_OBJECT, INVALID_DN_SYNTAX):
                return dn, None
            raise DirectoryError(f"search of {dn} on {self.target} failed: {_describe(exc)}") from None
        return dn, next((raw for found, raw in data if found is not None), None)

    def sync(self, requests: list[tuple[str, str, Iterable[str], str | None]]) -> list[SyncResult] | None:
        """RFC 4533 refreshOnly searches, (base, filter, attributes, cookie) each; None when the
        server wants a full reload. All are sent before any answer is read, so the server works on
        them together."""
        results, sent = [], []
        try:
            for base, search_filter, attributes, cookie in requests:
                control = [(contentsync.REQUEST, True, contentsync.request_value(cookie))]
                request = (base, SCOPES["subtree"], search_filter, list(attributes), 0, control, None, -1, 0)
                sent.append((base, self._call(base, self.conn.search_ext, *request)))
                results.append(SyncResult(cookie))
            while sent:
                base, msgid = sent[0]
                while self._sync_step(msgid, results[len(results) - len(sent)]):
                    pass
                sent.pop(0)
        except _ldap.LDAPError as exc:
            if _code(exc) == SYNC_REFRESH_REQUIRED:
                self._abandon(sent[1:])
                return None
            self._abandon(sent[1:])
            raise DirectoryError(f"content sync under {base} on {self.target} failed: {_describe(exc)}") from None
        except contentsync.MalformedMessage as exc:
            self._abandon(sent[1:])
            raise DirectoryError(f"content sync under {base} on {self.target}: {exc}") from None
        return results

    def _abandon(self, sent: Iterable[tuple[str, int]]) -> None:
        for _base, msgid in sent:
            try:
                self.conn.abandon_ext(msgid, None, None)
            except _ldap.LDAPError:
                pass

    def _sync_step(self, msgid: int, result: SyncResult) -> bool:
        """Take in the next messages of a refresh; False once the search is done.

        As python-ldap's SyncreplConsumer does: an added or changed entry is also present, the
        end of a present phase (a Sync Done without refreshDeletes) means every entry not
        presented is gone, and the last cookie the server sends is the one to resume from.
        """
        kind, data, _msgid, controls = self.conn.result4(msgid, 0, self.timeout, 1, 1, 0)
        if kind == RES_SEARCH_RESULT:
            for oid, _critical, value in controls or ():
                if oid == contentsync.DONE:
                    cookie, deletes = contentsync.done_value(value or b"\x30\x00")
                    result.presented(None, deletes)
                    result.cookie = cookie or result.cookie
            return False
        if kind == RES_SEARCH_ENTRY:
            for dn, raw, entry_controls in data:
                states = (contentsync.state_value(v) for oid, _, v in entry_controls if oid == contentsync.STATE)
                state = next(states, None)
                if state is None:
                    continue
                if state.state == contentsync.DELETE:
                    result.deleted.add(state.uuid)
                else:
                    if state.state != contentsync.PRESENT:
                        result.entries.append((dn, raw))
                    if state.state == contentsync.PRESENT or not result.refreshed:
                        result.present.add(state.uuid)
                result.cookie = state.cookie or result.cookie
        elif kind == RES_INTERMEDIATE:
            for name, value, _controls in data:
                if name == contentsync.INFO and value:
                    self._sync_info(contentsync.info_value(value), result)
        return True

    @staticmethod
    def _sync_info(info: contentsync.Info, result: SyncResult) -> None:
        if info.kind == contentsync.SYNC_ID_SET:
            if info.flag:  # refreshDeletes: these identities are gone
                result.deleted.update(info.uuids)
            else:
                result.presented(info.uuids)
        elif info.kind in (contentsync.REFRESH_PRESENT, contentsync.REFRESH_DELETE):
            result.presented(None, deletes=info.kind == contentsync.REFRESH_DELETE)
            result.refreshed = result.refreshed or info.flag
        result.cookie = info.cookie or result.cookie

    def _call(self, base: str, func, *args):
        try:
            return func(*args)
        except _ldap.NO_SUCH_OBJECT:
            raise DirectoryError(f"search under {base} failed: no such object") from None
        except _ldap.LDAPError as exc:
            raise DirectoryError(f"search under {base} on {self.target} failed: {_describe(exc)}") from None

    def close(self) -> None:
        try:
            self.conn.unbind_ext(None, None)
        except _ldap.LDAPError:
            pass


class ReadDirectory(Reads):
    """A read-only directory on one libldap connection: what a snapshot reads, without ldap3."""

    def __init__(self, reader: Libldap, settings: Settings, target: str, tls: str):
        self.reader, self.settings, self.target, self.tls = reader, settings, target, tls

    def sync_reader(self) -> Libldap:
        return self.reader

    def is_active_directory(self) -> bool:
        """A server that answers as Active Directory, whose incremental reads need ldap3 (DirSync)."""
        found = self.reader.search_once("", "(objectClass=*)", ["forestFunctionality"], "base")
        return any(values for _dn, raw in found for values in raw.values())

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
        if paged:
            return self.reader.search(base, search_filter, attributes, scope, page_size)
        return iter(self.reader.search_once(base, search_filter, attributes, scope, size_limit))

    def resolving(self, dns: Iterable[str]) -> set[str]:
        """As ``Reads.resolving``, with the searches sent ahead of their answers."""
        found = self.reader.bases(could_name_entries(dns), ["objectClass"])
        return {dn for dn, raw in found if stands_for_someone(None if raw is None else values.decode(raw))}

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> ReadDirectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_reader(settings: Settings, password: str | None) -> ReadDirectory | None:
    """A read-only directory through libldap; None when python-ldap is missing or the connection fails.

    On None the caller connects with ldap3, whose errors say precisely what went wrong; a server
    that does not answer at all is reported at once (``NoAnswer``), not waited for twice.
    """
    if _ldap is None:
        return None
    try:
        _host, _port, target, mode = address.endpoint(settings)
    except ConfigError:
        return None
    try:
        reader = Libldap(settings, password, target, mode)
    except NoAnswer:
        raise
    except DirectoryError:
        return None
    return ReadDirectory(reader, settings, target, mode)


def _paging(size: int, cookie: bytes) -> list[tuple]:
    return [(PAGED_RESULTS, True, _ldap.encode_page_control(size, cookie))]


def _info(exc: Exception) -> dict:
    """What libldap says of an error: result code, description, server's message."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}


def _code(exc: Exception) -> int | None:
    return _info(exc).get("result")


def _describe(exc: Exception) -> str:
    info = _info(exc)
    text = info.get("desc") or type(exc).__name__
    if info.get("info"):
        text += f" ({info['info']})"
    return text
